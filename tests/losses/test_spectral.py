"""Spectral losses: DAC's multi-scale mel L1 against an independent numpy reference, the STFT loss's target
normalisation, fp32 under bf16 autocast, and gradients."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from taae.losses.spectral import (
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    WaveformL1Loss,
    mel_spectrogram,
    slaney_mel_filterbank,
)
from tests.conftest import synth_speech

SR = 16000
DAC_WINDOWS = (32, 64, 128, 256, 512, 1024, 2048)
DAC_MELS = (5, 10, 20, 40, 80, 160, 320)


# independent reference: librosa's Slaney mel filterbank and a framed numpy STFT, in float64


def _hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def _librosa_mel(sr, n_fft, n_mels, fmin=0.0, fmax=None):
    fmax = sr / 2 if fmax is None else fmax
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    weights = np.zeros((n_mels, len(fftfreqs)))
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    return weights * (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]  # (M, W)


def _reference_log_mel(wav, n_fft, n_mels, eps=1e-5):
    hop = n_fft // 4
    x = np.pad(wav, n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    frames = np.stack([x[i : i + n_fft] * window for i in range(0, len(x) - n_fft + 1, hop)])
    mag = np.abs(np.fft.rfft(frames, axis=-1)).T  # (W, L)
    return np.log10(np.maximum(_librosa_mel(SR, n_fft, n_mels) @ mag, eps))


@pytest.fixture(scope="module")
def pair():
    target = synth_speech(0.5, SR, seed=1).unsqueeze(0)  # (1, 1, T)
    pred = target + 0.01 * torch.randn(target.shape, generator=torch.Generator().manual_seed(3))
    return pred, target


@pytest.fixture(scope="module")
def mel_loss():
    return MultiScaleMelLoss()


def test_filterbank_is_librosa_slaney_and_has_no_empty_filter_at_16k():
    for win, mels in zip(DAC_WINDOWS, DAC_MELS):
        fb = slaney_mel_filterbank(SR, win, mels)  # (W, M)
        assert fb.shape == (win // 2 + 1, mels)
        assert (fb.amax(dim=0) > 0).all(), f"empty mel filter at window {win}"
        np.testing.assert_allclose(fb.T.double().numpy(), _librosa_mel(SR, win, mels), rtol=1e-4, atol=1e-6)


def test_too_many_mels_for_the_window_raises():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchaudio may warn about the same empty filters first
        with pytest.raises(ValueError, match="empty filters"):
            MultiScaleMelLoss(window_lengths=(32,), n_mels=(40,))
    with pytest.raises(ValueError, match="pair up"):
        MultiScaleMelLoss(window_lengths=(32, 64), n_mels=(5,))
    with pytest.raises(ValueError, match="fmin"):
        MultiScaleMelLoss(fmax=9000.0)
    with pytest.raises(ValueError, match="too short"):
        MultiScaleMelLoss()(torch.zeros(1, 1, 1000), torch.zeros(1, 1, 1000))


def test_mel_loss_matches_numpy_reference_for_one_scale(pair):
    pred, target = pair
    loss = MultiScaleMelLoss(window_lengths=(256,), n_mels=(40,))(pred, target)
    ref_pred = _reference_log_mel(pred[0, 0].double().numpy(), 256, 40)
    ref_target = _reference_log_mel(target[0, 0].double().numpy(), 256, 40)
    ref = np.abs(ref_pred - ref_target).mean()
    assert loss.item() == pytest.approx(ref, rel=1e-4)


def test_mel_loss_sums_the_scales(pair, mel_loss):
    pred, target = pair
    singles = [MultiScaleMelLoss(window_lengths=(w,), n_mels=(m,))(pred, target) for w, m in zip(DAC_WINDOWS, DAC_MELS)]
    torch.testing.assert_close(mel_loss(pred, target), torch.stack(singles).sum(), rtol=1e-5, atol=1e-6)


def test_mel_loss_zero_for_identical_and_grows_with_noise(pair, mel_loss):
    _, target = pair
    assert mel_loss(target, target).item() == 0.0
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(5))
    values = [mel_loss(target + level * noise, target).item() for level in (1e-3, 1e-2, 1e-1)]
    assert 0 < values[0] < values[1] < values[2]


def test_mel_loss_accepts_2d_input_and_rejects_mismatch(pair, mel_loss):
    pred, target = pair
    torch.testing.assert_close(mel_loss(pred[:, 0], target[:, 0]), mel_loss(pred, target))
    with pytest.raises(ValueError, match="same shape"):
        mel_loss(pred[..., :-1], target)


def test_mel_loss_gradient_flows(pair, mel_loss):
    pred, target = pair
    pred = pred.clone().requires_grad_(True)
    mel_loss(pred, target).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_mel_loss_runs_in_fp32_under_bf16_autocast(pair, mel_loss):
    pred, target = pair
    reference = mel_loss(pred, target)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        value = mel_loss(pred, target)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, reference, rtol=1e-6, atol=1e-6)
    # bf16 inputs are up-cast, not scored in bf16
    p16, t16 = pred.bfloat16(), target.bfloat16()
    torch.testing.assert_close(mel_loss(p16, t16), mel_loss(p16.float(), t16.float()))


def test_buffers_are_not_in_the_state_dict(mel_loss):
    assert len(mel_loss.state_dict()) == 0
    assert len(list(mel_loss.buffers())) == 2 * len(DAC_WINDOWS)


def test_mel_spectrogram_helper_matches_loss_scale(pair):
    _, target = pair
    spec = mel_spectrogram(target, SR, n_fft=256, n_mels=40)
    assert spec.shape == (1, 40, target.shape[-1] // 64 + 1)
    ref = _reference_log_mel(target[0, 0].double().numpy(), 256, 40)
    np.testing.assert_allclose(spec[0].double().numpy(), ref, atol=1e-4)


def test_stft_loss_zero_for_identical(pair):
    _, target = pair
    assert MultiResolutionSTFTLoss()(target, target).item() == 0.0


def test_spectral_convergence_is_normalised_by_the_target(pair):
    _, target = pair
    sc = MultiResolutionSTFTLoss(log_mag_weight=0.0)
    # |2X| - |X| = |X|: normalised by the target |X| gives 1; by the prediction |2X| it would give 0.5
    assert sc(2 * target, target).item() == pytest.approx(1.0, rel=1e-3)
    assert sc(target, 2 * target).item() == pytest.approx(0.5, rel=1e-3)


def test_stft_loss_decreases_as_prediction_approaches_target(pair):
    _, target = pair
    loss = MultiResolutionSTFTLoss()
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(7))
    values = [loss(target + level * noise, target).item() for level in (0.3, 0.03, 0.003)]
    assert values[0] > values[1] > values[2] > 0


def test_stft_loss_validates_its_resolutions():
    with pytest.raises(ValueError, match="equal length"):
        MultiResolutionSTFTLoss(fft_sizes=(512, 256), hop_sizes=(128,))
    with pytest.raises(ValueError, match="longer than"):
        MultiResolutionSTFTLoss(fft_sizes=(256,), win_lengths=(512,))


def test_waveform_l1():
    pred, target = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.0, 1.0]])
    assert WaveformL1Loss()(pred, target).item() == pytest.approx(1.25)
