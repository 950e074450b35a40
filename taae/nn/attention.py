"""Sliding-window self-attention with interchangeable backends.

TAAE restricts every transformer layer to a local window (spec §3): with ``window=(left, right)`` key ``j`` is
visible to query ``i`` iff ``i - left <= j <= i + right``, both ends inclusive, exactly flash-attn's
``window_size`` semantics. The released code (stable-audio-tools) needs flash-attn for this and otherwise runs
*full* attention (spec §15 item 1); here every backend computes the same windowed function:

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
    B batch, H heads, N tokens, Dh head dim, C query chunk size, W = C + left + right keys seen by one chunk,
    M number of chunks.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import operator
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange

__all__ = [
    "BACKENDS",
    "CPU_DENSE_MAX_TOKENS",
    "CUDA_DENSE_MAX_TOKENS",
    "available_backends",
    "choose_backend",
    "windowed_attention",
]

BACKENDS = ("auto", "naive", "sdpa", "chunked", "flex", "flash")

# `auto` on CPU: a dense (N, N) mask plus SDPA's float copy of it cost ~5 bytes per entry (20 MiB at N=2048), which
# is harmless; beyond that memory grows quadratically (1.3 GiB at N=16000) and the chunked path takes over.
CPU_DENSE_MAX_TOKENS = 2048

# `auto` on CUDA without flash-attn: measured on an H100 (B=8, H=8, Dh=128, bf16, forward+backward, window
# (63, 64)): N=1000 dense banded SDPA 0.44 ms vs FlexAttention 0.99 ms; N=16000 FlexAttention 4.2 ms vs dense
# 51.8 ms. A power law through each pair (dense ~N^1.7, Flex ~N^0.5) crosses near N≈2000.
CUDA_DENSE_MAX_TOKENS = 2048

# Default query block of the chunked backend: at least the window span, rounded up to a power of two. Each block
# computes C + left + right scores per query where left + right + 1 are useful, so a small C wastes less work and
# memory; below ~64 the per-block matmuls get too small to run efficiently.
MIN_CHUNK_SIZE = 64

# The chunked backend runs its chunks in groups whose scores, key windows and outputs take about this many bytes,
# per device type. Bigger groups mean fewer, larger kernels; smaller ones less peak memory. CPU: measured at N=16000,
# H=8, Dh=128, fp32 fwd+bwd on 2 busy cores, 4 / 16 / 128 MiB groups took 17 / 5 / 1.2 s and 312 / 342 / 601 MiB
# peak RSS (dense sdpa: 2689 MiB). CUDA: ours, large enough that a group is dozens of chunks (few launches).
CHUNKED_GROUP_BYTES = {"cpu": 16 * 2**20, "cuda": 256 * 2**20}

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


@functools.lru_cache(maxsize=16)
def _chunk_mask(chunk: int, left: int, right: int, device: torch.device) -> torch.Tensor:
    """Band (C, W) of one interior chunk whose keys start ``left`` before its first query."""
    keys = torch.arange(chunk + left + right, device=device)
    offset = keys[None, :] - left - torch.arange(chunk, device=device)[:, None]  # (C, W): j - i
    return (offset >= -left) & (offset <= right)


def _default_chunk_size(left: int, right: int) -> int:
    return max(MIN_CHUNK_SIZE, 1 << (left + right).bit_length())


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


def _chunk_group(q, k, v, q_start, k_start, num_tokens, left, right, scale, chunk):
    """Attention of the queries in ``q`` (global positions from ``q_start``) to their windows in ``k``/``v``.

    ``q`` holds G chunks of C queries (the last may be short); ``k``/``v`` hold every key those chunks can see, from
    global position ``k_start``. All chunks run in one SDPA call over a chunk axis, each against its own
    W = C + left + right keys, so the work and memory are G·C·W rather than (G·C)².
    """
    b, h, nq, _ = q.shape
    m = -(-nq // chunk)
    w = chunk + left + right
    # Chunk g sees global keys [q_start + g*C - left, q_start + g*C + C + right); pad k/v with zeros so that every
    # chunk's window exists, then view the overlapping windows (unfold) instead of gathering them.
    lo = q_start - left
    pad_front = k_start - lo
    pad_back = lo + m * chunk + left + right - (k_start + k.shape[-2])
    k_pad = F.pad(k, (0, 0, pad_front, pad_back))  # (B, H, M*C + left + right, Dh)
    v_pad = F.pad(v, (0, 0, pad_front, pad_back))
    k_win = rearrange(k_pad.unfold(2, w, chunk), "b h m d w -> (b h) m w d")  # (B*H, M, W, Dh)
    v_win = rearrange(v_pad.unfold(2, w, chunk), "b h m d w -> (b h) m w d")
    q_blk = rearrange(F.pad(q, (0, 0, 0, m * chunk - nq)), "b h (m c) d -> (b h) m c d", c=chunk)  # (B*H, M, C, Dh)

    band = _chunk_mask(chunk, left, right, q.device)  # (C, W), the same for every chunk
    first_key = lo + torch.arange(m, device=q.device) * chunk  # (M,)
    key_pos = first_key[:, None] + torch.arange(w, device=q.device)  # (M, W)
    query_pos = q_start + torch.arange(m * chunk, device=q.device).view(m, chunk)  # (M, C)
    key_real = (key_pos >= 0) & (key_pos < num_tokens)
    # Padding rows past the last query are discarded, but they must still see some key: an all-masked row is NaN,
    # and NaN * 0 would still poison the real rows' gradients. Letting them see padded keys (zeros) is harmless.
    visible = band & (key_real[:, None, :] | (query_pos >= num_tokens)[:, :, None])  # (M, C, W)

    # The mask goes in 4-D: a 3-D mask sends CPU SDPA to its unfused math path, which materialises the scores.
    out = F.scaled_dot_product_attention(q_blk, k_win, v_win, attn_mask=visible[None], scale=scale)  # (B*H, M, C, Dh)
    return rearrange(out, "(b h) m c d -> b h (m c) d", b=b)[:, :, :nq]


def _chunk_groups(q, left, right, chunk):
    """Split the queries into groups of whole chunks sized so one group's scores fit in CHUNKED_GROUP_BYTES."""
    b, h, n, dh = q.shape
    w = chunk + left + right
    per_chunk = b * h * (chunk * w + 2 * w * dh + 2 * chunk * dh) * max(q.element_size(), 4)
    budget = CHUNKED_GROUP_BYTES.get(q.device.type, CHUNKED_GROUP_BYTES["cpu"])
    group = chunk * max(1, budget // per_chunk)
    for q_start in range(0, n, group):
        q_end = min(n, q_start + group)
        yield q_start, q_end, max(0, q_start - left), min(n, q_end + right)


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype | None]:
    try:
        return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    except (TypeError, AttributeError):  # torch < 2.4 spells these per device
        return (torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()) if device_type == "cuda" else (False, None)


class _ChunkedAttention(torch.autograd.Function):
    """Chunked windowed attention that stores only q, k, v for backward and recomputes each group there.

    Plain autograd through the group loop would keep every group's scores alive until backward (O(N·W) memory
    again) and turn each k/v slice's gradient into a full-size zero tensor (O(N²/C) time). Recomputing one group at
    a time keeps the extra memory at a single group, at the cost of one more forward pass.
    """

    @staticmethod
    def forward(ctx, q, k, v, left, right, scale, chunk):
        n = q.shape[-2]
        out = torch.empty_like(q)
        for q_start, q_end, k_start, k_end in _chunk_groups(q, left, right, chunk):
            out[:, :, q_start:q_end] = _chunk_group(
                q[:, :, q_start:q_end], k[:, :, k_start:k_end], v[:, :, k_start:k_end],
                q_start, k_start, n, left, right, scale, chunk,
            )  # fmt: skip
        ctx.save_for_backward(q, k, v)
        ctx.args = (left, right, scale, chunk)
        ctx.autocast = _autocast_state(q.device.type)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        q, k, v = ctx.saved_tensors
        left, right, scale, chunk = ctx.args
        n = q.shape[-2]
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        enabled, dtype = ctx.autocast
        with torch.enable_grad(), torch.autocast(q.device.type, dtype=dtype, enabled=enabled):
            for q_start, q_end, k_start, k_end in _chunk_groups(q, left, right, chunk):
                qg = q[:, :, q_start:q_end].detach().requires_grad_()
                kg = k[:, :, k_start:k_end].detach().requires_grad_()
                vg = v[:, :, k_start:k_end].detach().requires_grad_()
                out = _chunk_group(qg, kg, vg, q_start, k_start, n, left, right, scale, chunk)
                gq, gk, gv = torch.autograd.grad(out, (qg, kg, vg), grad_out[:, :, q_start:q_end])
                dq[:, :, q_start:q_end] = gq
                dk[:, :, k_start:k_end] += gk  # neighbouring groups share halo keys
                dv[:, :, k_start:k_end] += gv
        return dq, dk, dv, None, None, None, None


def _chunked(q, k, v, left, right, scale, chunk_size=None):
    n = q.shape[-2]
    chunk = chunk_size or _default_chunk_size(left, right)
    if left >= n - 1 or right >= n - 1 or n <= chunk:
        # An unbounded side (or a single chunk) leaves nothing to skip: the halo would hold every key anyway, and
        # the dense path is the same computation without it.
        return _sdpa(q, k, v, left, right, scale)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return _ChunkedAttention.apply(q, k, v, left, right, scale, chunk)
    return torch.cat(
        [
            _chunk_group(q[:, :, qs:qe], k[:, :, ks:ke], v[:, :, ks:ke], qs, ks, n, left, right, scale, chunk)
            for qs, qe, ks, ke in _chunk_groups(q, left, right, chunk)
        ],
        dim=2,
    )


_FLASH_AVAILABLE: bool | None = None


def _flash_importable() -> bool:
    global _FLASH_AVAILABLE
    if _FLASH_AVAILABLE is None:
        _FLASH_AVAILABLE = importlib.util.find_spec("flash_attn") is not None
    return _FLASH_AVAILABLE


def _flash(q, k, v, left, right, scale):
    from flash_attn import flash_attn_func

    # flash-attn takes (B, N, H, Dh); -1 is its "unbounded" spelling.
    n = q.shape[-2]
    q, k, v = (rearrange(t, "b h n d -> b n h d") for t in (q, k, v))
    window = (-1 if left >= n - 1 else left, -1 if right >= n - 1 else right)
    out = flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=scale, causal=False, window_size=window)
    return rearrange(out, "b n h d -> b h n d")


# FlexAttention: compiled lazily, once per process, and only trusted after a probe call compiled for real.
_FLEX_COMPILED = None
_FLEX_OK: dict[tuple[torch.device, torch.dtype, int], bool] = {}
_FLEX_ERRORS: dict[tuple[torch.device, torch.dtype, int], str] = {}
_WARNED: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _flex_fn():
    global _FLEX_COMPILED
    if _FLEX_COMPILED is None:
        from torch.nn.attention.flex_attention import flex_attention

        # fullgraph=True turns graph breaks into errors instead of a silent partial (and slow) eager run.
        _FLEX_COMPILED = torch.compile(flex_attention, fullgraph=True)
    return _FLEX_COMPILED


@functools.lru_cache(maxsize=8)
def _flex_block_mask(num_tokens: int, left: int, right: int, device: torch.device):
    from torch.nn.attention.flex_attention import create_block_mask

    def band(b, h, q_idx, kv_idx):
        offset = kv_idx - q_idx
        return (offset >= -left) & (offset <= right)

    return create_block_mask(band, B=None, H=None, Q_LEN=num_tokens, KV_LEN=num_tokens, device=device)


def _flex_compiles(device: torch.device, dtype: torch.dtype, head_dim: int = 128) -> bool:
    """Run a small forward+backward through the compiled FlexAttention once; any error or fallback warning fails.

    ``torch.compile(flex_attention)`` can fail and then run the unfused eager implementation, which is correct
    but materialises (N, N) scores and is many times slower, so a compile that merely returns is not proof. The
    kernel's tiling depends on the head dim (128 in TAAE), so the probe uses the caller's.
    """
    key = (device, dtype, head_dim)
    if key in _FLEX_OK:
        return _FLEX_OK[key]
    ok, reason = False, ""
    if device.type != "cuda":
        reason = f"FlexAttention runs only on CUDA here (it has no backward on CPU), got device {device}"
    elif importlib.util.find_spec("torch.nn.attention.flex_attention") is None:
        reason = f"torch {torch.__version__} has no torch.nn.attention.flex_attention"
    else:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                n = 256
                shape = (1, 2, n, head_dim)
                q, k, v = (torch.randn(shape, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
                out = _flex_fn()(q, k, v, block_mask=_flex_block_mask(n, 3, 5, device))
                out.sum().backward()
                torch.cuda.synchronize(device)
            signs = ("fall back", "fallback", "unfused", "without torch.compile")
            fallback = [str(w.message) for w in caught if any(s in str(w.message).lower() for s in signs)]
            ok = not fallback
            reason = "; ".join(fallback)
        except Exception as err:  # a failed compile can raise almost anything (backend, Triton, lowering errors)
            reason = f"{type(err).__name__}: {err}"
    _FLEX_OK[key] = ok
    _FLEX_ERRORS[key] = reason
    return ok


def _flex(q, k, v, left, right, scale):
    block_mask = _flex_block_mask(q.shape[-2], left, right, q.device)
    if torch.compiler.is_compiling():
        # Inside a caller's torch.compile region the outer compile fuses it; nesting another compile is pointless.
        from torch.nn.attention.flex_attention import flex_attention

        return flex_attention(q, k, v, block_mask=block_mask, scale=scale)
    return _flex_fn()(q, k, v, block_mask=block_mask, scale=scale)


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
