"""Sliding-window self-attention with interchangeable backends.

TAAE restricts every transformer layer to a local window (§5): with ``window=(left, right)`` key ``j`` is
visible to query ``i`` iff ``i - left <= j <= i + right``, both ends inclusive, exactly flash-attn's
``window_size`` semantics. The released code (stable-audio-tools) needs flash-attn for this and otherwise runs
*full* attention (§9 item 1); here every backend computes the same windowed function:

- ``naive``: explicit scores, additive ``-inf`` band mask, softmax in float32 (float64 for float64 input).
  The reference; memory O(N²).
- ``sdpa``: ``F.scaled_dot_product_attention`` with a dense banded boolean mask. Fastest for short N.
- ``chunked``: queries in blocks of ``C``; each block attends only to its keys plus a halo of ``left``/``right``
  keys, many blocks per SDPA call, recomputed block group by group in backward. Work O(N·(C + left + right)),
  extra memory one group; the CPU path for long inputs.
- ``flex``: FlexAttention with a block-sparse mask, compiled with ``torch.compile`` (CUDA only).
- ``flash``: flash-attn's ``flash_attn_func`` (CUDA, fp16/bf16, only if ``flash_attn`` is installed).
- ``auto``: picks one of the above by device, dtype and N. It never falls back to full attention.

Shapes:
    B batch, H heads, N tokens, Dh head dim.

This file holds the dispatcher, the input checks and the dense backends; the ``chunked`` backend lives in
:mod:`taae.nn.chunked_attention`, ``flex`` and ``flash`` in :mod:`taae.nn.fused_attention`.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import functools
import math
import operator
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from taae.nn.chunked_attention import _default_chunk_size, chunked_attention
from taae.nn.fused_attention import _FLEX_ERRORS, _FLEX_OK, _flash, _flash_importable, _flex, _flex_compiles

__all__ = [
    "BACKENDS",
    "CPU_DENSE_MAX_TOKENS",
    "CUDA_DENSE_MAX_TOKENS",
    "available_backends",
    "choose_backend",
    "windowed_attention",
]

BACKENDS = ("auto", "naive", "sdpa", "chunked", "flex", "flash")

# `auto`: dense banded SDPA up to these lengths, chunked (CPU) or FlexAttention (CUDA) beyond; the break-even
# measurements behind both are docs/decisions.md §10.
CPU_DENSE_MAX_TOKENS = 512
CUDA_DENSE_MAX_TOKENS = 2048

_HALF_DTYPES = (torch.float16, torch.bfloat16)


# helper functions


def _normalize_window(window: Sequence[int | None], num_tokens: int) -> tuple[int, int]:
    """Validate ``(left, right)`` and clamp each side to ``N - 1``; ``None`` or -1 means unbounded on that side."""
    if isinstance(window, (str, bytes)) or not isinstance(window, Sequence) or len(window) != 2:
        raise ValueError(f"window must be a pair (left, right) of non-negative ints, got {window!r}")
    sides = []
    for name, side in zip(("left", "right"), window):
        if side is None:
            side = -1
        if isinstance(side, bool):
            raise ValueError(f"window {name} must be an int >= 0 (or None/-1 for unbounded), got {side!r}")
        try:
            side = operator.index(side)
        except TypeError:
            raise ValueError(
                f"window {name} must be an int >= 0 (or None/-1 for unbounded), got {side!r}"
            ) from None
        if side < -1:
            raise ValueError(f"window {name} must be an int >= 0 (or None/-1 for unbounded), got {side}")
        # A side wider than the sequence changes nothing; clamping makes unbounded sides ordinary numbers.
        sides.append(num_tokens - 1 if side == -1 else min(side, max(num_tokens - 1, 0)))
    return sides[0], sides[1]


def _check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None) -> float:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a 4-D tensor (B, H, N, Dh), got {shape}")
    if not (q.shape == k.shape == v.shape):
        raise ValueError(
            f"q, k and v must have the same shape (B, H, N, Dh), got {tuple(q.shape)}, {tuple(k.shape)}, "
            f"{tuple(v.shape)}"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k and v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k and v must be on one device, got {q.device}, {k.device}, {v.device}")
    if not q.is_floating_point():
        raise ValueError(f"q, k and v must be floating point, got {q.dtype}")
    if q.shape[-2] == 0:
        raise ValueError("attention needs at least one token (N >= 1), got N = 0")
    if scale is None:
        return 1.0 / math.sqrt(q.shape[-1])
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a positive finite float or None (1/sqrt(Dh)), got {scale!r}")
    return float(scale)


def _is_full(num_tokens: int, left: int, right: int) -> bool:
    """True when the band covers every (i, j) pair, so no mask is needed at all."""
    return left >= num_tokens - 1 and right >= num_tokens - 1


@functools.lru_cache(maxsize=8)
def _band_mask(num_tokens: int, left: int, right: int, device: torch.device) -> torch.Tensor:
    """Dense boolean band (N, N), True where key j is visible to query i. Cached: at N=16000 it is 256 MB."""
    i = torch.arange(num_tokens, device=device)
    offset = i[None, :] - i[:, None]  # (N, N): j - i
    return (offset >= -left) & (offset <= right)


# backends


def _naive(q, k, v, left, right, scale):
    # Scores in float32 even for half inputs: this path is the reference the others are measured against.
    compute_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    n = q.shape[-2]
    scores = torch.einsum("bhid,bhjd->bhij", q.to(compute_dtype), k.to(compute_dtype)) * scale  # (B, H, N, N)
    i = torch.arange(n, device=q.device)
    offset = i[None, :] - i[:, None]  # (N, N): j - i
    visible = (offset >= -left) & (offset <= right)
    bias = torch.zeros(n, n, dtype=compute_dtype, device=q.device).masked_fill(~visible, float("-inf"))
    weights = torch.softmax(scores + bias, dim=-1)
    out = torch.einsum("bhij,bhjd->bhid", weights, v.to(compute_dtype))  # (B, H, N, Dh)
    return out.to(q.dtype)


def _sdpa(q, k, v, left, right, scale):
    n = q.shape[-2]
    if _is_full(n, left, right):
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    if left >= n - 1 and right == 0:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    mask = _band_mask(n, left, right, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


# The chunked backend's routing stays next to `_sdpa` so that chunked_attention.py never imports from this file.
def _chunked(q, k, v, left, right, scale, chunk_size=None):
    n = q.shape[-2]
    chunk = chunk_size or _default_chunk_size(left, right)
    if left >= n - 1 or right >= n - 1 or n <= chunk:
        # An unbounded side (or a single chunk) leaves nothing to skip: the halo would hold every key anyway, and
        # the dense path is the same computation without it.
        return _sdpa(q, k, v, left, right, scale)
    return chunked_attention(q, k, v, left, right, scale, chunk)


# Run-time fallbacks: the dispatcher decides what runs instead of a backend that failed, and says so once.
_WARNED: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _flex_fallback(q, k, v, left, right, scale, chunk_size):
    reason = _FLEX_ERRORS.get((q.device, q.dtype, q.shape[-1]), "")
    _warn_once(
        f"flex:{q.device}:{q.dtype}",
        f"FlexAttention did not compile on {q.device} for {q.dtype} ({reason}); using the 'chunked' windowed "
        "backend instead (same result, slower).",
    )
    return _chunked(q, k, v, left, right, scale, chunk_size)


_IMPLS = {"naive": _naive, "sdpa": _sdpa}


# public API


def available_backends(device: torch.device | str, dtype: torch.dtype, head_dim: int = 128) -> list[str]:
    """Explicit backends that work for ``device`` and ``dtype`` (``auto`` excluded).

    On CUDA this compiles FlexAttention once per (dtype, head dim), a few seconds, to check that it really compiles.
    """
    device = torch.device(device)
    backends = ["naive", "sdpa", "chunked"]
    if device.type == "cuda":
        if _flex_compiles(device, dtype, head_dim):
            backends.append("flex")
        if _flash_importable() and dtype in _HALF_DTYPES:
            backends.append("flash")
    return backends


def choose_backend(device: torch.device | str, dtype: torch.dtype, num_tokens: int, head_dim: int = 128) -> str:
    """The backend ``auto`` uses for N = ``num_tokens`` tokens of ``dtype`` on ``device``.

    CPU (and other non-CUDA devices): ``sdpa`` up to ``CPU_DENSE_MAX_TOKENS``, else ``chunked``. CUDA: ``flash``
    for fp16/bf16 when flash-attn is installed; else ``sdpa`` up to ``CUDA_DENSE_MAX_TOKENS``; else ``flex`` if it
    compiles; else ``chunked``. Never full attention.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return "sdpa" if num_tokens <= CPU_DENSE_MAX_TOKENS else "chunked"
    if _flash_importable() and dtype in _HALF_DTYPES:
        return "flash"
    if num_tokens <= CUDA_DENSE_MAX_TOKENS:
        return "sdpa"
    return "flex" if _flex_compiles(device, dtype, head_dim) else "chunked"


def windowed_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: Sequence[int | None] = (63, 64),
    backend: str = "auto",
    scale: float | None = None,
    *,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Sliding-window attention: query i attends to keys ``i - left … i + right`` (inclusive).

    Args:
        q: Queries (B, H, N, Dh).
        k: Keys (B, H, N, Dh).
        v: Values (B, H, N, Dh).
        window: ``(left, right)`` keys visible before and after each query, flash-attn ``window_size`` semantics;
            causal is ``(left, 0)``. ``None`` or -1 on a side means unbounded on that side and must be asked for
            explicitly: ``(None, None)`` is full attention. The default is TAAE's (63, 64).
        backend: One of ``BACKENDS``. ``auto`` picks by device, dtype and N (see ``choose_backend``).
        scale: Score scale; ``None`` means ``1 / sqrt(Dh)``.
        chunk_size: Query block C of the ``chunked`` backend (and of the fallback from ``flex``); ``None`` picks
            ``max(64, next power of two above left + right)``.

    Returns:
        Attention output (B, H, N, Dh) in the dtype of ``q``.

    Raises:
        ValueError: Bad shapes, dtypes, window, scale, chunk size or backend name.
        RuntimeError: ``flex`` or ``flash`` requested where it cannot run.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    scale = _check_inputs(q, k, v, scale)
    n = q.shape[-2]
    left, right = _normalize_window(window, n)
    bad_chunk = isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    if chunk_size is not None and bad_chunk:
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")

    if backend == "auto":
        backend = choose_backend(q.device, q.dtype, n, q.shape[-1])

    if backend == "chunked":
        return _chunked(q, k, v, left, right, scale, chunk_size)
    if backend == "flex":
        if q.device.type != "cuda":
            raise RuntimeError(
                f"backend 'flex' needs a CUDA device (FlexAttention has no backward on CPU), got {q.device}; "
                "use 'sdpa' or 'chunked'"
            )
        if not _flex_compiles(q.device, q.dtype, q.shape[-1]):
            return _flex_fallback(q, k, v, left, right, scale, chunk_size)
        try:
            return _flex(q, k, v, left, right, scale)
        except Exception as err:  # a recompile for a new shape can still fail; stay windowed, never go full
            _FLEX_OK[(q.device, q.dtype, q.shape[-1])] = False
            _FLEX_ERRORS[(q.device, q.dtype, q.shape[-1])] = f"{type(err).__name__}: {err}"
            return _flex_fallback(q, k, v, left, right, scale, chunk_size)
    if backend == "flash":
        if not _flash_importable():
            raise RuntimeError("backend 'flash' needs the flash_attn package (pip install 'taae[flash]')")
        if q.device.type != "cuda" or q.dtype not in _HALF_DTYPES:
            raise RuntimeError(
                f"backend 'flash' needs CUDA fp16/bf16 inputs, got {q.dtype} on {q.device}; "
                "cast to bfloat16 or use 'sdpa'/'chunked'"
            )
        return _flash(q, k, v, left, right, scale)
    return _IMPLS[backend](q, k, v, left, right, scale)
