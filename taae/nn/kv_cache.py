"""A KV cache for streaming causal windowed attention that equals the offline attention exactly.

Shape legend: B batch, H heads, N new tokens of a chunk, W = left (window's left side), Dh head dim.

With ``window=(left, 0)`` query i attends to keys i − left … i. A chunk of N queries at positions p … p + N − 1
therefore needs the keys p − left … p + N − 1: the ``left`` keys before the chunk plus the chunk's own N. The cache
keeps exactly the last ``left`` keys and values *between* chunks, and each step attends over the concatenation
(``left + N`` keys, at least the ``left + chunk − 1`` the window needs):

    cache (before)   |k_{p−left} … k_{p−1}|                    kept from the previous chunks
    this chunk                            |k_p … k_{p+N−1}|    computed now
    query p + i sees          |k_{p+i−left} …  k_{p+i}|        a band of the (N, left + N) block
    cache (after)                 |k_{p+N−left} … k_{p+N−1}|   the last ``left`` of the concatenation

A ring buffer of capacity ``left`` that is written *before* the queries read it (Kyutai's Mimi,
``moshi/modules/transformer.py``, ``RingKVCache``) overwrites keys that the early queries of a multi-frame chunk
still need; here nothing is overwritten until the whole chunk has read it.

Positions are absolute and per item (B,): they count the tokens an item has seen since its stream (re)started, so
RoPE rotates each key once, at the position the offline model gives it, and a per-item reset (position 0, cache
zeros) starts that item's stream afresh while the others continue. Slots before position 0 are masked. The blocks
of a stack share one clock, so the RoPE tables and the mask are built once per chunk (:func:`chunk_window`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from taae.nn.rope import RotaryEmbedding

__all__ = ["ChunkWindow", "KVCache", "StackState", "cached_attention", "chunk_window", "empty_stack_state"]


class KVCache(NamedTuple):
    """Streaming state of one attention layer (tuples of tensors, as ONNX and TorchScript need)."""

    keys: Tensor
    """(B, H, left, Dh) the last ``left`` keys, RoPE already applied; slots before position 0 are zeros."""
    values: Tensor
    """(B, H, left, Dh) their values."""


class StackState(NamedTuple):
    """Streaming state of a transformer stack: one clock for its blocks (they see the same tokens) and their caches."""

    positions: Tensor
    """(B,) int64 tokens each item has seen since its stream (re)started: the absolute position of the next one."""
    caches: tuple[KVCache, ...]
    """One cache per block."""


class ChunkWindow(NamedTuple):
    """What every block of a stack shares for one chunk: RoPE at the chunk's positions and the visibility mask."""

    cos: Tensor
    """(B, 1, N, R/2) cosines at the chunk's absolute positions."""
    sin: Tensor
    """(B, 1, N, R/2) sines."""
    visible: Tensor
    """(B, 1, N, left + N) bool: key j (cache then chunk) is visible to query i."""


def empty_stack_state(batch_size: int, depth: int, num_heads: int, left: int, head_dim: int, like: Tensor
                      ) -> StackState:
    """A fresh stream: zero keys and values (masked out) at position 0, dtype and device of ``like``."""
    zeros = like.new_zeros(batch_size, num_heads, left, head_dim)
    caches = tuple(KVCache(zeros.clone(), zeros.clone()) for _ in range(depth))
    return StackState(torch.zeros(batch_size, dtype=torch.int64, device=like.device), caches)


def chunk_window(positions: Tensor, num_tokens: int, left: int, rope: RotaryEmbedding, dtype: torch.dtype
                 ) -> ChunkWindow:
    """RoPE tables and the causal band for a chunk of N tokens whose first sits at ``positions`` (B,)."""
    steps = torch.arange(left + num_tokens, device=positions.device)
    key_pos = positions[:, None] - left + steps  # (B, left + N): cache slots, then the chunk
    query_pos = key_pos[:, left:]  # (B, N)
    gap = query_pos[:, :, None] - key_pos[:, None, :]  # (B, N, left + N): i − j
    visible = (gap >= 0) & (gap <= left) & (key_pos[:, None, :] >= 0)
    cos, sin = rope.cos_sin_at(query_pos, torch.float64 if dtype == torch.float64 else torch.float32)
    return ChunkWindow(cos[:, None], sin[:, None], visible[:, None])


def cached_attention(q: Tensor, k: Tensor, v: Tensor, cache: KVCache, window: ChunkWindow
                     ) -> tuple[Tensor, KVCache]:
    """Windowed causal attention of a chunk's queries over the cache and the chunk's own keys.

    Args:
        q, k, v: (B, H, N, Dh), RoPE already applied to ``q`` and ``k`` (``window.cos``/``window.sin``).
        cache: the layer's cache before the chunk.
        window: from :func:`chunk_window`.

    Returns:
        ``(out (B, H, N, Dh), the cache after the chunk)``; the score scale is 1/sqrt(Dh), as offline.
    """
    left = cache.keys.shape[2]
    keys = torch.cat((cache.keys, k), dim=2)  # (B, H, left + N, Dh)
    values = torch.cat((cache.values, v), dim=2)
    out = F.scaled_dot_product_attention(q, keys, values, attn_mask=window.visible)
    keep = keys.shape[2] - left
    return out, KVCache(keys[:, :, keep:], values[:, :, keep:])
