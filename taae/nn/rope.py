"""Partial rotary position embedding (RoPE), computed in float32.

TAAE rotates only the first half of each head's dims (§5: 64 of 128, base 10 000) with the half-split
convention: dim ``i`` pairs with dim ``i + R/2`` (not the interleaved ``(2i, 2i + 1)`` pairing), as in
stable-audio-tools' ``rotate_half``. Positions restart at 0 on every call unless an ``offset`` is given, or, in
:meth:`RotaryEmbedding.rotate_at`, one absolute position per token (streaming).
The rotation runs in float32 (float64 for float64 input) whatever the input dtype, and the angles are formed in
float64 before their cosines and sines are rounded, so neither bf16 activations nor long positions garble the
phases.

Shapes:
    B batch, H heads, N tokens, Dh head dim, R rotary dims (even, R <= Dh).

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = ["RotaryEmbedding", "apply_rotary"]

# Every layer of a model asks for the same table (same length, offset, rotary dims and base), twice (queries and
# keys): one shared, bounded cache computes it once per call instead of 2·depth times. Inference-mode tensors are
# kept apart, since autograd refuses to save them for backward.
_TABLES: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
_MAX_TABLES = 16


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``2 * cos.shape[-1]`` dims of ``x`` (half-split pairs); the rest pass through.

    Args:
        x: (..., N, Dh).
        cos: (N, R/2) cosines of the angles, in the dtype to compute in.
        sin: (N, R/2) sines, same shape and dtype as ``cos``.

    Returns:
        (..., N, Dh) in the dtype of ``x``.
    """
    half = cos.shape[-1]
    rot, rest = x[..., : 2 * half].to(cos.dtype), x[..., 2 * half :]
    x1, x2 = rot[..., :half], rot[..., half:]  # (..., N, R/2) each
    rotated = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)
    return torch.cat((rotated, rest), dim=-1)


class RotaryEmbedding(nn.Module):
    """Rotary embedding applied to the first ``rotary_dim`` dims of each head.

    Args:
        head_dim: Dh, the size of each head.
        rotary_dim: R, how many leading dims rotate (even, at most Dh). ``None`` means ``head_dim // 2``, the
            paper's partial RoPE.
        base: Frequency base; 10 000 as in the paper.
    """

    def __init__(self, head_dim: int, rotary_dim: int | None = None, base: float = 10000.0) -> None:
        super().__init__()
        if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 2:
            raise ValueError(f"head_dim must be an int >= 2, got {head_dim!r}")
        if rotary_dim is None:
            rotary_dim = head_dim // 2
        if isinstance(rotary_dim, bool) or not isinstance(rotary_dim, int):
            raise ValueError(f"rotary_dim must be an int or None, got {rotary_dim!r}")
        if rotary_dim < 2 or rotary_dim % 2 or rotary_dim > head_dim:
            raise ValueError(f"rotary_dim must be even and in [2, head_dim={head_dim}], got {rotary_dim}")
        if not base > 1:
            raise ValueError(f"base must be > 1, got {base!r}")
        self.head_dim = head_dim
        self.rotary_dim = rotary_dim
        self.base = float(base)
        # Non-persistent: derived from the arguments, so checkpoints neither need nor carry it. Kept in float64;
        # `module.half()` / `.to(bfloat16)` cast buffers too, so `cos_sin` rebuilds it if that happened.
        self.register_buffer("inv_freq", self._inv_freq(torch.device("cpu")), persistent=False)

    def _inv_freq(self, device: torch.device, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        exponents = torch.arange(0, self.rotary_dim, 2, dtype=torch.float64, device=device) / self.rotary_dim
        return (1.0 / self.base**exponents).to(dtype)  # (R/2,)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, rotary_dim={self.rotary_dim}, base={self.base:g}"

    def cos_sin(
        self, num_tokens: int, offset: int = 0, device: torch.device | None = None, dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosines and sines (N, R/2) for positions ``offset … offset + N - 1``, returned in ``dtype``.

        The angles themselves are formed in float64: a float32 angle at position 10^4 is already off by ~5e-4 rad,
        which breaks the relative-position property at long inputs. The table is tiny, so this costs nothing.
        """
        device = torch.device(self.inv_freq.device if device is None else device)
        # Under torch.compile the table is part of the graph, and the cache key is never built:
        # torch.is_inference_mode_enabled() breaks a dynamo graph (one break per transformer layer).
        cacheable = not torch.compiler.is_compiling()
        key = (self.rotary_dim, self.base, num_tokens, offset, device, dtype,
               torch.is_inference_mode_enabled()) if cacheable else None
        if cacheable and key in _TABLES:
            _TABLES.move_to_end(key)
            return _TABLES[key]
        positions = torch.arange(offset, offset + num_tokens, device=device, dtype=torch.int64)  # (N,)
        table = self.cos_sin_at(positions, dtype)
        if cacheable:
            _TABLES[key] = table
            if len(_TABLES) > _MAX_TABLES:
                _TABLES.popitem(last=False)
        return table

    def cos_sin_at(
        self, positions: torch.Tensor, dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosines and sines (..., R/2) at integer ``positions`` (...,): one position per token, e.g. (B, N) when
        each item of a stream has its own start (streaming after a per-item reset)."""
        device = positions.device
        # MPS has no float64; there the angles stay in float32.
        angle_dtype = torch.float32 if device.type == "mps" else torch.float64
        inv_freq = self.inv_freq
        if inv_freq.dtype != torch.float64 or inv_freq.device != device:
            inv_freq = self._inv_freq(device, angle_dtype)
        angles = positions.to(angle_dtype)[..., None] * inv_freq.to(angle_dtype)  # (..., R/2)
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Rotate queries or keys.

        Args:
            x: (B, H, N, Dh).
            offset: Position of the first token (e.g. a chunk's start in a longer stream).

        Returns:
            (B, H, N, Dh) in the dtype of ``x``; dims beyond ``rotary_dim`` are returned unchanged.
        """
        if x.ndim != 4 or x.shape[-1] != self.head_dim:
            raise ValueError(f"x must be (B, H, N, Dh={self.head_dim}), got {tuple(x.shape)}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an int >= 0, got {offset!r}")
        cos, sin = self.cos_sin(x.shape[-2], offset, device=x.device, dtype=_compute_dtype(x))
        return apply_rotary(x, cos, sin)

    def rotate_at(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Rotate queries or keys (B, H, N, Dh) at per-item absolute positions (B, N) int64; the same numbers as
        :meth:`forward` with ``offset`` wherever the positions agree."""
        if x.ndim != 4 or x.shape[-1] != self.head_dim:
            raise ValueError(f"x must be (B, H, N, Dh={self.head_dim}), got {tuple(x.shape)}")
        if positions.shape != (x.shape[0], x.shape[2]) or positions.dtype != torch.int64:
            raise ValueError(f"positions must be int64 (B, N) = {(x.shape[0], x.shape[2])}, got "
                             f"{positions.dtype} {tuple(positions.shape)}")
        cos, sin = self.cos_sin_at(positions, _compute_dtype(x))  # (B, N, R/2)
        return apply_rotary(x, cos[:, None], sin[:, None])


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32
