"""Baselines from local weights: the same samples as calling the model directly, bitrates, one-line errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torchaudio.functional as AF

from taae.eval.baselines import HFCodecSystem, InteropSystem, load_baselines
from tests.conftest import synth_speech

STABLE_CODEC = "tests/fixtures/interop/stable_codec_small"
DAC = "tests/fixtures/interop/dac_tiny/weights.pth"


def _direct(kind: str, model, ref: torch.Tensor, arg) -> torch.Tensor:
    """What a user would write with transformers alone: resample, encode, decode, crop, resample back, crop."""
    x = AF.resample(ref.reshape(1, 1, -1), 16000, model.config.sampling_rate) \
        if model.config.sampling_rate != 16000 else ref.reshape(1, 1, -1)
    if kind == "encodec":
        enc = model.encode(x, bandwidth=arg)
        y = model.decode(enc.audio_codes, enc.audio_scales)[0]
    elif kind == "mimi":
        y = model.decode(model.encode(x, num_quantizers=arg).audio_codes)[0]
    else:
        y = model.decode(audio_codes=model.encode(x, n_quantizers=arg).audio_codes)[0]
    y = y.reshape(1, -1)[:, : x.shape[-1]]
    if model.config.sampling_rate != 16000:
        y = AF.resample(y, model.config.sampling_rate, 16000)
    return y[:, : ref.shape[-1]]


@pytest.mark.parametrize(("kind", "setting", "arg"), [("encodec", "2", 1.5), ("mimi", "5", 5), ("mimi", "8", 8),
                                                        ("dac-hf", "2", 2)])
@torch.inference_mode()
def test_baseline_equals_transformers_sample_for_sample(hf_folders, kind, setting, arg):
    (system,), notes = load_baselines([f"{kind}={hf_folders[kind]}@{setting}"], 16000)
    ref = synth_speech(0.5, seed=3)
    out = system.process(ref).audio
    expected = _direct(kind, system.model, ref, arg)
    assert out.shape == ref.shape
    assert torch.equal(out[:, : expected.shape[-1]], expected)
    codes = system.encode(AF.resample(ref.reshape(1, 1, -1), 16000, system.model_rate)
                          if system.model_rate != 16000 else ref.reshape(1, 1, -1)).audio_codes
    assert codes.shape[-2] == int(setting)  # the requested number of codebooks, not the model's maximum
    assert str(hf_folders[kind]) in notes[0] and system.weights_hash in notes[0]
    assert ("resampled 16000→24000→16000 Hz" in notes[0]) == (kind != "dac-hf")


def test_more_codebooks_change_the_audio(hf_folders):
    systems, _ = load_baselines([f"mimi={hf_folders['mimi']}"], 16000)
    ref = synth_speech(0.5, seed=1)
    outs = [s.process(ref).audio for s in systems]
    assert [s.name for s in systems] == ["mimi_687.5bps", "mimi_825bps", "mimi_1100bps"]
    assert not torch.equal(outs[0], outs[1]) and not torch.equal(outs[1], outs[2])


def test_released_configs_give_the_papers_bitrates(tmp_path):
    import transformers as tf

    weights = tmp_path / "w"
    weights.write_bytes(b"x")
    mimi = SimpleNamespace(config=tf.MimiConfig())  # kyutai/mimi: 12.5 Hz, 2048 entries
    assert [HFCodecSystem("mimi", mimi, weights, k, 16000).bitrate for k in (5, 6, 8)] == [687.5, 825.0, 1100.0]
    encodec = SimpleNamespace(config=tf.EncodecConfig())  # facebook/encodec_24khz: 75 Hz, 1024 entries
    assert HFCodecSystem("encodec", encodec, weights, 2, 16000).bitrate == 1500.0
    with pytest.raises(ValueError, match=r"w: 3 codebooks is 2.25 kbps, not one of the model's target_bandwidths"):
        HFCodecSystem("encodec", encodec, weights, 3, 16000)


@torch.inference_mode()
def test_interop_baseline_equals_the_codec_called_directly():
    from taae.codec import Codec

    (system,), notes = load_baselines([f"stable-codec={STABLE_CODEC}@700bps"], 16000)
    assert isinstance(system, InteropSystem) and system.name == "stable-codec_700bps" and system.bitrate == 700
    ref = synth_speech(0.5, seed=2)
    codec = Codec.load(STABLE_CODEC)
    tokens = codec.encode(ref, 16000, preset="700bps", normalize=False)
    assert torch.equal(system.process(ref).audio, codec.decode(tokens, preset="700bps", num_samples=ref.shape[-1]))
    (dac_1q, dac_2q), _ = load_baselines([f"dac={DAC}"], 16000)
    assert (dac_1q.name, dac_2q.name) == ("dac_1q", "dac_2q")


@pytest.mark.parametrize(("request_", "message"), [
    ("opus=/x", r"--baseline 'opus=/x': unknown kind 'opus', known: \['encodec'"),
    ("mimi", r"--baseline 'mimi': expected KIND=PATH\[@SETTINGS\]"),
])
def test_malformed_requests_are_one_line_errors(request_, message):
    with pytest.raises(ValueError, match=message):
        load_baselines([request_], 16000)


def test_missing_or_wrong_folders_lose_their_rows_only(hf_folders, tmp_path):
    good = f"mimi={hf_folders['mimi']}@5"
    cases = {"mimi=/no/such/folder": "baseline skipped: --baseline mimi: /no/such/folder not found",
             f"mimi={tmp_path}": f"baseline skipped: --baseline mimi: {tmp_path}: not a transformers model folder",
             f"encodec={hf_folders['mimi']}": f"baseline skipped: --baseline encodec: cannot load {hf_folders['mimi']} "
                                              "as EncodecModel: ",
             f"mimi={hf_folders['mimi']}@x": "baseline skipped: --baseline mimi: codebook count 'x' is not an integer",
             f"dac={tmp_path}": f"baseline skipped: --baseline dac: cannot import {tmp_path}: "}
    for request_, line in cases.items():
        systems, notes = load_baselines([request_, good], 16000)
        assert [s.name for s in systems] == ["mimi_687.5bps"], request_
        assert notes[-1].startswith(line) and "\n" not in notes[-1], (request_, notes[-1])


def test_two_folders_of_one_kind_are_refused(hf_folders):
    with pytest.raises(ValueError, match=r"two rows would be named 'mimi_687.5bps'"):
        load_baselines([f"mimi={hf_folders['mimi']}@5", f"mimi={hf_folders['mimi']}@5"], 16000)
