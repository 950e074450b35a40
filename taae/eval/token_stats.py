"""Token statistics for codec evaluation (§8; bitrate conventions §2 and arXiv 2411.19842 App. A.8): codebook usage,
per-stage entropy and the entropy-coded bitrate of a preset's tokens.

Shape legend: N items, K tokens per frame (stages or codebooks), S frames.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from taae.quantizers.token_spec import TokenSpec


@dataclass
class EntropyStats:
    """Codebook usage and entropy of a preset's tokens (DAC's ``compute_entropy.py``, per stage).

    The plug-in entropy (histogram frequencies as probabilities) is biased low when the number of frames is not
    much larger than the vocabulary: it can never exceed ``log2(num_frames)``. ``undersampled`` flags those
    stages; ``miller_madow_bits`` adds the first-order bias correction ``(m - 1) / (2 n ln 2)``.
    """

    preset: str
    frame_rate: float
    num_frames: int
    vocab_sizes: list[int]
    usage: list[float]
    """Fraction of each stage's vocabulary that occurs at least once."""
    entropy_bits: list[float]
    """Plug-in entropy of each stage's token histogram, bits per token."""
    miller_madow_bits: list[float]
    undersampled: list[bool]
    """True where ``num_frames < 10 * vocab``: the plug-in estimate is then noticeably low."""
    entropy_bits_per_frame: float
    entropy_bitrate: float
    """frame_rate × Σ_k H_k, bits per second."""
    nominal_bitrate: float
    """The ⌈log2⌉ convention of the paper (§6.3)."""
    exact_bitrate: float
    """frame_rate × Σ_k log2 |V_k|: the most an entropy coder could need."""
    tokens_per_frame: int
    tokens_per_second: float


_BINCOUNT_MAX_VOCAB = 1 << 20
"""Above this vocabulary size a dense histogram costs more memory than counting the distinct tokens."""


def _stage_counts(values: Tensor, vocab: int) -> Tensor:
    """Counts of the tokens that occur (zeros dropped), int64."""
    if vocab <= _BINCOUNT_MAX_VOCAB:
        counts = torch.bincount(values, minlength=vocab)
        return counts[counts > 0]
    # 17^6 ≈ 24 M native vocabulary: a dense int64 histogram would be ~190 MiB per stage.
    return torch.unique(values, return_counts=True)[1]


def entropy_bitrate(tokens: Tensor | Iterable[Tensor], spec: TokenSpec) -> EntropyStats:
    """Entropy-based bitrate of a preset's tokens pooled over all items and frames.

    Args:
        tokens: (N, K, S) int64, or an iterable of (K, S) / (1, K, S) tensors of varying S (one per file).
        spec: the preset's ``TokenSpec`` (vocabulary per stage, frame rate).

    Returns:
        ``EntropyStats``. Raises ``ValueError`` for tokens outside the vocabulary or of the wrong shape.
    """
    items = [tokens] if isinstance(tokens, Tensor) else list(tokens)
    flat = []
    for t in items:
        t = t.reshape(-1, *t.shape[-2:]) if t.dim() >= 2 else t
        if t.dim() != 3:
            raise ValueError(f"tokens must be (N, K, S) or (K, S), got shape {tuple(t.shape)}")
        spec.check_tokens(t.long())
        flat.append(t.long().transpose(0, 1).reshape(spec.tokens_per_frame, -1))  # (K, N*S)
    if not flat:
        raise ValueError(f"no tokens given for preset {spec.name!r}")
    stream = torch.cat(flat, dim=1)  # (K, total frames)
    n = stream.shape[1]
    usage, entropy, mm, under = [], [], [], []
    for k, vocab in enumerate(spec.vocab_sizes):
        counts = _stage_counts(stream[k], vocab)
        p = counts.double() / max(n, 1)
        h = float(-(p * torch.log2(p)).sum()) if n else 0.0
        usage.append(counts.numel() / vocab)
        entropy.append(h)
        mm.append(h + (counts.numel() - 1) / (2 * max(n, 1) * math.log(2)))
        under.append(n < 10 * vocab)
    bits = sum(entropy)
    return EntropyStats(
        preset=spec.name, frame_rate=spec.frame_rate, num_frames=n, vocab_sizes=list(spec.vocab_sizes),
        usage=usage, entropy_bits=entropy, miller_madow_bits=mm, undersampled=under,
        entropy_bits_per_frame=bits, entropy_bitrate=bits * spec.frame_rate, nominal_bitrate=spec.bitrate,
        exact_bitrate=spec.exact_bitrate, tokens_per_frame=spec.tokens_per_frame,
        tokens_per_second=spec.tokens_per_frame * spec.frame_rate,
    )
