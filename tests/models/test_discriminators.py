"""Discriminators: output structure, gradients to the input, DAC parameter counts, inharmonic FFT sizes, odd
lengths, input normalisation, and composition from a config.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import math

import pytest
import torch

from taae.models.discriminators import (
    BandDiscriminator,
    CombinedDiscriminator,
    ComplexSTFTDiscriminator,
    MultiBandDiscriminator,
    MultiPeriodDiscriminator,
    golden_ratio_fft_sizes,
)
from tests.conftest import synth_speech

T = 4000 + 137  # 0.25 s plus a remainder that is a multiple of no hop or period


def tiny_stft(**kw):
    return ComplexSTFTDiscriminator(filters=4, **kw)


def tiny_mpd(**kw):
    return MultiPeriodDiscriminator(channels=(4, 8, 8, 8, 8), **kw)


def tiny_mbd(**kw):
    return MultiBandDiscriminator(channels=4, **kw)


@pytest.fixture(scope="module")
def wav():
    return torch.stack([synth_speech(T / 16000, seed=0), synth_speech(T / 16000, seed=1)])[..., :T]  # (2, 1, T)


def num_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "build, n_sub, n_maps",
    [(tiny_stft, 5, 3 + 2), (tiny_mpd, 5, 5), (tiny_mbd, 3, 5 * 5)],
    ids=["complex_stft", "mpd", "mbd"],
)
def test_structure_and_gradient(build, n_sub, n_maps, wav):
    disc = build()
    x = wav.clone().requires_grad_(True)
    out = disc(x)
    assert isinstance(out, list) and len(out) == n_sub
    for features in out:
        assert isinstance(features, list) and len(features) == n_maps + 1
        assert all(f.shape[0] == 2 for f in features)
        assert features[-1].shape[1] == 1  # logits: one channel
    sum(features[-1].mean() for features in out).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_dac_parameter_counts():
    # §7: 5 MPDs of 8.22 M, 3 MRDs of 0.47 M, 42.52 M in all
    with torch.device("meta"):
        mpd, mbd = MultiPeriodDiscriminator(), MultiBandDiscriminator()
    assert len(mpd.discriminators) == 5 and len(mbd.discriminators) == 3
    for sub in mpd.discriminators:
        assert num_params(sub) == pytest.approx(8.22e6, rel=0.01)
    for sub in mbd.discriminators:
        assert num_params(sub) == pytest.approx(0.47e6, rel=0.01)
    assert num_params(mpd) + num_params(mbd) == pytest.approx(42.52e6, rel=0.01)


def test_inharmonic_default_fft_sizes():
    sizes = ComplexSTFTDiscriminator(filters=2).fft_sizes
    assert sizes == golden_ratio_fft_sizes(2048, 5) == (2048, 1266, 782, 483, 299)
    for i, a in enumerate(sizes):
        for b in sizes[i + 1 :]:
            assert a % b != 0 and b % a != 0, (a, b)
    ratios = [a / b for a, b in zip(sizes, sizes[1:])]
    assert all(abs(r - (1 + math.sqrt(5)) / 2) < 0.01 for r in ratios)


def test_frame_counts_on_odd_lengths(wav):
    stft = tiny_stft()
    for sub, features in zip(stft.discriminators, stft(wav)):
        assert features[0].shape[2] == (T - sub.n_fft) // sub.hop_length + 1  # center=False frames
    mbd = tiny_mbd()
    for sub, features in zip(mbd.discriminators, mbd(wav)):
        assert features[-1].shape[2] == math.ceil(T / sub.hop_length)  # audiotools' match_stride
    mpd = tiny_mpd()
    for period, features in zip((2, 3, 5, 7, 11), mpd(wav)):
        assert features[-1].shape[-1] == period


def test_dac_band_split():
    bands = BandDiscriminator(2048, channels=4).bands
    assert bands == [(0, 102), (102, 256), (256, 512), (512, 768), (768, 1025)]


def test_input_normalisation_makes_dac_discriminators_gain_invariant(wav):
    mpd, stft = tiny_mpd(), tiny_stft()
    for a, b in zip(mpd(wav), mpd(3 * wav + 0.1)):
        torch.testing.assert_close(a[-1], b[-1], rtol=1e-4, atol=1e-5)
    # the complex STFT discriminator sees raw audio by default
    assert not torch.allclose(stft(wav)[0][-1], stft(3 * wav)[0][-1])


def test_combined_concatenates_in_order(wav):
    mpd, mbd = tiny_mpd(), tiny_mbd()
    combined = CombinedDiscriminator([mpd, mbd])
    out = combined(wav)
    expected = mpd(wav) + mbd(wav)
    assert len(out) == 8
    for got, want in zip(out, expected):
        assert len(got) == len(want)
        torch.testing.assert_close(got[-1], want[-1])


def test_combined_from_lightning_style_config():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--discriminator", type=CombinedDiscriminator)
    config = parser.parse_object(
        {
            "discriminator": {
                "class_path": "taae.models.discriminators.CombinedDiscriminator",
                "init_args": {
                    "discriminators": [
                        {"class_path": "taae.models.discriminators.MultiPeriodDiscriminator",
                         "init_args": {"periods": [2, 3], "channels": [4, 4]}},
                        {"class_path": "taae.models.discriminators.ComplexSTFTDiscriminator",
                         "init_args": {"fft_sizes": [512, 317], "filters": 4}},
                    ]
                },
            }
        }
    )
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in jsonargparse 4.49
    disc = instantiate(config).discriminator
    assert isinstance(disc, CombinedDiscriminator)
    assert len(disc(torch.randn(1, 1, 4000))) == 4


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\(B, 1, T\)"):
        tiny_mpd()(torch.randn(2, 4000))
    with pytest.raises(ValueError, match="shorter"):
        tiny_stft()(torch.randn(1, 1, 1000))
    with pytest.raises(ValueError, match="too short"):
        tiny_mbd()(torch.randn(1, 1, 700))  # reflect padding of (2048 - 512) / 2 = 768 samples
    with pytest.raises(ValueError, match="band"):
        MultiBandDiscriminator(bands=((0.0, 0.5), (0.5, 1.2)))
    with pytest.raises(ValueError, match="at least one"):
        CombinedDiscriminator([])
    with pytest.raises(ValueError, match="must not be empty"):
        ComplexSTFTDiscriminator(fft_sizes=())
    with pytest.raises(ValueError, match="must not be empty"):
        MultiPeriodDiscriminator(periods=())


def test_gradient_checkpointing_gives_the_same_gradients(wav):
    torch.manual_seed(0)
    plain = tiny_stft(fft_sizes=(512,))
    torch.manual_seed(0)
    checkpointed = tiny_stft(fft_sizes=(512,), gradient_checkpointing=True)
    grads = []
    for disc in (plain, checkpointed):
        x = wav.clone().requires_grad_(True)
        disc(x)[0][-1].square().mean().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1])
