"""Convolutional building blocks shared by TAAE and the RVQGAN baseline.

Shape legend: B batch, C channels, L frames (time steps at the block's rate).

Length rules (all convs here keep them exact, so codecs never need to trim):
- ``DownsampleConv(stride s)``: kernel 2s, padding ⌈s/2⌉ → L/s frames when L is a multiple of s, for even and odd
  s: ⌊(L + 2⌈s/2⌉ − 2s)/s⌋ + 1 = L/s. Stride 1 is a kernel-1 projection (kernel 2 would give L + 1).
- ``UpsampleConv(stride s)``: kernel 2s, padding ⌈s/2⌉, output_padding s mod 2 → exactly s·L frames. Without
  ``output_padding`` odd strides lose one frame per block, the bug DAC's 16 kHz model has (8 samples short).

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


def WNConv1d(*args, **kwargs) -> nn.Conv1d:
    """``nn.Conv1d`` wrapped in weight normalisation (every conv in both codecs uses it)."""
    return weight_norm(nn.Conv1d(*args, **kwargs))


def WNConvTranspose1d(*args, **kwargs) -> nn.ConvTranspose1d:
    return weight_norm(nn.ConvTranspose1d(*args, **kwargs))


class Snake1d(nn.Module):
    """Snake activation x + sin²(αx)/α with a learnable α per channel (DAC §7, α initialised to ones)."""

    def __init__(self, channels: int, eps: float = 1e-9):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:  # (B, C, L)
        # One (B, C, L) temporary updated in place, and a reciprocal of the (1, C, 1) α instead of a full-size
        # division: the decoder's Snakes run on its widest tensors, where each extra pass over memory shows.
        return (self.alpha * x).sin_().square_().mul_((self.alpha + self.eps).reciprocal()).add_(x)


class ResidualUnit(nn.Module):
    """Snake → dilated conv k=7 → Snake → conv k=1, plus the input (DAC §7)."""

    def __init__(self, channels: int, dilation: int = 1, kernel_size: int = 7):
        super().__init__()
        pad = (kernel_size - 1) * dilation // 2
        self.block = nn.Sequential(
            Snake1d(channels),
            WNConv1d(channels, channels, kernel_size, dilation=dilation, padding=pad),
            Snake1d(channels),
            WNConv1d(channels, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class DownsampleConv(nn.Module):
    """Strided conv, kernel 2s, padding ⌈s/2⌉: L → L/s for L a multiple of s (stride 1: kernel-1 projection)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.stride = stride
        if stride == 1:
            self.conv = WNConv1d(in_channels, out_channels, kernel_size=1)
        else:
            self.conv = WNConv1d(in_channels, out_channels, kernel_size=2 * stride, stride=stride,
                                 padding=math.ceil(stride / 2))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class UpsampleConv(nn.Module):
    """Transposed conv, kernel 2s, padding ⌈s/2⌉, output_padding s mod 2: L → s·L exactly (DAC §7 fix).

    (L−1)s − 2⌈s/2⌉ + 2s + (s mod 2) = sL for every s ≥ 2; stride 1 is a kernel-1 projection.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, exact_length: bool = True):
        super().__init__()
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.stride = stride
        if stride == 1:
            self.conv = WNConv1d(in_channels, out_channels, kernel_size=1)
        else:
            # exact_length=False keeps DAC's s·L − (s mod 2) frames, which its released weights were trained with.
            self.conv = WNConvTranspose1d(in_channels, out_channels, kernel_size=2 * stride, stride=stride,
                                          padding=math.ceil(stride / 2),
                                          output_padding=stride % 2 if exact_length else 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)
