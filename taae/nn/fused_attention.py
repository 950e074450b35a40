"""The CUDA-only backends of windowed attention: FlexAttention (``flex``) and flash-attn (``flash``).

Both compute the §5 window inside one fused kernel instead of masking dense scores. Neither is guaranteed to
work: flash-attn is an optional package (fp16/bf16 only), and ``torch.compile(flex_attention)`` can fail or
silently fall back to a slow eager path, so FlexAttention is probed once per (device, dtype, head dim) and trusted
only after a real compile. What to run instead when a probe fails is decided in :mod:`taae.nn.attention`.

Shapes:
    B batch, H heads, N tokens, Dh head dim.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings

import torch
from einops import rearrange

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
