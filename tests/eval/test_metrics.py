import importlib.util
import math

import pytest
import torch

from taae.eval.metrics import (
    compute_metrics,
    optional_metrics_status,
    pesq_score,
    real_time_factor,
    si_sdr,
    stoi_score,
)
from taae.eval.references import AddNoise
from taae.eval.token_stats import entropy_bitrate
from taae.quantizers.token_spec import TokenSpec

needs_pesq = pytest.mark.skipif(importlib.util.find_spec("pesq") is None, reason="pesq not installed")
needs_stoi = pytest.mark.skipif(importlib.util.find_spec("pystoi") is None, reason="pystoi not installed")
SR = 16000
ALL = ("si_sdr", "mel", "stft", "pesq_wb", "pesq_nb", "stoi")


@pytest.fixture(scope="module")
def scores():
    """Metrics of identity and of white noise at 20, 10, 0 dB on a demo speech file (computed once)."""
    from tests.conftest import demo_speech

    available, _ = optional_metrics_status(mos=False)
    ref = demo_speech()
    out = {"identity": compute_metrics(ref.clone(), ref, SR, available)}
    for snr in (20, 10, 0):
        out[snr] = compute_metrics(AddNoise(snr).process(ref).audio, ref, SR, available)
    return out


def test_identity_is_the_ceiling(scores):
    ident = scores["identity"]
    assert not ident.errors
    assert ident.values["si_sdr"] > 80
    assert ident.values["mel"] == pytest.approx(0.0, abs=1e-6)
    assert ident.values["stft"] == pytest.approx(0.0, abs=1e-6)
    if "pesq_wb" in ident.values:
        assert ident.values["pesq_wb"] > 4.5  # P.862.2 tops out at 4.64
        assert ident.values["pesq_nb"] > 4.4
    if "stoi" in ident.values:
        assert ident.values["stoi"] >= 0.999


def test_noise_lowers_every_metric_monotonically(scores):
    chain = [scores["identity"], scores[20], scores[10], scores[0]]
    for name in chain[0].values:
        vals = [c.values[name] for c in chain]
        assert all(math.isfinite(v) for v in vals), (name, vals)
        if name in ("mel", "stft"):
            assert vals == sorted(vals) and len(set(vals)) == 4, (name, vals)
        else:
            assert vals == sorted(vals, reverse=True) and len(set(vals)) == 4, (name, vals)
    assert scores[10].values["si_sdr"] == pytest.approx(10.0, abs=0.5)


def test_si_sdr_matches_torchmetrics(speech):
    import torchmetrics.functional.audio as tm  # the dev extra: the tests' reference, so never skipped
    ref = torch.cat([speech(1.0, SR, seed=s) for s in range(3)])  # (3, T)
    est = 0.7 * ref + 0.05 * torch.randn_like(ref) + 0.01
    ours = si_sdr(est, ref)
    assert ours.shape == (3,) and ours.dtype == torch.float64
    # torchmetrics defaults to zero_mean=False; ours removes the mean (the usual definition) unless told not to.
    theirs64 = tm.scale_invariant_signal_distortion_ratio(est.double(), ref.double(), zero_mean=True)
    torch.testing.assert_close(ours, theirs64, atol=1e-4, rtol=0)
    theirs32 = tm.scale_invariant_signal_distortion_ratio(est, ref, zero_mean=True)
    torch.testing.assert_close(ours, theirs32.double(), atol=1e-4, rtol=0)
    raw = tm.scale_invariant_signal_distortion_ratio(est.double(), ref.double(), zero_mean=False)
    torch.testing.assert_close(si_sdr(est, ref, zero_mean=False), raw, atol=1e-4, rtol=0)
    # Scale invariance: a gain on the estimate changes nothing.
    torch.testing.assert_close(si_sdr(3.0 * est, ref), ours, atol=1e-6, rtol=0)


def test_si_sdr_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="equal shapes"):
        si_sdr(torch.zeros(10), torch.zeros(11))


@needs_pesq
def test_pesq_equals_the_package(speech):
    import pesq
    import torchaudio.functional as AF

    ref = speech(1.5, SR, seed=2)
    est = AddNoise(15).process(ref).audio
    wb = pesq.pesq(SR, ref[0].double().numpy(), est[0].double().numpy(), "wb")
    assert pesq_score(est, ref, SR, "wb") == wb
    r8, e8 = (AF.resample(x.double(), SR, 8000)[0].numpy() for x in (ref, est))
    assert pesq_score(est, ref, SR, "nb") == pesq.pesq(8000, r8, e8, "nb")
    with pytest.raises(ValueError, match="mode"):
        pesq_score(est, ref, SR, "xb")


@needs_stoi
def test_stoi_equals_the_package(speech):
    from pystoi import stoi

    ref = speech(1.5, SR, seed=3)
    est = AddNoise(5).process(ref).audio
    assert stoi_score(est, ref, SR) == stoi(ref[0].double().numpy(), est[0].double().numpy(), SR, extended=False)


@needs_pesq
def test_metric_failure_is_nan_not_a_crash():
    silence = torch.zeros(1, SR)
    m = compute_metrics(silence, silence, SR, ("si_sdr", "pesq_wb"))
    assert math.isnan(m.values["pesq_wb"]) and "pesq_wb" in m.errors
    assert math.isfinite(m.values["si_sdr"])
    short = torch.randn(1, 1000)  # pesq's own BufferTooShortError (< 0.25 s)
    m = compute_metrics(short, short, SR, ("pesq_wb", "pesq_nb"))
    assert all(math.isnan(v) for v in m.values.values()) and "BufferTooShort" in m.errors["pesq_wb"]


def test_compute_metrics_validates(speech):
    ref = speech(0.5, SR)
    with pytest.raises(ValueError, match="unknown metrics"):
        compute_metrics(ref, ref, SR, ("si_sdr", "visqol"))
    with pytest.raises(ValueError, match="samples"):
        compute_metrics(ref[:, :-1], ref, SR, ("si_sdr",))


@pytest.mark.skipif(importlib.util.find_spec("speechmos") is None, reason="speechmos not installed")
def test_dnsmos_runs_offline_and_ranks_noise_lower(monkeypatch):
    """DNSMOS from the package's own ONNX files with every socket refused; noisy speech scores below clean."""
    import socket

    from tests.conftest import demo_speech

    def refuse(*args, **kwargs):
        raise OSError("network use in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    clean = demo_speech()
    noisy = AddNoise(0.0).process(clean).audio
    mos = [compute_metrics(x, clean, SR, ("mos",)) for x in (clean, noisy)]
    assert all(not m.errors for m in mos), [m.errors for m in mos]
    assert 1.0 <= mos[1].values["mos"] < mos[0].values["mos"] <= 5.0


def test_entropy_of_uniform_tokens_power_of_two():
    spec = TokenSpec("1024x2", (1024, 1024), 25.0)
    tokens = torch.randint(0, 1024, (4, 2, 50_000), generator=torch.Generator().manual_seed(0))
    st = entropy_bitrate(tokens, spec)
    assert st.num_frames == 200_000 and st.tokens_per_second == 50 and st.tokens_per_frame == 2
    assert st.nominal_bitrate == spec.exact_bitrate == 500
    assert st.entropy_bitrate == pytest.approx(st.nominal_bitrate, rel=0.01)
    assert st.usage == [1.0, 1.0] and st.undersampled == [False, False]


def test_entropy_of_uniform_tokens_non_power_of_two():
    # 729 = 3^6: the nominal ⌈log2⌉ rate (10 bits) exceeds the exact log2(729) = 9.51 bits a uniform source needs,
    # so the entropy rate matches the exact rate, not the nominal one.
    spec = TokenSpec("4x729", (729,) * 4, 25.0)
    tokens = torch.randint(0, 729, (1, 4, 200_000), generator=torch.Generator().manual_seed(1))
    st = entropy_bitrate(tokens, spec)
    assert st.nominal_bitrate == 1000 and st.exact_bitrate == pytest.approx(25 * 4 * math.log2(729))
    assert st.entropy_bitrate == pytest.approx(st.exact_bitrate, rel=0.01)
    assert st.entropy_bitrate < 0.96 * st.nominal_bitrate
    assert all(h <= mm for h, mm in zip(st.entropy_bits, st.miller_madow_bits))


def test_entropy_of_constant_tokens_is_zero_and_lists_pool():
    spec = TokenSpec("2x15625", (15625, 15625), 25.0)
    items = [torch.full((1, 2, s), 7) for s in (10, 33, 57)]  # varying lengths, one per file
    st = entropy_bitrate(items, spec)
    assert st.num_frames == 100
    assert st.entropy_bitrate == pytest.approx(0.0, abs=1e-12)
    assert st.usage == [1 / 15625, 1 / 15625] and st.undersampled == [True, True]


def test_entropy_of_a_huge_vocabulary_uses_distinct_counts():
    spec = TokenSpec("native", (17**6,), 25.0)  # ~24 M: counted by torch.unique, not a dense histogram
    tokens = torch.arange(4096).reshape(1, 1, -1) * 5000
    st = entropy_bitrate(tokens, spec)
    assert st.entropy_bits[0] == pytest.approx(12.0)
    assert st.usage[0] == pytest.approx(4096 / 17**6)


def test_entropy_validates_tokens():
    spec = TokenSpec("4x729", (729,) * 4, 25.0)
    with pytest.raises(ValueError, match="out of range"):
        entropy_bitrate(torch.full((1, 4, 3), 729), spec)
    with pytest.raises(ValueError, match="expects tokens of shape"):
        entropy_bitrate(torch.zeros(1, 2, 3, dtype=torch.long), spec)


def test_real_time_factor():
    assert real_time_factor(0.5, 2.0) == 0.25
    assert math.isnan(real_time_factor(1.0, 0.0))


def test_noise_floor_measures_the_estimate_in_the_references_pauses():
    """Half a second of tone then half a second of silence; the estimate adds white noise 30 dB below the tone."""
    from taae.eval.metrics import noise_floor

    t = torch.arange(SR // 2) / SR
    ref = torch.cat([0.5 * torch.sin(2 * math.pi * 220 * t), torch.zeros(SR // 2)]).reshape(1, -1)
    tone_energy = 0.5**2 / 2
    noise = torch.randn(ref.shape, generator=torch.Generator().manual_seed(0)) * math.sqrt(tone_energy * 1e-3)
    assert noise_floor(ref + noise, ref, SR) == pytest.approx(30.0, abs=0.2)
    # scale-invariant: the floor is relative to the estimate's own speech
    assert noise_floor(0.1 * (ref + noise), ref, SR) == pytest.approx(30.0, abs=0.2)
    with pytest.raises(ValueError, match="no frame 40 dB below"):
        noise_floor(ref[:, : SR // 2], ref[:, : SR // 2], SR)
