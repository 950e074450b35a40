"""The TAAE transformer layer (§5) and a stack of them.

Shape legend: B batch, N frames (tokens), C model width, H heads, Dh head dim.

Pre-norm residual block:  x ← x + γ_att ⊙ Attn(LN₁(x));  x ← x + γ_ff ⊙ SwiGLU(LN₂(x))
- LN₁/LN₂: scale only, no bias, ε = 1e-2 (raised so that near-silent input does not blow up, §5).
- QK-norm: LayerNorm over Dh with affine weight and bias, shared by all heads, before RoPE.
- RoPE on the first half of each head's dims; sliding-window attention (flash-attn window semantics).
- LayerScale γ initialised to 1e-5 on both branches, so the block starts close to identity.

Streaming (causal windows ``(left, 0)`` only): ``init_state(batch_size)`` and ``step(x, state) -> (y, state)`` run one
chunk at a time against a KV cache (:mod:`taae.nn.kv_cache`) and give the offline ``forward``'s numbers.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from taae.nn.attention import windowed_attention
from taae.nn.kv_cache import ChunkWindow, KVCache, StackState, cached_attention, chunk_window, empty_stack_state
from taae.nn.rope import RotaryEmbedding, apply_rotary


class LayerScale(nn.Module):
    """Per-channel learnable scale on a residual branch (CaiT); init 1e-5 as in the released code (§5)."""

    def __init__(self, dim: int, init: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma

    def residual(self, x: Tensor, branch: Tensor) -> Tensor:
        """``x + γ ⊙ branch`` in one pass (addcmul) instead of a scaled copy and an add."""
        return torch.addcmul(x, branch, self.gamma)


class SwiGLU(nn.Module):
    """Linear(C, 2·m·C) → value · SiLU(gate) → Linear(m·C, C), both with bias (§5, m = 4)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.proj_in = nn.Linear(dim, 2 * mult * dim)
        self.proj_out = nn.Linear(mult * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(F.silu(gate).mul_(value))  # in place: one (B, N, m·C) temporary, not two


class WindowedSelfAttention(nn.Module):
    """Multi-head self-attention over a sliding window, with QK-norm and partial RoPE."""

    def __init__(self, dim: int, head_dim: int = 128, window: tuple[int, int] = (63, 64),
                 qk_norm_eps: float = 1e-6, backend: str = "auto"):
        super().__init__()
        if dim % head_dim:
            raise ValueError(f"model width {dim} is not a multiple of head_dim {head_dim}")
        self.num_heads = dim // head_dim
        self.window = (int(window[0]), int(window[1]))
        self.backend = backend
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        self.q_norm = nn.LayerNorm(head_dim, eps=qk_norm_eps)
        self.k_norm = nn.LayerNorm(head_dim, eps=qk_norm_eps)
        self.rope = RotaryEmbedding(head_dim)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:  # x: (B, N, C)
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        q, k = self.rope(self.q_norm(q), offset), self.rope(self.k_norm(k), offset)
        out = windowed_attention(q, k, v, window=self.window, backend=self.backend)  # (B, H, N, Dh)
        return self.out(rearrange(out, "b h n d -> b n (h d)"))

    def step(self, x: Tensor, cache: KVCache, window: ChunkWindow) -> tuple[Tensor, KVCache]:  # x: (B, N, C)
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads)
        # Queries and keys rotate in one call (absolute positions, per item): half the small ops of a one-frame chunk.
        q, k = apply_rotary(torch.stack((self.q_norm(q), self.k_norm(k))), window.cos, window.sin).unbind(0)
        out, cache = cached_attention(q, k, v, cache, window)  # (B, H, N, Dh)
        return self.out(rearrange(out, "b h n d -> b n (h d)")), cache


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, head_dim: int = 128, window: tuple[int, int] = (63, 64), ffn_mult: int = 4,
                 norm_eps: float = 1e-2, qk_norm_eps: float = 1e-6, layer_scale_init: float = 1e-5,
                 attention_backend: str = "auto"):
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim, eps=norm_eps, bias=False)
        self.attn = WindowedSelfAttention(dim, head_dim, window, qk_norm_eps, attention_backend)
        self.scale_attn = LayerScale(dim, layer_scale_init)
        self.norm_ff = nn.LayerNorm(dim, eps=norm_eps, bias=False)
        self.ff = SwiGLU(dim, ffn_mult)
        self.scale_ff = LayerScale(dim, layer_scale_init)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:  # (B, N, C)
        x = self.scale_attn.residual(x, self.attn(self.norm_attn(x), offset))
        return self.scale_ff.residual(x, self.ff(self.norm_ff(x)))

    def step(self, x: Tensor, cache: KVCache, window: ChunkWindow) -> tuple[Tensor, KVCache]:  # (B, N, C)
        attended, cache = self.attn.step(self.norm_attn(x), cache, window)
        x = x + self.scale_attn(attended)
        return x + self.scale_ff(self.ff(self.norm_ff(x))), cache


class Transformer(nn.Module):
    """A stack of ``TransformerBlock``s on channel-first input (B, C, N), as the conv stages hand it over."""

    def __init__(self, dim: int, depth: int, checkpointing: bool = False, **block_kwargs):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, **block_kwargs) for _ in range(depth))
        self.checkpointing = checkpointing

    def forward(self, x: Tensor) -> Tensor:  # (B, C, N)
        if not self.blocks:
            return x
        x = rearrange(x, "b c n -> b n c")
        for block in self.blocks:
            if self.checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return rearrange(x, "b n c -> b c n")

    def init_state(self, batch_size: int) -> StackState:
        """A fresh stream's state: position 0 and an empty KV cache of ``left`` keys per block."""
        if not self.blocks:  # a depth-0 stage: only the clock (on the CPU: there is no parameter to follow)
            return StackState(torch.zeros(batch_size, dtype=torch.int64), ())
        attn = self.blocks[0].attn
        if attn.window[1] != 0:
            raise ValueError(f"streaming attention needs a causal window (left, 0), got {attn.window}")
        return empty_stack_state(batch_size, len(self.blocks), attn.num_heads, attn.window[0], attn.rope.head_dim,
                                 attn.qkv.weight)

    def step(self, x: Tensor, state: StackState) -> tuple[Tensor, StackState]:
        """One chunk (B, C, N) → (output (B, C, N), the state after it); the offline ``forward``'s numbers."""
        if len(state.caches) != len(self.blocks):
            raise ValueError(f"Transformer.step: {len(self.blocks)} blocks but a state for {len(state.caches)}")
        n = x.shape[-1]
        if not self.blocks:
            return x, StackState(state.positions + n, state.caches)
        attn = self.blocks[0].attn
        window = chunk_window(state.positions, n, attn.window[0], attn.rope, x.dtype)
        x = rearrange(x, "b c n -> b n c")
        caches = []
        for block, cache in zip(self.blocks, state.caches):
            x, cache = block.step(x, cache, window)
            caches.append(cache)
        return rearrange(x, "b n c -> b c n"), StackState(state.positions + n, tuple(caches))
