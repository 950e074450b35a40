import pytest
import torch

from taae.losses import PreEmphasisL1Loss, WaveformL1Loss
from taae.losses.waveform import pre_emphasis


def test_pre_emphasis_is_the_first_order_difference():
    x = torch.tensor([[[1.0, 2.0, 4.0, 8.0]]])
    torch.testing.assert_close(pre_emphasis(x, 0.5), torch.tensor([[[1.0, 1.5, 3.0, 6.0]]]))


def test_pre_emphasis_l1_weighs_high_frequencies_over_low_ones():
    torch.manual_seed(0)
    target = torch.randn(2, 1, 4000) * 0.1
    t = torch.arange(4000) / 16000
    low = 0.01 * torch.sin(2 * torch.pi * 100 * t).reshape(1, 1, -1)  # the same error energy at 100 Hz ...
    high = 0.01 * torch.sin(2 * torch.pi * 6000 * t).reshape(1, 1, -1)  # ... and at 6 kHz
    loss, plain = PreEmphasisL1Loss(0.95), WaveformL1Loss()
    assert plain(target + high, target) < 1.1 * plain(target + low, target)  # alike to the sample L1
    assert loss(target + high, target) > 10 * loss(target + low, target)
    torch.testing.assert_close(PreEmphasisL1Loss(0.0)(target + low, target), plain(target + low, target))
    with pytest.raises(ValueError, match="coefficient must be in"):
        PreEmphasisL1Loss(1.0)
