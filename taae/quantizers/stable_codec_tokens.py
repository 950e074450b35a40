"""stable-codec's own token IDs, reproduced operation for operation (``TAAEConfig.token_rule = "stable-codec"``).

Shape legend: B batch, D latent dim, S frames, K stages.

taae's canonical tokens (``taae.quantizers.residual_fsq``) and stable-codec 0.1.2's decode to the same latent, but
their IDs differ on some frames: stable-codec rounds half to even where taae rounds half up (Parker et al. 2024,
arXiv 2411.19842, Eq. 1), it does no canonicalisation, so a value can get either of two equivalent token tuples,
and its grid steps are float32 (``2·scale/(L − 1)`` divided in float32: 0.4000000059604645 for 6 levels) where
taae's are exact in float64. A token set made with stable-codec therefore only matches a taae encoding made with
the same arithmetic, which is what this module does, after stable-codec's ``stable_codec/residual_fsq.py``
(``ResidualFSQBottleneck.encode``) and ``stable_codec/fsq.py`` (``DitheredFSQ`` in eval mode):

    post-hoc:  r = tanh(float64(z));  per stage: l = round_half_even((r + s) / h),  q = l·h − s,
               token = Σ_d round((q_d + s) / h) · basis_d,  r ← r − q        (float64, h a float32 step)
    native:    the same in float32 on tanh(z) with 17 levels, s = 1 (stable-codec's own FSQ, int64 index math)

For the native preset, the IDs are those of stable-codec's fixed FSQ (v0.1.2). ``StableCodec.encode`` without a
post-hoc bottleneck still goes through stable-audio-tools 0.0.17's quantiser, whose float32 index sum gives wrong
IDs on part of the frames (their decoder maps those to other codes as well); nothing sensible reproduces that.
Decoding needs no special mode: any token decodes through taae's ``decode`` to stable-codec's latent (taae also
clips an out-of-range sum to [−1, 1], which encoder-made tokens never reach).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["stable_codec_tokens"]


def _round_ste(x: Tensor) -> Tensor:
    # stable-codec's round_ste, kept as written: x + (round(x) − x) is round(x) exactly here, and writing the same
    # operations keeps that true by construction rather than by argument.
    return x + (x.round() - x)


def _stage(r: Tensor, levels: Sequence[int], scale: float) -> tuple[Tensor, Tensor]:
    """One DitheredFSQ(levels, scale) in eval mode on a (B, D, S) residual: (codes, (B, S) int64 tokens)."""
    lv = torch.tensor(list(levels), dtype=torch.int64, device=r.device)[:, None]  # (D, 1)
    step = scale * 2 / (lv - 1)  # float32, as the reference computes it: python float / int64 tensor
    basis = torch.cumprod(torch.tensor([1, *levels[:-1]], device=r.device), dim=0)[:, None]  # (D, 1) int64
    codes = _round_ste((r + 1 * scale) / step) * step - 1 * scale
    digits = ((codes + 1 * scale) / step).round().to(torch.int64)
    return codes, (digits * basis).sum(dim=1)


@torch.no_grad()
def stable_codec_tokens(latent: Tensor, stages: Sequence[tuple[Sequence[int], float]] | None,
                        levels: Sequence[int] = (17,) * 6) -> Tensor:
    """Token IDs exactly as stable-codec 0.1.2 forms them.

    Args:
        latent: (B, D, S) the encoder's latent before tanh (stable-codec's "pre-bottleneck latents"), float32.
        stages: ``[(levels per dim, scale), …]`` of a post-hoc preset, or None for the native FSQ.
        levels: the trained FSQ's levels per dimension (native only).

    Returns:
        (B, K, S) int64 tokens (K = 1 for native).
    """
    if latent.dim() != 3:
        raise ValueError(f"latent must have shape (B, D, S), got {tuple(latent.shape)}")
    if stages is None:
        _, tokens = _stage(torch.tanh(latent.float()), list(levels), 1.0)
        return tokens.unsqueeze(1)
    r = torch.tanh(latent.to(torch.float64))
    tokens = []
    for stage_levels, scale in stages:
        codes, ids = _stage(r, list(stage_levels), float(scale))
        r = r - codes.to(torch.float64)
        tokens.append(ids)
    return torch.stack(tokens, dim=1)
