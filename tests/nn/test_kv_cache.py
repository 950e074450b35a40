"""Streaming attention with a KV cache: chunk by chunk it equals the offline causal windowed attention."""

import pytest
import torch

from taae.nn.kv_cache import KVCache, cached_attention, chunk_window
from taae.nn.rope import RotaryEmbedding
from taae.nn.transformer import Transformer

CHUNKS = [1, 2, 3, 7]


def _stream(stack, x, chunk):
    """``stack.step`` over (B, C, N) input in chunks of ``chunk`` tokens (the last one shorter)."""
    state, outs = stack.init_state(x.shape[0]), []
    for a in range(0, x.shape[-1], chunk):
        y, state = stack.step(x[..., a: a + chunk], state)
        outs.append(y)
    return torch.cat(outs, dim=-1), state


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("left", [0, 1, 5])
def test_block_streams_like_the_offline_causal_block(left, chunk):
    torch.manual_seed(left * 10 + chunk)
    # LayerScale 1: at its 1e-5 init the attention branch barely reaches the output and would hide a wrong cache.
    stack = Transformer(32, depth=1, head_dim=16, window=(left, 0), layer_scale_init=1.0,
                        attention_backend="naive").eval()
    x = torch.randn(2, 32, max(3 * left, 1) + 11)  # ≥ 3× the left context, and not a multiple of the chunk
    with torch.no_grad():
        streamed, state = _stream(stack, x, chunk)
        torch.testing.assert_close(streamed, stack(x), atol=1e-5, rtol=0)
    assert state.caches[0].keys.shape == (2, 2, left, 16) and state.positions.tolist() == [x.shape[-1]] * 2


@pytest.mark.parametrize("chunk", CHUNKS)
def test_transformer_stack_streams_with_the_auto_backend(chunk):
    torch.manual_seed(chunk)
    stack = Transformer(32, depth=2, head_dim=16, window=(4, 0), layer_scale_init=1.0).eval()
    x = torch.randn(1, 32, 23)  # (B, C, N)
    with torch.no_grad():
        streamed, _ = _stream(stack, x, chunk)
        torch.testing.assert_close(streamed, stack(x), atol=1e-5, rtol=0)


def test_a_multi_token_chunk_reads_every_key_of_its_window():
    # The failure mode of a ring buffer of exactly `left` slots written before it is read: in a chunk of two,
    # the first query loses its oldest key. Here each query's output must equal attention over its own window.
    left, n = 3, 2
    q, k, v = torch.randn(3, 1, 1, 10, 4).unbind(0)
    rope = RotaryEmbedding(4)
    cache = KVCache(torch.zeros(1, 1, left, 4), torch.zeros(1, 1, left, 4))
    _, cache = cached_attention(q[:, :, :8], k[:, :, :8], v[:, :, :8], cache,
                                chunk_window(torch.tensor([0]), 8, left, rope, q.dtype))
    out, _ = cached_attention(q[:, :, 8:], k[:, :, 8:], v[:, :, 8:], cache,
                              chunk_window(torch.tensor([8]), n, left, rope, q.dtype))
    for i in range(n):
        pos = 8 + i
        keys, values = k[:, :, pos - left: pos + 1], v[:, :, pos - left: pos + 1]
        weights = torch.softmax(q[:, :, pos: pos + 1] @ keys.transpose(-1, -2) / 2.0, dim=-1)
        torch.testing.assert_close(out[:, :, i: i + 1], weights @ values)


def test_only_causal_windows_stream():
    stack = Transformer(32, depth=1, head_dim=16, window=(4, 1))
    with pytest.raises(ValueError, match=r"causal window \(left, 0\)"):
        stack.init_state(1)
    with pytest.raises(ValueError, match="1 blocks but a state for 0"):
        stack.step(torch.randn(1, 32, 2), Transformer(32, depth=0).init_state(1))
