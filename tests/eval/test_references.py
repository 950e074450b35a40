import shutil

import pytest
import torch

from taae.eval.metrics import si_sdr
from taae.eval.references import AddNoise, Codec2, Identity, MuLaw8, Opus, available_references, envelope_delay
from taae.eval.systems import CodecSystem, match_length
from taae.quantizers.token_spec import TokenSpec

SR = 16000
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
needs_codec2 = pytest.mark.skipif(shutil.which("c2enc") is None, reason="codec2 (c2enc/c2dec) not installed")


def test_identity_and_noise(speech):
    ref = speech(1.0, SR)
    out = Identity().process(ref)
    assert torch.equal(out.audio, ref) and out.length_change == 0 and out.tokens is None
    noisy = AddNoise(10.0).process(ref).audio
    noise = (noisy - ref).double()
    snr = 10 * torch.log10(ref.double().pow(2).mean() / noise.pow(2).mean())
    assert float(snr) == pytest.approx(10.0, abs=1e-6)
    with pytest.raises(ValueError, match="mono"):
        Identity().process(torch.zeros(2, 100))


def test_mulaw_is_close_and_keeps_length(speech):
    ref = speech(1.0, SR)[:, :15_999]
    sysm = MuLaw8()
    out = sysm.process(ref)
    assert sysm.bitrate == 128_000
    assert out.audio.shape == ref.shape and out.length_change == 0
    assert 20 < float(si_sdr(out.audio, ref)) < 60


def test_match_length():
    wav = torch.ones(1, 100)
    assert match_length(wav, 98, 5)[0].shape == (1, 98)
    padded, change = match_length(wav, 103, 5)
    assert padded.shape == (1, 103) and change == -3 and padded[0, -1] == 0
    with pytest.raises(ValueError, match="more than"):
        match_length(wav, 200, 5)


def test_available_references(monkeypatch):
    assert available_references("none").systems == []
    names = [s.name for s in available_references("identity,mulaw").systems]
    assert names == ["identity", "mulaw8"]
    with pytest.raises(ValueError, match="unknown reference"):
        available_references("mp3")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    refs = available_references("auto")
    assert [s.name for s in refs.systems] == ["identity", "mulaw8"]
    assert any("`ffmpeg`" in n for n in refs.notes) and any("`codec2`" in n for n in refs.notes)


@needs_ffmpeg
def test_opus_round_trip(speech):
    ref = speech(1.0, SR, seed=4)[:, :16_123]
    out = Opus(6000).process(ref)
    assert out.audio.shape == ref.shape and abs(out.length_change) <= 80
    assert torch.isfinite(out.audio).all() and out.audio.abs().max() > 0.01


@needs_codec2
@pytest.mark.parametrize("mode", ["700C", "3200"])
def test_codec2_round_trip(speech, mode):
    ref = speech(1.0, SR, seed=5)[:, :16_077]  # not a whole number of 40 ms frames
    sysm = Codec2(mode)
    out = sysm.process(ref)
    assert sysm.bitrate == {"700C": 700, "3200": 3200}[mode]
    assert out.audio.shape == ref.shape and out.length_change == 0
    assert out.audio.abs().max() > 0.01
    with pytest.raises(ValueError, match="unknown Codec 2 mode"):
        Codec2("9600")


def test_envelope_delay_finds_a_known_lag_without_phase(speech):
    ref = speech(1.0, SR, seed=6)
    # A lagged copy with its sign and fine structure scrambled: only the envelope lines up, as with Codec 2.
    lagged = torch.nn.functional.pad(ref, (400, 0))[:, : ref.shape[-1]]
    scrambled = lagged.abs() * torch.sign(torch.randn(lagged.shape, generator=torch.Generator().manual_seed(0)))
    assert envelope_delay(ref, scrambled, max_delay=960) == 400
    assert envelope_delay(ref, ref, max_delay=960) == 0


@needs_codec2
def test_codec2_alignment_removes_its_delay(speech):
    ref = speech(2.0, SR, seed=7)
    aligned, raw = Codec2("700C").process(ref).audio, Codec2("700C", align=False).process(ref).audio
    lag = envelope_delay(ref, raw, max_delay=960)
    assert lag > 160  # Codec 2 really lags (~20–35 ms), so unaligned frame metrics would score the delay
    assert envelope_delay(ref, aligned, max_delay=960) < lag
    assert aligned.shape == raw.shape == ref.shape


class _FakeCodec:
    """Stand-in for taae.codec.Codec: 2 tokens per 320-sample frame, decodes to a scaled copy."""

    sample_rate, frame_rate = SR, 50.0

    def __init__(self, short: bool = False):
        self.short = short

    def presets(self):
        return {"native": TokenSpec("native", (8, 8), 50.0)}

    def encode(self, wav, sample_rate, preset=None, normalize=True):
        assert not normalize and sample_rate == SR
        self._wav = wav
        frames = -(-wav.shape[-1] // 320)
        return torch.zeros(1, 2, frames, dtype=torch.long)

    def decode(self, tokens, preset=None, num_samples=None):
        return 0.5 * self._wav[..., : num_samples - (1 if self.short else 0)]


def test_codec_system(speech):
    ref = speech(0.5, SR)
    sysm = CodecSystem(_FakeCodec(), "native")
    assert sysm.name == "codec_native" and sysm.bitrate == 300 and not sysm.in_worker
    out = sysm.process(ref)
    assert out.audio.shape == ref.shape and out.tokens.shape == (1, 2, 25)
    assert out.seconds >= out.encode_seconds >= 0
    with pytest.raises(ValueError, match="decode returned"):
        CodecSystem(_FakeCodec(short=True), "native").process(ref)
    with pytest.raises(ValueError, match="unknown preset"):
        CodecSystem(_FakeCodec(), "400bps")
