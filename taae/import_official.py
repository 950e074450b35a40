"""``taae import``: released official weights (stable-codec, DAC) converted to a taae export folder.

The command beside the CLI (:mod:`taae.__main__`): :mod:`taae.interop` reads the official files into a taae model,
:class:`taae.codec.Codec` writes the export. Nothing below imports this module.
"""

from __future__ import annotations

from pathlib import Path

from taae.codec import Codec
from taae.interop import load_official
from taae.io.atomic import check_not_input
from taae.io.export import CONFIG_NAME, WEIGHTS_NAME

__all__ = ["import_official"]


def import_official(kind: str, sources: list[str | Path], out: str | Path, use_ema: bool = True) -> list[str]:
    """Convert official files to a taae export folder (``config.json`` + ``model.safetensors``); returns the report."""
    inputs = [f for s in map(Path, sources) for f in (sorted(s.iterdir()) if s.is_dir() else [s])]
    for name in (CONFIG_NAME, WEIGHTS_NAME):  # a released folder's model.safetensors has the export's name
        check_not_input(Path(out) / name, inputs)
    model, notes = load_official(kind, sources, use_ema)
    codec = Codec(model, weights=f"{kind} import")
    codec.export(out)
    notes.append(f"wrote {out}: {type(model).__name__}, {codec.num_parameters:,} parameters, hash {codec.model_hash}")
    return notes
