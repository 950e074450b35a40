"""``TokenSpec``: how a preset turns latent frames into tokens, and what it costs in bits.

Shape legend: B batch, K tokens per frame (stages or codebooks), S latent frames.

It sits with the quantizers, the lowest layer that makes tokens: the FSQ and residual FSQ quantizers, both codec
models, the token file format (``taae.io.tokens``) and the token statistics of evaluation all import it from here.
Bitrates follow the paper's convention of whole bits per token, ⌈log2 V⌉ (arXiv 2411.19842, Table 1: 400 / 700 /
1000 bps), with the exact log2 V figures alongside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor


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
    def vocab_label(self) -> str:
        """The vocabulary for a table: one number when every token shares it, else each token's, "/"-joined."""
        if len(set(self.vocab_sizes)) == 1:
            return str(self.vocab_sizes[0])
        return "/".join(str(v) for v in self.vocab_sizes)

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
