"""Where a :class:`taae.codec.Codec` comes from: a checkpoint, an export folder, released official weights, or a
hub id resolved to one of those in the Hugging Face cache.

Every path ends in a codec model built from registered classes only (:mod:`taae.io.registry`) and loaded strictly
(:func:`taae.io.export.load_strict`); :meth:`Codec.load <taae.codec.Codec.load>` wraps the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from taae.io.export import CONFIG_NAME, WEIGHTS_NAME, build_generator, load_strict, read_checkpoint, read_export

__all__ = ["Loaded", "check_export", "find_model", "read_model"]


@dataclass
class Loaded:
    """A codec model read from disk, and what :class:`Codec` records about where it came from."""

    model: nn.Module
    weights: str
    """Which weights: "ema", "generator", "export" or "<kind> official"."""
    spec: dict[str, Any] | None = None
    """The ``{class_path, init_args}`` that rebuilds the model (None: derived from its config)."""
    export: dict[str, Any] | None = None
    """An export's ``config.json``, checked against the built codec by :func:`check_export`."""


def find_model(path: str | os.PathLike) -> Path:
    """``path`` itself when it exists, else the snapshot of a hub id ``org/name[@revision]`` in the cache."""
    path = Path(path)
    if path.exists():
        return path
    from taae.codec import hub

    if not hub.is_hub_id(str(path)):
        raise FileNotFoundError(f"checkpoint or export not found: {path}")
    return hub.resolve(str(path))


def read_model(path: Path, use_ema: bool, trust: bool, trust_hint: str | None) -> Loaded:
    """The codec model at ``path``: an export folder (or its ``config.json``), a stable-codec release folder, a DAC
    ``.pth`` (both converted on the fly, :mod:`taae.interop`) or a Lightning checkpoint."""
    from taae.interop import detect, load_official

    kind = None if (path.is_dir() and (path / CONFIG_NAME).is_file()) else detect(path)
    if kind is not None:
        model, _ = load_official(kind, [path.parent if path.is_file() and kind == "stable-codec" else path], use_ema)
        return Loaded(model, f"{kind} official")
    if path.is_dir() or path.name == CONFIG_NAME:
        config, model = read_export(path if path.is_dir() else path.parent)
        return Loaded(model, "export", spec=config["generator"], export=config)
    spec, state, which = read_checkpoint(path, use_ema, trust=trust, trust_hint=trust_hint)
    model = build_generator(spec, f"{path}: taae.generator",
                            sum(t.numel() * t.element_size() for t in state.values()), f"its {which} weights")
    load_strict(model, state, f"{path} ({which} weights)")
    return Loaded(model, which, spec=spec)


def check_export(codec, config: dict[str, Any], path: Path) -> None:
    """Refuse weights whose hash differs from the export's record; restore a version-1 export's user presets (kept
    beside the config then, inside it since)."""
    folder = path if path.is_dir() else path.parent
    if codec.model_hash != config["model_hash"]:
        raise ValueError(f"{folder / WEIGHTS_NAME} hashes to {codec.model_hash} but {folder / CONFIG_NAME} records "
                         f"{config['model_hash']}: the weights were changed or corrupted")
    presets = codec.presets()
    for name, preset in config.get("presets", {}).items():
        if name not in presets:
            codec.add_preset(name, [tuple(s) for s in preset["stages"]], allow_lossy=preset["allow_lossy"])
