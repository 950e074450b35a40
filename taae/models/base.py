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

CODEC_METHODS = ("encode", "decode", "presets")
"""What a class must have to be loaded as a codec model from a checkpoint or an export (checked before it is built)."""


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


@dataclass(frozen=True)
class TokenSpec:
    """How a preset turns frames into tokens: one vocabulary size per token of a frame."""

    name: str
    vocab_sizes: tuple[int, ...]
    frame_rate: float

    @property
    def tokens_per_frame(self) -> int:
        return len(self.vocab_sizes)

    @property
    def bits_per_frame(self) -> int:
        """Whole bits per token (the ⌈log2⌉ convention the paper reports), summed over a frame."""
        return sum(math.ceil(math.log2(v)) for v in self.vocab_sizes)

    @property
    def exact_bits_per_frame(self) -> float:
        return sum(math.log2(v) for v in self.vocab_sizes)

    @property
    def bitrate(self) -> float:
        """Nominal bits per second, ⌈log2⌉ convention."""
        return self.bits_per_frame * self.frame_rate

    @property
    def exact_bitrate(self) -> float:
        return self.exact_bits_per_frame * self.frame_rate

    def check_tokens(self, tokens: Tensor) -> None:
        """Raise ``ValueError`` naming the first token outside its vocabulary (stage, frame, value)."""
        if tokens.dtype.is_floating_point:
            raise TypeError(f"tokens must be an integer tensor, got {tokens.dtype}")
        if tokens.dim() != 3 or tokens.shape[1] != self.tokens_per_frame:
            raise ValueError(
                f"preset {self.name!r} expects tokens of shape (B, {self.tokens_per_frame}, S), "
                f"got {tuple(tokens.shape)}"
            )
        for k, vocab in enumerate(self.vocab_sizes):
            row = tokens[:, k]
            bad = (row < 0) | (row >= vocab)
            if bad.any():
                b, s = (int(i) for i in bad.nonzero()[0])
                raise ValueError(
                    f"token out of range for preset {self.name!r}: stage {k}, item {b}, frame {s} holds "
                    f"{int(row[b, s])}, allowed 0..{vocab - 1}"
                )


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
