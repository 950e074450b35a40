"""DAC's released generator (descript-audio-codec 1.0.0 ``weights_*.pth``) as a taae ``RVQGAN``.

Shape legend: i a block, k a codebook.

The file is ``{"state_dict": …, "metadata": {"kwargs": …}}`` (audiotools ``BaseModel.save(package=False)``): bare
generator keys with legacy weight norm, and the constructor arguments of ``dac.DAC``. taae's RVQGAN follows
``dac/model/dac.py`` module for module, so the map only renames:

    official                                   taae
    decoder.model.{i}                          decoder.block.{i}
    encoder.block.{i}.block.4                  encoder.block.{i}.block.4.conv      (strided conv)
    decoder.model.{i}.block.1                  decoder.block.{i}.block.1.conv      (transposed conv)
    weight_g, weight_v                         parametrizations.weight.original0 / original1

A transposed conv's weight-norm gain has shape (in_ch, 1, 1) in both (dim 0 of its weight is the input channel).
The imported model keeps DAC's own transposed-conv length rule (``RVQGANConfig.exact_length = False``): DAC's
16 kHz decoder gives 8 samples fewer than S·hop, and taae's fix (``output_padding``) would change the samples near
the end of every call, since the extra frame feeds the convolutions after it. taae pads DAC's output back to S·hop
with zeros, so every codec interface keeps its lengths, and the first samples equal DAC's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from taae.interop.weights import WEIGHT_NORM, apply_key_map, read_tensors
from taae.models.rvqgan import RVQGAN, RVQGANConfig

__all__ = ["DACImport", "config_from_kwargs", "load_dac"]

_KWARGS = {"encoder_dim", "encoder_rates", "latent_dim", "decoder_dim", "decoder_rates", "n_codebooks",
           "codebook_size", "codebook_dim", "quantizer_dropout", "sample_rate"}


@dataclass
class DACImport:
    model: RVQGAN
    notes: list[str] = field(default_factory=list)


def config_from_kwargs(kwargs: dict, source: str) -> RVQGANConfig:
    """``dac.DAC(**kwargs)`` as an ``RVQGANConfig``; unknown or unsupported arguments are errors naming them."""
    unknown = sorted(set(kwargs) - _KWARGS)
    if unknown:
        raise ValueError(f"{source}: metadata.kwargs has unknown key {unknown[0]!r}; taae translates {sorted(_KWARGS)}")
    missing = sorted({"encoder_rates", "decoder_rates", "sample_rate"} - set(kwargs))
    if missing:
        raise ValueError(f"{source}: metadata.kwargs lacks {missing}")
    if not isinstance(kwargs.get("codebook_dim", 8), int):
        raise ValueError(f"{source}: metadata.kwargs.codebook_dim={kwargs['codebook_dim']!r}: taae supports one "
                         "codebook dim for all codebooks")

    def integer(key: str, default: int | None = None) -> int:
        value = kwargs.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{source}: metadata.kwargs.{key}={value!r}: expected an integer")
        return value

    def rates(key: str) -> tuple[int, ...]:
        value = kwargs[key]
        if not isinstance(value, (list, tuple)) or not value \
                or any(isinstance(r, bool) or not isinstance(r, int) for r in value):
            raise ValueError(f"{source}: metadata.kwargs.{key}={value!r}: expected a list of integers")
        return tuple(value)

    dropout = kwargs.get("quantizer_dropout", False)
    if not isinstance(dropout, (bool, int, float)):
        raise ValueError(f"{source}: metadata.kwargs.quantizer_dropout={dropout!r}: expected a bool or a fraction")
    try:
        return RVQGANConfig(
            sample_rate=integer("sample_rate"), encoder_dim=integer("encoder_dim", 64),
            encoder_strides=rates("encoder_rates"), hop_length=math.prod(rates("encoder_rates")),
            latent_dim=None if kwargs.get("latent_dim") is None else integer("latent_dim"),
            decoder_dim=integer("decoder_dim", 1536), decoder_strides=rates("decoder_rates"),
            n_codebooks=integer("n_codebooks", 9), codebook_size=integer("codebook_size", 1024),
            codebook_dim=integer("codebook_dim", 8),
            quantizer_dropout=float(dropout),  # DAC stores a bool (False) or a fraction
            exact_length=False,
        )
    except ValueError as err:
        if str(err).startswith(source):
            raise
        raise ValueError(f"{source}: metadata.kwargs: {err}") from None


def official_name(key: str) -> str:
    """The descript-audio-codec key that supplies taae key ``key``."""
    name = re.sub(r"^decoder\.block\.", "decoder.model.", key)
    name = re.sub(r"\.block\.(4|1)\.conv\.", r".block.\1.", name)  # the strided / transposed conv wrappers
    for ours, theirs in ((v, k) for k, v in WEIGHT_NORM.items()):
        if name.endswith(ours):
            return name[: -len(ours)] + theirs
    return name


def load_dac(path: str | Path) -> DACImport:
    """Build a taae RVQGAN from a DAC 1.0.0 weights file, strictly (see the module docstring)."""
    path = Path(path)
    data = read_tensors(path)
    if not isinstance(data.get("state_dict"), dict) or not isinstance(data.get("metadata"), dict) \
            or not isinstance(data["metadata"].get("kwargs"), dict):
        found = sorted(data)[:6]
        raise ValueError(f"{path}: not a DAC weights file: expected 'state_dict' and 'metadata' with 'kwargs', "
                         f"found {found}")
    config = config_from_kwargs(data["metadata"]["kwargs"], str(path))
    model = RVQGAN(config)
    notes = [f"{path}: DAC {config.sample_rate} Hz generator, {config.n_codebooks} codebooks of "
             f"{config.codebook_size}, DAC's length rule kept (exact_length=False)"]
    ignored = sorted(set(data["metadata"]) - {"kwargs"})
    if ignored:
        notes.append(f"{path}: metadata {ignored} ignored (training logs, not the model)")
    apply_key_map(model, data["state_dict"], official_name, str(path))
    return DACImport(model=model.eval(), notes=notes)
