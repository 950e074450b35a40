"""The ``chunked`` backend of windowed attention: query blocks against their keys plus a halo, O(N·W) work.

§5 restricts attention to a local window; the dense backends still compute (or mask) all N² scores. Here the
queries are cut into chunks of C, and each chunk attends only to the W = C + left + right keys it can see:

    queries             |-- chunk g (C) --|
    keys seen    |-left-|-- chunk g (C) --|-right-|      one (C, W) score block per chunk

Many chunks run in one SDPA call (a group of G chunks); groups run one after another.

Backward stores only q, k and v and recomputes one group at a time (:class:`_ChunkedAttention`), so the extra
memory is one group, sized by ``CHUNKED_GROUP_BYTES``. :func:`taae.nn.attention.windowed_attention` validates the
inputs and sends unbounded windows and single-chunk inputs to dense SDPA before they reach this file.

Shapes:
    B batch, H heads, N tokens, Dh head dim, C query chunk size, W = C + left + right keys seen by one chunk,
    M number of chunks, G chunks in one group.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from einops import rearrange

__all__ = ["CHUNKED_GROUP_BYTES", "MIN_CHUNK_SIZE", "chunked_attention"]

# Default query block of the chunked backend: at least the window span, rounded up to a power of two. Each block
# computes C + left + right scores per query where left + right + 1 are useful, so a small C wastes less work and
# memory; below ~64 the per-block matmuls get too small to run efficiently.
MIN_CHUNK_SIZE = 64

# The chunked backend runs its chunks in groups whose scores, key windows and outputs take about this many bytes,
# per device type: bigger groups mean fewer, larger kernels, smaller ones less peak memory (measured trade-off:
# docs/decisions.md §10). CUDA: ours, large enough that a group is dozens of chunks (few launches).
CHUNKED_GROUP_BYTES = {"cpu": 16 * 2**20, "cuda": 256 * 2**20}


@functools.lru_cache(maxsize=16)
def _chunk_mask(chunk: int, left: int, right: int, device: torch.device) -> torch.Tensor:
    """Band (C, W) of one interior chunk whose keys start ``left`` before its first query."""
    keys = torch.arange(chunk + left + right, device=device)
    offset = keys[None, :] - left - torch.arange(chunk, device=device)[:, None]  # (C, W): j - i
    return (offset >= -left) & (offset <= right)


def _default_chunk_size(left: int, right: int) -> int:
    return max(MIN_CHUNK_SIZE, 1 << (left + right).bit_length())


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


def chunked_attention(q, k, v, left, right, scale, chunk):
    """Windowed attention computed chunk by chunk; ``left``/``right`` already validated and clamped.

    Args:
        q: Queries (B, H, N, Dh); ``k`` and ``v`` the same shape and dtype.
        left: Keys visible before each query, ``0 <= left < N - 1`` (bounded).
        right: Keys visible after each query, ``0 <= right < N - 1`` (bounded).
        scale: Score scale.
        chunk: Query block C, ``C < N``.

    Returns:
        Attention output (B, H, N, Dh) in the dtype of ``q``.
    """
    n = q.shape[-2]
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return _ChunkedAttention.apply(q, k, v, left, right, scale, chunk)
    return torch.cat(
        [
            _chunk_group(q[:, :, qs:qe], k[:, :, ks:ke], v[:, :, ks:ke], qs, ks, n, left, right, scale, chunk)
            for qs, qe, ks, ke in _chunk_groups(q, left, right, chunk)
        ],
        dim=2,
    )
