"""Causal convs: past-only outputs, streaming steps equal to the offline forward, the non-causal parameter layout."""

import pytest
import torch
from torch import nn

from taae.nn.causal_conv import (
    CausalConvTranspose1d,
    CausalDownsampleConv,
    CausalUpsampleConv,
    WNCausalConv1d,
)
from taae.nn.conv import DownsampleConv, UpsampleConv, WNConv1d

CHUNKS = [1, 2, 3, 7]


def _with_large_bias(layer: nn.Module) -> nn.Module:
    # A bias far above the signal makes a bias added twice (or never) in the overlap tail impossible to miss.
    conv = layer.conv if hasattr(layer, "conv") else layer
    with torch.no_grad():
        conv.bias.fill_(10.0)
    return layer


def _stream(layer, x, chunk, stride_in=1):
    """Run ``layer.step`` over ``x`` in chunks of ``chunk`` input frames (each ``stride_in`` steps)."""
    state, outs = layer.init_state(x.shape[0]), []
    for a in range(0, x.shape[-1], chunk * stride_in):
        y, state = layer.step(x[..., a: a + chunk * stride_in], state)
        outs.append(y)
    return torch.cat(outs, dim=-1)


LAYERS = {
    "conv k=7": (lambda: WNCausalConv1d(5, 6, kernel_size=7), 1),
    "conv k=3": (lambda: WNCausalConv1d(5, 6, kernel_size=3), 1),
    "down s=2": (lambda: CausalDownsampleConv(5, 6, 2), 2),
    "down s=3": (lambda: CausalDownsampleConv(5, 6, 3), 3),
    "down s=1": (lambda: CausalDownsampleConv(5, 6, 1), 1),
    "up s=2": (lambda: CausalUpsampleConv(5, 6, 2), 1),
    "up s=5": (lambda: CausalUpsampleConv(5, 6, 5), 1),
    "up s=1": (lambda: CausalUpsampleConv(5, 6, 1), 1),
}


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("name", list(LAYERS))
def test_streaming_step_equals_the_offline_forward(name, chunk):
    torch.manual_seed(chunk)
    build, stride_in = LAYERS[name]
    layer = _with_large_bias(build())
    frames = 30  # ≥ 3× every layer's context (at most 6 inputs)
    x = torch.randn(2, 5, frames * stride_in)
    with torch.no_grad():
        torch.testing.assert_close(_stream(layer, x, chunk, stride_in), layer(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(LAYERS))
def test_outputs_depend_only_on_the_past(name):
    torch.manual_seed(0)
    build, stride_in = LAYERS[name]
    layer = build()
    x = torch.randn(1, 5, 20 * stride_in)
    with torch.no_grad():
        y = layer(x)
        ratio = y.shape[-1] / x.shape[-1]  # output steps per input step
        for t in (0, 7 * stride_in, 7 * stride_in + stride_in - 1, x.shape[-1] - 1):
            changed = x.clone()
            changed[..., t:] = torch.randn_like(changed[..., t:])
            first = int(t // stride_in * stride_in * ratio)  # first output of the frame holding input t
            z = layer(changed)
            assert torch.equal(z[..., :first], y[..., :first]), t
            assert not torch.equal(z[..., first:], y[..., first:]), t


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_same_parameters_as_the_centred_layers(stride):
    for causal, centred in ((CausalDownsampleConv(4, 6, stride), DownsampleConv(4, 6, stride)),
                            (CausalUpsampleConv(6, 4, stride), UpsampleConv(6, 4, stride)),
                            (WNCausalConv1d(4, 6, kernel_size=7), WNConv1d(4, 6, kernel_size=7, padding=3))):
        shapes = {k: v.shape for k, v in centred.state_dict().items()}
        assert {k: v.shape for k, v in causal.state_dict().items()} == shapes
        causal.load_state_dict(centred.state_dict())  # strict


def test_transposed_conv_state_is_the_bias_free_overlap():
    layer = _with_large_bias(CausalConvTranspose1d(3, 2, kernel_size=4, stride=2))
    with torch.no_grad():
        _, tail = layer.step(torch.zeros(1, 3, 5), layer.init_state(1))
    assert tail.shape == (1, 2, 2) and torch.equal(tail, torch.zeros_like(tail))


def test_bad_chunks_and_states_are_refused():
    down = CausalDownsampleConv(5, 6, 2)
    with pytest.raises(ValueError, match="multiple of the stride 2"):
        down.step(torch.randn(1, 5, 3), down.init_state(1))
    with pytest.raises(ValueError, match="holds 2 items but the chunk has 1"):
        down.step(torch.randn(1, 5, 4), down.init_state(2))
    up = CausalUpsampleConv(5, 6, 2)
    with pytest.raises(ValueError, match=r"expected \(B, 5, L\)"):
        up.step(torch.randn(1, 4, 3), up.init_state(1))
    with pytest.raises(ValueError, match="kernel_size 1 < stride 2"):
        WNCausalConv1d(1, 1, kernel_size=1, stride=2)
    with pytest.raises(ValueError, match="kernel_size must be in"):
        CausalConvTranspose1d(1, 1, kernel_size=5, stride=2)
