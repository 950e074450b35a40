import pytest
import torch
from torch import nn

from taae.nn.conv import DownsampleConv, ResidualUnit, Snake1d, UpsampleConv


@pytest.mark.parametrize("stride", range(1, 11))
@pytest.mark.parametrize("frames", [1, 3, 8])
def test_down_and_up_length_rules(stride, frames):
    x = torch.randn(2, 4, frames * stride)
    down = DownsampleConv(4, 6, stride)(x)
    assert down.shape == (2, 6, frames)
    up = UpsampleConv(6, 4, stride)(down)
    assert up.shape == (2, 4, frames * stride)


def test_odd_stride_transposed_conv_without_output_padding_loses_a_frame():
    # The bug the fix exists for: kernel 2s, padding ⌈s/2⌉, stride 5 gives 5L − 1 frames.
    plain = nn.ConvTranspose1d(3, 3, kernel_size=10, stride=5, padding=3)
    assert plain(torch.randn(1, 3, 20)).shape[-1] == 99
    assert UpsampleConv(3, 3, 5)(torch.randn(1, 3, 20)).shape[-1] == 100


def test_snake_matches_its_formula_and_residual_unit_keeps_length():
    snake = Snake1d(3)
    with torch.no_grad():
        snake.alpha.copy_(torch.tensor([0.5, 1.0, 2.0]).view(1, 3, 1))
    x = torch.randn(2, 3, 17)
    alpha = snake.alpha
    torch.testing.assert_close(snake(x), x + torch.sin(alpha * x) ** 2 / (alpha + 1e-9))
    unit = ResidualUnit(3, dilation=9)
    assert unit(x).shape == x.shape


def test_invalid_stride_is_rejected():
    with pytest.raises(ValueError, match="stride"):
        DownsampleConv(1, 1, 0)
