"""Causal convolutions for the causal TAAE (§9 item 13), each with a streaming step that carries its own state.

Shape legend: B batch, C input channels, C' output channels, L frames at the layer's input rate, s stride,
k kernel size.

Every output depends only on inputs at or before the end of its own frame:

    CausalConv1d (k, s)        left padding k − s, none on the right: output j sees inputs [js − (k − s), js + s)
                               → L/s outputs for L a multiple of s (k = 7, s = 1: the six previous inputs and itself)
    CausalConvTranspose1d      kernel 2s, no padding, the last s outputs cut: output j sees inputs ⌊j/s⌋ − 1 and ⌊j/s⌋
    (k = 2s, s)                → s·L outputs; the cut tail is what the next input frame overlaps

Streaming (``init_state`` / ``step``): the state is one tensor per layer, zeros at the start of a stream.

- ``CausalConv1d``: the last k − s inputs (the left padding of the next chunk; zeros = the offline zero padding).
- ``CausalConvTranspose1d``: the overlap tail, the last k − s outputs of the previous chunk **without the bias**,
  added to the first outputs of the next one; the bias is added once, when a sample is emitted.

The layers keep the parameter names and shapes of their centred counterparts (``WNConv1d``, ``DownsampleConv``,
``UpsampleConv`` in :mod:`taae.nn.conv`), so a causal TAAE loads a non-causal one's weights.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from taae.nn.conv import DownsampleConv, UpsampleConv, WNConv1d

__all__ = ["CausalConv1d", "CausalConvTranspose1d", "CausalDownsampleConv", "CausalUpsampleConv", "WNCausalConv1d",
           "conv_layers"]


def _check_chunk(x: Tensor, state: Tensor, stride: int, channels: int, name: str) -> None:
    if x.dim() != 3 or x.shape[1] != channels or x.shape[-1] == 0 or x.shape[-1] % stride:
        raise ValueError(f"{name}.step: expected (B, {channels}, L) with L a positive multiple of the stride {stride}, "
                         f"got {tuple(x.shape)}")
    if state.shape[0] != x.shape[0]:
        raise ValueError(f"{name}.step: the state holds {state.shape[0]} items but the chunk has {x.shape[0]}")


def _zeros_like_params(layer: nn.Module, *shape: int) -> Tensor:
    # From a raw parameter, not `layer.weight`: under weight norm that would compute the normalised weight.
    return next(layer.parameters()).new_zeros(shape)


class CausalConv1d(nn.Conv1d):
    """``nn.Conv1d`` padded on the left only, by k − s: L → L/s frames, each from the past and its own frame."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True):
        if kernel_size < stride:
            raise ValueError(f"kernel_size {kernel_size} < stride {stride} would skip inputs")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, bias=bias)
        self.context = kernel_size - stride
        """Inputs of the previous chunk each chunk needs: the left padding, and the streaming state."""

    def forward(self, x: Tensor) -> Tensor:  # (B, C, L) → (B, C', L/s)
        return super().forward(F.pad(x, (self.context, 0)))

    def init_state(self, batch_size: int) -> Tensor:
        """(B, C, k − s) zeros: a fresh stream sees the offline model's zero padding."""
        return _zeros_like_params(self, batch_size, self.in_channels, self.context)

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One chunk (B, C, L), L a multiple of s → (output (B, C', L/s), the new state)."""
        _check_chunk(x, state, self.stride[0], self.in_channels, type(self).__name__)
        full = torch.cat((state, x), dim=-1)  # (B, C, k − s + L)
        return super().forward(full), full[..., full.shape[-1] - self.context:]


def WNCausalConv1d(*args, **kwargs) -> CausalConv1d:
    """:class:`CausalConv1d` with weight normalisation (the same parameters as ``WNConv1d``)."""
    return weight_norm(CausalConv1d(*args, **kwargs))


class CausalConvTranspose1d(nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` (kernel k, stride s, no padding) whose last k − s outputs are cut: L → s·L frames.

    Output j sums the inputs i with 0 <= j − i·s < k: for k <= 2s only frames ⌊j/s⌋ − 1 and ⌊j/s⌋, never a later one.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, bias: bool = True):
        if not stride <= kernel_size <= 2 * stride:
            raise ValueError(f"kernel_size must be in [stride, 2·stride] = [{stride}, {2 * stride}], got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, bias=bias)
        self.overlap = kernel_size - stride
        """Outputs past the chunk that the next input frame adds to: the streaming state."""

    def forward(self, x: Tensor) -> Tensor:  # (B, C, L) → (B, C', s·L)
        return super().forward(x)[..., : x.shape[-1] * self.stride[0]]

    def init_state(self, batch_size: int) -> Tensor:
        """(B, C', k − s) zeros: nothing overlaps the first frame of a stream."""
        return _zeros_like_params(self, batch_size, self.out_channels, self.overlap)

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One chunk (B, C, L) → (output (B, C', s·L), the new overlap tail (B, C', k − s), bias-free)."""
        _check_chunk(x, state, 1, self.in_channels, type(self).__name__)
        y = F.conv_transpose1d(x, self.weight, None, self.stride)  # (B, C', s·L + k − s), no bias yet
        y = torch.cat((y[..., : self.overlap] + state, y[..., self.overlap:]), dim=-1)
        emitted = x.shape[-1] * self.stride[0]
        out = y[..., :emitted]
        if self.bias is not None:
            out = out + self.bias[:, None]
        return out, y[..., emitted:]


class _StridedCausal(nn.Module):
    """One causal conv as ``self.conv``, the attribute name ``DownsampleConv`` / ``UpsampleConv`` use."""

    conv: nn.Module

    def __init__(self, stride: int):
        super().__init__()
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)

    def init_state(self, batch_size: int) -> Tensor:
        return self.conv.init_state(batch_size)

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        return self.conv.step(x, state)


class CausalDownsampleConv(_StridedCausal):
    """Causal ``DownsampleConv``: kernel 2s, stride s, left padding s → L/s frames (stride 1: a kernel-1 projection).

    Output j sees the previous frame and its own (inputs [(j − 1)s, (j + 1)s)), as the centred one sees
    [js − ⌈s/2⌉, js + 2s − ⌈s/2⌉); same parameter names and shapes.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__(stride)
        kernel = 1 if stride == 1 else 2 * stride
        self.conv = WNCausalConv1d(in_channels, out_channels, kernel_size=kernel, stride=stride)


class CausalUpsampleConv(_StridedCausal):
    """Causal ``UpsampleConv``: transposed conv, kernel 2s, stride s, L → s·L frames (stride 1: a kernel-1
    projection, stateless); same parameter names and shapes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__(stride)
        if stride == 1:
            self.conv = WNCausalConv1d(in_channels, out_channels, kernel_size=1)
        else:
            self.conv = weight_norm(CausalConvTranspose1d(in_channels, out_channels, kernel_size=2 * stride,
                                                          stride=stride))


def _centred_conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv1d:
    return WNConv1d(in_channels, out_channels, kernel_size=kernel_size, padding=kernel_size // 2, bias=bias)


def conv_layers(causal: bool) -> tuple:
    """(conv, down, up) layer types for a TAAE: centred as in the released code (``conv(c_in, c_out, kernel_size,
    bias=True)`` padded by k // 2), or causal (§9 item 13) with the same parameter names and shapes."""
    if causal:
        return WNCausalConv1d, CausalDownsampleConv, CausalUpsampleConv
    return _centred_conv, DownsampleConv, UpsampleConv
