"""Released weights of the official codecs, run by taae: stable-codec's TAAE and DAC's RVQGAN.

- :mod:`taae.interop.stable_codec`: stable-audio-tools' TAAE layout and JSON → taae's ``TAAE``;
- :mod:`taae.quantizers.stable_codec_tokens`: stable-codec's own token IDs (``token_rule="stable-codec"``);
- :mod:`taae.interop.dac`: descript-audio-codec 1.0.0 weights → taae's ``RVQGAN``;
- :mod:`taae.interop.weights`: tensor-only reading and strict key maps shared by both.

``load_official`` is what ``taae import`` (:mod:`taae.import_official`) converts; ``detect`` lets ``Codec.load`` take an
official folder or file.
Parity with the official code is proven on random-init official models through the fixtures under
``tests/fixtures/interop`` (``scripts/make_interop_fixtures.py``); the official packages are never imported here.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

__all__ = ["KINDS", "detect", "load_official"]

KINDS = ("stable-codec", "dac")


def load_official(kind: str, sources: list[str | Path], use_ema: bool = True) -> tuple[nn.Module, list[str]]:
    """(taae model, report lines) from official files of ``kind`` ("stable-codec" or "dac")."""
    if kind == "stable-codec":
        from taae.interop.stable_codec import load_stable_codec

        result = load_stable_codec(sources, use_ema=use_ema)
    elif kind == "dac":
        from taae.interop.dac import load_dac

        if len(sources) != 1:
            raise ValueError(f"`taae import dac` takes one weights file (e.g. weights_16khz.pth), got {len(sources)}")
        result = load_dac(sources[0])
    else:
        raise ValueError(f"unknown official model kind {kind!r}; known: {list(KINDS)}")
    return result.model, result.notes


def detect(path: str | Path) -> str | None:
    """"stable-codec" for a folder holding ``model_config.json`` (or that file), "dac" for a ``.pth`` file whose
    top level is DAC's ``{"state_dict", "metadata"}``; None for anything else (a taae export or checkpoint)."""
    from taae.interop.stable_codec import CONFIG_FILE

    path = Path(path)
    if (path.is_dir() and (path / CONFIG_FILE).is_file()) or path.name == CONFIG_FILE:
        return "stable-codec"
    if path.is_file() and path.suffix == ".pth":
        return "dac"
    return None
