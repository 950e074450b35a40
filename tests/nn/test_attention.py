"""windowed_attention: every backend against the naive reference, locality, validation, backend choice."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from taae.nn import attention as attn_mod
from taae.nn import chunked_attention as chunked_mod
from taae.nn.attention import available_backends, choose_backend, windowed_attention
from tests.conftest import DRY_RUN

CPU_BACKENDS = ["naive", "sdpa", "chunked", "auto"]
WINDOWS = [(63, 64), (64, 0), (3, 5)]
LENGTHS = [1, 7, 127, 128, 129, 1000]


def _qkv(b, h, n, dh, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, dh, generator=g, dtype=dtype).to(device).requires_grad_() for _ in range(3)]


def _forward_backward(backend, q, k, v, window, **kwargs):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = windowed_attention(q, k, v, window, backend=backend, **kwargs)
    # A fixed random cotangent checks the full Jacobian-vector product, not just the gradient of a sum.
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    out.backward(grad_out.to(out.device))
    return out.detach(), q.grad, k.grad, v.grad


def _loop_reference(q, k, v, window):
    """Independent reference: one query at a time, softmax over its visible keys only, in float64."""
    left, right = window
    b, h, n, dh = q.shape
    q, k, v = (t.detach().double() for t in (q, k, v))
    out = torch.zeros(b, h, n, dh, dtype=torch.float64)
    for i in range(n):
        lo, hi = max(0, i - left), min(n - 1, i + right)
        scores = (q[:, :, i : i + 1] @ k[:, :, lo : hi + 1].transpose(-1, -2)) / math.sqrt(dh)  # (B, H, 1, keys)
        out[:, :, i] = (scores.softmax(-1) @ v[:, :, lo : hi + 1])[:, :, 0]
    return out


@pytest.mark.parametrize("window", [(2, 3), (0, 0), (4, 0), (0, 2), (20, 20)])
def test_naive_matches_loop_reference(window):
    q, k, v = _qkv(2, 2, 11, 8, dtype=torch.float64)
    out = windowed_attention(q, k, v, window, backend="naive")
    torch.testing.assert_close(out, _loop_reference(q, k, v, window), atol=1e-12, rtol=1e-12)
    out32 = windowed_attention(q.float(), k.float(), v.float(), window, backend="naive")
    torch.testing.assert_close(out32.double(), _loop_reference(q, k, v, window), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("backend", [b for b in CPU_BACKENDS if b != "naive"])
def test_backend_matches_naive(backend, window, n):
    q, k, v = _qkv(2, 2, n, 16)
    expected = _forward_backward("naive", q, k, v, window)
    got = _forward_backward(backend, q, k, v, window)
    for name, e, g in zip(("out", "dq", "dk", "dv"), expected, got):
        assert torch.isfinite(g).all(), name
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("chunk_size", [1, 5, 48, 100, 333])
@pytest.mark.parametrize("window", [(63, 64), (3, 5), (0, 9), (9, 0)])
def test_chunked_odd_chunk_sizes(window, chunk_size):
    # 1000 is not a multiple of any of these chunk sizes, so the last chunk is padded.
    q, k, v = _qkv(1, 2, 1000 if chunk_size > 1 else 130, 16)
    expected = _forward_backward("naive", q, k, v, window)
    got = _forward_backward("chunked", q, k, v, window, chunk_size=chunk_size)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("group_bytes", [1, 200_000])
@pytest.mark.parametrize("window", [(63, 64), (3, 5), (0, 9)])
def test_chunked_in_several_groups(monkeypatch, window, group_bytes):
    # Tiny group budgets force one chunk (or a few) per group: halo keys are then shared between groups and their
    # gradients must add up across the group loop.
    monkeypatch.setitem(chunked_mod.CHUNKED_GROUP_BYTES, "cpu", group_bytes)
    q, k, v = _qkv(2, 2, 777, 16)
    expected = _forward_backward("naive", q, k, v, window)
    got = _forward_backward("chunked", q, k, v, window, chunk_size=40)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(windowed_attention(q, k, v, window, "chunked", chunk_size=40), expected[0])


def test_chunked_gradcheck(monkeypatch):
    monkeypatch.setitem(chunked_mod.CHUNKED_GROUP_BYTES, "cpu", 1)
    q, k, v = _qkv(1, 1, 13, 3, dtype=torch.float64)
    fn = lambda q, k, v: windowed_attention(q, k, v, (2, 3), backend="chunked", chunk_size=4)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (q, k, v), fast_mode=True)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_unbounded_sides_when_requested(backend):
    q, k, v = _qkv(1, 2, 150, 16)
    n = q.shape[-2]
    full = windowed_attention(q, k, v, (None, None), backend=backend)
    torch.testing.assert_close(full, windowed_attention(q, k, v, (n - 1, n - 1), backend="naive"), atol=1e-5, rtol=0)
    causal = windowed_attention(q, k, v, (-1, 0), backend=backend)
    torch.testing.assert_close(causal, _loop_reference(q, k, v, (n, 0)).float(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_single_token_is_finite(backend):
    q, k, v = _qkv(2, 2, 1, 16)
    out = windowed_attention(q, k, v, (0, 0), backend=backend)
    out.sum().backward()
    # One visible key: softmax weight 1, so the output is exactly that value.
    torch.testing.assert_close(out, v.detach(), atol=1e-6, rtol=0)
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_half_precision_backends_close_to_naive():
    q, k, v = _qkv(1, 2, 300, 32, dtype=torch.bfloat16)
    expected = windowed_attention(q, k, v, (63, 64), backend="naive")
    for backend in ("sdpa", "chunked"):
        out = windowed_attention(q, k, v, (63, 64), backend=backend)
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), expected.float(), atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("backend", ["sdpa", "chunked"])
def test_locality(backend):
    window, n, i = (3, 5), 300, 150
    q, k, v = (t.detach() for t in _qkv(1, 2, n, 16))
    base = windowed_attention(q, k, v, window, backend=backend, chunk_size=32)
    # 140: outside the window and outside i's chunk halo; 146: inside the halo but outside the band;
    # 156: just past the right edge. 147 and 155 are the inclusive edges.
    for j, inside in ((140, False), (146, False), (156, False), (290, False), (147, True), (150, True), (155, True)):
        for which in ("k", "v"):
            k2, v2 = k.clone(), v.clone()
            (k2 if which == "k" else v2)[:, :, j] += 3.0
            out = windowed_attention(q, k2, v2, window, backend=backend, chunk_size=32)
            if inside:
                assert not torch.equal(out[:, :, i], base[:, :, i]), (which, j)
            else:
                assert torch.equal(out[:, :, i], base[:, :, i]), (which, j)


def test_custom_scale():
    q, k, v = _qkv(1, 2, 40, 16)
    expected = windowed_attention(q * 0.5, k, v, (3, 5), backend="naive")
    for backend in CPU_BACKENDS:
        out = windowed_attention(q, k, v, (3, 5), backend=backend, scale=0.5 / math.sqrt(16), chunk_size=16)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_auto_long_cpu_input_uses_chunked(monkeypatch):
    assert choose_backend("cpu", torch.float32, attn_mod.CPU_DENSE_MAX_TOKENS) == "sdpa"
    assert choose_backend("cpu", torch.float32, attn_mod.CPU_DENSE_MAX_TOKENS + 1) == "chunked"
    monkeypatch.setattr(attn_mod, "CPU_DENSE_MAX_TOKENS", 100)
    calls = []
    real = attn_mod._chunked
    monkeypatch.setattr(attn_mod, "_chunked", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    q, k, v = _qkv(1, 2, 400, 16)
    expected = _forward_backward("naive", q, k, v, (63, 64))
    got = _forward_backward("auto", q, k, v, (63, 64))
    assert calls, "auto should have used the chunked backend above the dense threshold"
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


def test_available_backends_cpu():
    assert available_backends("cpu", torch.float32) == ["naive", "sdpa", "chunked"]
    assert available_backends(torch.device("cpu"), torch.bfloat16) == ["naive", "sdpa", "chunked"]


def test_band_mask_is_cached():
    q, k, v = _qkv(1, 1, 50, 8)
    attn_mod._band_mask.cache_clear()
    for _ in range(3):
        windowed_attention(q, k, v, (3, 5), backend="sdpa")
    info = attn_mod._band_mask.cache_info()
    assert info.misses == 1 and info.hits == 2


# validation


@pytest.mark.parametrize(
    ("window", "match"),
    [
        ((-2, 3), "window left must be an int >= 0"),
        ((3, -5), "window right must be an int >= 0"),
        ((1.5, 3), "window left must be an int"),
        ((True, 3), "window left must be an int"),
        ((3,), "window must be a pair"),
        (64, "window must be a pair"),
        ("ab", "window must be a pair"),
    ],
)
def test_bad_window(window, match):
    q, k, v = _qkv(1, 1, 8, 8)
    with pytest.raises(ValueError, match=match):
        windowed_attention(q, k, v, window, backend="sdpa")


def test_bad_backend_name_lists_allowed():
    q, k, v = _qkv(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"'fast'.*auto, naive, sdpa, chunked, flex, flash"):
        windowed_attention(q, k, v, (3, 5), backend="fast")


def test_bad_shapes_and_args():
    q, k, v = _qkv(1, 2, 8, 8)
    with pytest.raises(ValueError, match=r"same shape .*\(1, 2, 8, 8\), \(1, 2, 9, 8\)"):
        windowed_attention(q, torch.randn(1, 2, 9, 8), v, (3, 5))
    with pytest.raises(ValueError, match=r"4-D tensor \(B, H, N, Dh\), got \(2, 8, 8\)"):
        windowed_attention(q[0], k[0], v[0], (3, 5))
    with pytest.raises(ValueError, match="one dtype"):
        windowed_attention(q, k.double(), v, (3, 5))
    with pytest.raises(ValueError, match="N >= 1"):
        windowed_attention(q[:, :, :0], k[:, :, :0], v[:, :, :0], (3, 5))
    with pytest.raises(ValueError, match="scale must be a positive"):
        windowed_attention(q, k, v, (3, 5), scale=-1.0)
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        windowed_attention(q, k, v, (3, 5), backend="chunked", chunk_size=0)


def test_unavailable_backends_raise_on_cpu():
    q, k, v = _qkv(1, 1, 8, 8)
    with pytest.raises(RuntimeError, match="'flex' needs a CUDA device"):
        windowed_attention(q, k, v, (3, 5), backend="flex")
    with pytest.raises(RuntimeError, match="'flash' needs"):
        windowed_attention(q, k, v, (3, 5), backend="flash")


def test_flex_compile_failure_falls_back_to_chunked_with_warning(monkeypatch):
    # Simulate a CUDA device whose FlexAttention probe failed; the backend must stay windowed and say so.
    q, k, v = _qkv(1, 2, 200, 16)
    key = (q.device, q.dtype, q.shape[-1])
    monkeypatch.setitem(attn_mod._FLEX_OK, key, False)
    monkeypatch.setitem(attn_mod._FLEX_ERRORS, key, "simulated compile failure")
    monkeypatch.setattr(attn_mod, "_WARNED", set())
    with pytest.warns(RuntimeWarning, match="did not compile.*simulated compile failure.*'chunked'"):
        out = attn_mod._flex_fallback(q, k, v, 3, 5, 1 / 4, None)
    torch.testing.assert_close(out, windowed_attention(q, k, v, (3, 5), backend="naive"), atol=1e-5, rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        attn_mod._flex_fallback(q, k, v, 3, 5, 1 / 4, None)


# GPU


def _cuda_cases():
    # The GPU suite's dry run (CPU) keeps the code path at small lengths.
    return [(w, n) for w in WINDOWS for n in ((1, 129) if DRY_RUN else (1, 129, 1000, 4100))]


@pytest.mark.gpu
@pytest.mark.parametrize(("window", "n"), _cuda_cases())
def test_cuda_backends_match_naive(window, n, gpu_device):
    for dtype, tol in ((torch.float32, 1e-3), (torch.bfloat16, 3e-2)):
        q, k, v = _qkv(2, 2, n, 64, dtype=dtype, device=gpu_device)
        expected = _forward_backward("naive", q, k, v, window)
        for backend in [*available_backends(gpu_device, dtype, head_dim=64), "auto"]:
            got = _forward_backward(backend, q, k, v, window)
            for e, g in zip(expected, got):
                msg = lambda m, b=backend: f"{b}: {m}"  # noqa: E731
                torch.testing.assert_close(g.float(), e.float(), atol=tol, rtol=tol, msg=msg)


@pytest.mark.gpu
def test_cuda_matches_cpu(gpu_device):
    q, k, v = _qkv(1, 2, 500, 64)
    cpu = windowed_attention(q, k, v, (63, 64), backend="chunked")
    gpu = windowed_attention(q.to(gpu_device), k.to(gpu_device), v.to(gpu_device), (63, 64), backend="auto")
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
def test_cuda_auto_choice():
    long = attn_mod.CUDA_DENSE_MAX_TOKENS + 1
    assert choose_backend("cuda", torch.float32, 100) == "sdpa"
    assert choose_backend("cuda", torch.float32, long) in ("flex", "chunked")
