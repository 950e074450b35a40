import math

import numpy as np
import pytest
import soundfile as sf
import torch

from taae.io.audio import (
    AudioError,
    load_and_preprocess,
    load_audio,
    loudness,
    normalize_loudness,
    preprocess,
    preprocess_with_gain,
    resample,
    save_audio,
    to_mono,
)
from tests.conftest import demo_speech


def sine(freq: float, sample_rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    return (amplitude * torch.sin(2 * math.pi * freq * t)).float().unsqueeze(0)  # (1, T)


def peak_frequency(wav: torch.Tensor, sample_rate: int) -> float:
    spectrum = torch.fft.rfft(wav[0].double() * torch.hann_window(wav.shape[-1], dtype=torch.float64)).abs()
    return spectrum.argmax().item() * sample_rate / wav.shape[-1]


def test_to_mono_averages_channels():
    stereo = torch.stack([torch.ones(100), -0.5 * torch.ones(100)])
    torch.testing.assert_close(to_mono(stereo), torch.full((1, 100), 0.25))
    assert to_mono(torch.ones(7)).shape == (1, 7)


def test_resample_keeps_frequency_and_length_ratio():
    wav = sine(1000.0, 44100, seconds=1.0)
    out = resample(wav, 44100, 16000)
    assert out.shape == (1, 16000)
    assert abs(peak_frequency(out, 16000) - 1000.0) <= 1.0
    assert resample(wav, 44100, 44100) is wav


def test_normalize_loudness_hits_target(speech):
    wav = 0.05 * speech(2.0, 16000, seed=1)
    for target in (-30.0, -20.0, -16.0):
        out = normalize_loudness(wav, 16000, target)
        assert abs(loudness(out, 16000) - target) < 0.5
        assert out.abs().max() < 1.0


def test_peak_guard_rescales_to_peak(speech):
    out = normalize_loudness(speech(1.0, 16000), 16000, target_lufs=0.0, peak=0.95)
    assert torch.isfinite(out).all()
    assert out.abs().max().item() == pytest.approx(0.95, abs=1e-6)


def test_silent_and_short_clips_are_finite(speech):
    silent = torch.zeros(1, 16000)
    assert loudness(silent, 16000) == -math.inf
    torch.testing.assert_close(normalize_loudness(silent, 16000, -20.0), silent)
    whisper = 1e-4 * speech(1.0, 16000)  # mean power < 1e-6: left alone, no huge gain on noise
    torch.testing.assert_close(normalize_loudness(whisper, 16000, -20.0), whisper)

    short = speech(1.0, 16000)[:, 4000:5600]  # 0.1 s: shorter than one BS.1770 block
    value = loudness(short, 16000)
    assert math.isfinite(value)
    out = normalize_loudness(short, 16000, -20.0)
    assert torch.isfinite(out).all()
    assert abs(loudness(out, 16000) - (-20.0)) < 0.5
    out = preprocess(torch.zeros(1, 1600), 16000, 16000)
    assert torch.isfinite(out).all() and out.abs().max() == 0


def test_save_load_round_trip_and_clipping(tmp_path, speech):
    wav = speech(0.5, 16000)
    path = tmp_path / "nested" / "dir" / "x.wav"
    save_audio(path, wav[0], 16000)
    loaded, sr = load_audio(path)
    assert sr == 16000 and loaded.shape == wav.shape and loaded.dtype == torch.float32
    torch.testing.assert_close(loaded, wav, atol=1 / 32768, rtol=0)
    with pytest.warns(UserWarning, match="clipped"):
        save_audio(tmp_path / "loud.wav", torch.tensor([[2.0, -3.0, 0.5]]), 16000)
    torch.testing.assert_close(
        load_audio(tmp_path / "loud.wav")[0], torch.tensor([[1.0, -1.0, 0.5]]), atol=1e-4, rtol=0
    )


def test_bad_files_name_the_file(tmp_path, speech):
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav")

    empty = tmp_path / "zero_bytes.wav"
    empty.write_bytes(b"")
    good = tmp_path / "good.wav"
    save_audio(good, speech(0.5, 16000), 16000)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    noise = tmp_path / "noise.wav"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    text = tmp_path / "notes.txt"
    text.write_text("this is not audio\n" * 50)
    for path in (empty, truncated, noise, text):
        with pytest.raises(AudioError, match=path.name):
            load_audio(path)

    no_frames = tmp_path / "no_frames.wav"
    sf.write(str(no_frames), np.zeros((0, 1), dtype="float32"), 16000)
    with pytest.raises(AudioError, match="no_frames.wav.*empty"):
        load_audio(no_frames)


def test_preprocess_tensor_equals_file(tmp_path, speech):
    stereo = torch.cat([speech(1.5, 44100, seed=2), 0.5 * speech(1.5, 44100, seed=3)]) * 0.3  # (2, T)
    path = tmp_path / "stereo.wav"
    save_audio(path, stereo, 44100)
    from_tensor = preprocess(stereo, 44100, 16000, target_lufs=-20.0)
    from_file = load_and_preprocess(path, 16000, target_lufs=-20.0)
    assert from_tensor.shape == from_file.shape == (1, math.ceil(stereo.shape[-1] * 16000 / 44100))
    torch.testing.assert_close(from_tensor, from_file, atol=5e-4, rtol=0)  # PCM16 quantisation, then gain
    assert abs(loudness(from_tensor, 16000) + 20.0) < 0.5


def test_preprocess_validation():
    with pytest.raises(AudioError, match="NaN or inf"):
        preprocess(torch.tensor([[0.1, float("nan"), 0.2]]), 16000, 16000)
    with pytest.raises(ValueError, match=r"\(1, 2, 100\)"):
        preprocess(torch.zeros(1, 2, 100), 16000, 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        preprocess(torch.zeros(1, 100), 0, 16000)
    with pytest.raises(ValueError, match="target_sample_rate"):
        preprocess(torch.zeros(1, 100), 16000, -1)
    with pytest.raises(ValueError, match="dtype"):
        preprocess(torch.zeros(1, 100, dtype=torch.int16), 16000, 16000)
    with pytest.raises(ValueError, match=r"\(T, C\)"):
        preprocess(torch.zeros(16000, 2), 16000, 16000)
    with pytest.raises(AudioError, match="empty"):
        preprocess(torch.zeros(1, 0), 16000, 16000)
    out = preprocess(torch.zeros(100), 16000, 16000, target_lufs=None)
    assert out.shape == (1, 100)


def test_loudness_is_measured_beyond_full_scale():
    """torchaudio's K-weighting clamps to ±1: a clip 20 dB louder must measure 20 dB louder, not ~0 dB."""
    wav = demo_speech()  # -20 LUFS, peak below 1
    base = loudness(wav, 16000)
    for gain in (1.0, 10.0, 22.5 / float(wav.abs().max()), 32768.0):
        assert loudness(wav * gain, 16000) == pytest.approx(base + 20 * math.log10(gain), abs=0.05)


@pytest.mark.parametrize("scale", ["peak 22.5", "int16"])
def test_input_beyond_unit_is_scaled_with_a_warning(scale):
    wav = demo_speech()
    loud = wav / wav.abs().max() * 22.5 if scale == "peak 22.5" else wav * 32768
    with pytest.warns(UserWarning, match=r"peak .* is beyond ±1 \(int16-scale samples\? divide by 32768\)"):
        out, gain_db = preprocess_with_gain(loud, 16000, 16000, -20.0, source="loud.wav")
    assert loudness(out, 16000) == pytest.approx(-20.0, abs=0.05)  # was -7.4 LUFS with the clamped measure
    assert gain_db == pytest.approx(-20.0 - loudness(loud, 16000), abs=1e-3)
    with pytest.raises(AudioError, match=r"loud.wav: peak 22.5 is beyond ±1 and loudness normalisation is off"):
        preprocess_with_gain(wav / wav.abs().max() * 22.5, 16000, 16000, None, source="loud.wav",
                             refuse_beyond_unit=True)


def test_a_truncated_wav_is_refused_naming_the_frames(tmp_path):
    sf.write(tmp_path / "full.wav", demo_speech()[0, :16000].numpy(), 16000, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: 44 + 2 * 6000])
    with pytest.raises(AudioError, match=r"cut.wav is truncated: 6000 frames present, its header declares 16000"):
        load_audio(tmp_path / "cut.wav")
    # A streamed WAV (ffmpeg to a pipe) leaves 0xFFFFFFFF as its size: unknown, not truncated.
    streamed = bytearray(data)
    streamed[40:44] = (0xFFFFFFFF).to_bytes(4, "little")
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    assert load_audio(tmp_path / "streamed.wav")[0].shape == (1, 16000)
