"""What every codec model in taae exposes, so that one training module, `Codec` and `evaluate.py` serve all.

Shape legend: B batch, T samples, D latent dim, S latent frames, K tokens per frame (stages or codebooks).

A codec model is an ``nn.Module`` with:

- ``sample_rate: int``, ``hop_length: int`` (samples per latent frame), ``frame_rate: float``;
- ``forward(wav (B, 1, T)) -> GeneratorOutput``: the training path (dither / quantizer dropout active in train
  mode). ``audio`` has exactly T samples;
- ``encode(wav (B, 1, T), preset=None) -> tokens (B, K, S) int64`` and
  ``decode(tokens (B, K, S), preset=None) -> wav (B, 1, S * hop_length)``: the inference path, eval semantics;
- ``presets() -> dict[str, TokenSpec]``: the named bitrates this model can emit (``"native"`` always exists);
- ``loss_terms: tuple[str, ...]``: the names of the auxiliary losses ``forward`` returns (``vq/commitment``), so
  that a training config's weight for a term the model never produces is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

# The interface above is written as code in taae.models.interface (CodecModel, a runtime-checkable Protocol).


@dataclass
class GeneratorOutput:
    """What a codec model's training forward returns."""

    audio: Tensor
    """(B, 1, T) reconstruction, exactly as long as the input."""
    latent: Tensor | None = None
    """(B, D, S) continuous latent before quantisation (bounded for TAAE)."""
    codes: Tensor | None = None
    """(B, D, S) quantised latent handed to the decoder."""
    losses: dict[str, Tensor] = field(default_factory=dict)
    """Auxiliary losses of the model itself, keyed by their logged name (e.g. ``vq/commitment``)."""


def pad_to_multiple(wav: Tensor, multiple: int) -> Tensor:
    """Right-pad the last axis with zeros to a multiple of ``multiple`` (at least one multiple for empty input)."""
    length = wav.shape[-1]
    target = max(1, math.ceil(length / multiple)) * multiple
    return F.pad(wav, (0, target - length))


def num_frames(num_samples: int, hop_length: int) -> int:
    """Latent frames produced for ``num_samples`` input samples (input is right-padded to whole frames)."""
    return max(1, math.ceil(num_samples / hop_length))


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
