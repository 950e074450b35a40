"""The models' own compute accounting against ``torch.utils.flop_counter``: parameters and training FLOPs.

FlopCounterMode counts every matmul and convolution of a real forward + backward. The analytic count must agree
exactly where both count the same work; the only intended difference is windowed attention, where the reference
backend computes all N² scores and the model's function uses only the band.
"""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from taae.models.flops import window_pairs
from taae.models.rvqgan import RVQGAN, RVQGANConfig
from taae.models.taae import TAAE, TAAEConfig


def measured_train_flops(model: torch.nn.Module, num_samples: int) -> int:
    wav = torch.randn(1, 1, num_samples)
    with FlopCounterMode(display=False) as counter:
        model(wav).audio.square().mean().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("config", [
    TAAEConfig(stem_width=128, widths=(128, 128), depths=(2, 2), attention_backend="naive"),
    TAAEConfig(stem_width=64, widths=(128,), strides=(2,), depths=(1,), decoder_depths=(2,), attention_backend="naive"),
    TAAEConfig(stem_width=64, widths=(128, 128), strides=(2, 3), depths=(1, 0), attention_backend="naive"),
    TAAEConfig(stem_width=128, widths=(128, 128), strides=(1, 2), depths=(1, 1), identity_stride1=True,
               attention_backend="naive"),
    TAAEConfig(stem_width=64, widths=(128, 128), depths=(1, 1), head="istft", attention_backend="naive"),
    TAAEConfig(stem_width=64, widths=(128, 128), depths=(1, 1), head="overlap_add", attention_backend="naive"),
], ids=["tiny", "asymmetric-decoder", "stride-3", "released-layout", "istft-head", "overlap-add-head"])
def test_taae_train_flops_equal_the_measured_count(config, one_thread):
    model = TAAE(config).train()
    samples = 2 * config.hop_length * 7  # at most 28 frames per stage: every key is inside the (63, 64) window
    assert model.train_flops(samples) == pytest.approx(measured_train_flops(model, samples), rel=1e-9)


def test_taae_attention_counts_the_band_not_the_square(one_thread):
    """A short window on a long input: the measured (dense) count exceeds ours by exactly the masked-out scores."""
    config = TAAEConfig(stem_width=64, widths=(128,), strides=(1,), depths=(1,), window=(3, 4),
                        attention_backend="naive")
    model = TAAE(config).train()
    samples = config.hop_length * 40  # N = 40 frames, 8 keys per query at most
    pairs = window_pairs(40, config.window, exact=True)
    masked = 40 * 40 - pairs
    # Q·Kᵀ and A·V, 2 FLOPs each per pair and channel, forward + 2 × backward, one encoder and one decoder layer
    expected_gap = 2 * 3 * (4 * 128 * masked)
    assert measured_train_flops(model, samples) - model.train_flops(samples) == pytest.approx(expected_gap)


@pytest.mark.parametrize("config", [
    RVQGANConfig(encoder_dim=8, decoder_dim=64, latent_dim=32, n_codebooks=3, codebook_size=64),
    RVQGANConfig(encoder_dim=8, encoder_strides=(2, 4, 8, 10), decoder_strides=(10, 8, 4, 2), hop_length=640,
                 decoder_dim=64, n_codebooks=10, codebook_size=16),
    RVQGANConfig(encoder_dim=8, decoder_dim=64, latent_dim=32, n_codebooks=2, codebook_size=16, exact_length=False),
], ids=["50hz", "25hz-ladder-quantizer", "dac-length-rule"])
def test_rvqgan_train_flops_equal_the_measured_count(config, one_thread):
    model = RVQGAN(config).train()
    samples = 2 * config.hop_length
    assert model.train_flops(samples) == pytest.approx(measured_train_flops(model, samples), rel=1e-9)


def test_window_pairs_match_the_band_mask():
    for n, window in [(1, (63, 64)), (5, (63, 64)), (40, (3, 4)), (200, (63, 64)), (17, (0, 5)), (9, (4, 0))]:
        i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        band = ((j >= i - window[0]) & (j <= i + window[1])).sum().item()
        assert window_pairs(n, window, exact=True) == band


def test_per_second_rate_is_the_long_input_limit():
    model = TAAE(TAAEConfig(stem_width=128, widths=(128, 128), depths=(2, 2)))
    rate = model.train_flops_per_second()
    minute = 60 * model.sample_rate
    assert model.train_flops_per_second(minute) == pytest.approx(rate, rel=0.01)  # edges: ~1% of a minute
    assert model.train_flops_per_second(model.sample_rate) < rate  # 1 s crops: queries near the edges see fewer keys
    rvqgan = RVQGAN(RVQGANConfig(encoder_dim=8, decoder_dim=64, n_codebooks=2, codebook_size=16))
    # convolutions only: linear in length, so any whole number of hops gives the per-second rate
    assert rvqgan.train_flops_per_second(rvqgan.sample_rate) == pytest.approx(rvqgan.train_flops_per_second())


def test_flop_count_rejects_an_empty_input():
    with pytest.raises(ValueError, match="num_samples"):
        TAAE(TAAEConfig(stem_width=128, widths=(128,), strides=(2,), depths=(1,))).train_flops(0)
