"""The causal TAAE's streaming step in ONNX Runtime (taae.codec.onnx_streaming): chunk by chunk, tokens equal the
PyTorch
streaming path's and audio within 1e-4, through Codec.streaming and `taae stream --runtime onnx`."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from taae.codec import Codec
from taae.codec.onnx_runtime import OnnxRunner
from taae.codec.onnx_streaming import OnnxStreamingSession
from tests.codec.test_codec import tiny_model
from tests.codec.test_streaming import causal_tiny
from tests.conftest import synth_speech

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")  # torch.onnx's exporter

CHUNKS = [1, 3, 7, 2]  # frames per chunk, cycled: sizes change within a stream


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The causal tiny TAAE with a user preset, exported with --onnx; returns (torch codec, ONNX codec, folder)."""
    folder = tmp_path_factory.mktemp("onnx_stream") / "export"
    eager = Codec(causal_tiny(), chunk_seconds=None)
    eager.add_preset("fine", "9x3")
    eager.export(folder, onnx=True)
    return eager, Codec.load(folder, runtime="onnx", chunk_seconds=None), folder


def stream(codec, wav, preset, batch_size=1, resets=None):
    """``wav`` (B, 1, S·hop) through codec.streaming in chunks of CHUNKS frames; ``resets``: {frame: item}."""
    hop, frames = codec.hop_length, wav.shape[-1] // codec.hop_length
    tokens, audio, start, i = [], [], 0, 0
    session = codec.streaming(batch_size, preset)
    # The ONNX codec must really run the ONNX step (the torch session would pass the comparisons trivially).
    assert isinstance(session, OnnxStreamingSession) == isinstance(codec._runner, OnnxRunner)
    with session as s:
        while start < frames:
            if resets and start in resets:
                s.reset(resets[start])
            end = min(frames, start + CHUNKS[i % len(CHUNKS)])
            t = s.encode(wav[..., start * hop: end * hop])
            tokens.append(t)
            audio.append(s.decode(t))
            start, i = end, i + 1
    return torch.cat(tokens, dim=-1), torch.cat(audio, dim=-1)


@pytest.mark.parametrize("preset", ["native", "700bps", "fine"])
def test_onnx_step_streams_like_the_torch_step(exported, preset):
    eager, onnx, _ = exported
    wav = synth_speech(4.0, seed=5)[None] * 0.5  # (1, 1, T): 100 frames, past the 64-frame window
    wav = wav[..., : wav.shape[-1] // eager.hop_length * eager.hop_length]
    ref_tokens, ref_audio = stream(eager, wav, preset)
    tokens, audio = stream(onnx, wav, preset)
    assert torch.equal(tokens, ref_tokens)
    torch.testing.assert_close(audio, ref_audio, atol=1e-4, rtol=0)
    assert torch.equal(tokens, eager.model.encode(wav, eager.resolve_preset(preset)))  # and the offline model's


def test_onnx_step_with_a_batch_and_a_reset(exported):
    # Two streams; the second restarts at frame 11 (its clock and caches go back to zero in the ONNX state too).
    eager, onnx, _ = exported
    wav = torch.stack([synth_speech(1.6, seed=s) for s in (1, 2)]) * 0.5  # (2, 1, T)
    ref = stream(eager, wav, "700bps", 2, resets={11: 1})
    got = stream(onnx, wav, "700bps", 2, resets={11: 1})
    assert torch.equal(got[0], ref[0])
    torch.testing.assert_close(got[1], ref[1], atol=1e-4, rtol=0)


def test_cli_stream_with_runtime_onnx_equals_torch(exported, tmp_path, capsys):
    import soundfile as sf

    from taae.__main__ import main

    _, _, folder = exported
    sf.write(tmp_path / "in.wav", synth_speech(1.37)[0].numpy(), 16000)
    for runtime in ("torch", "onnx"):
        assert main(["stream", str(tmp_path / "in.wav"), str(tmp_path / f"{runtime}.wav"), "-c", str(folder),
                     "--chunk-ms", "80", "-p", "700bps", "--tokens", str(tmp_path / f"{runtime}.npz"),
                     "--runtime", runtime]) == 0
    from taae.io.tokens import TokenFile

    assert torch.equal(TokenFile.load(tmp_path / "onnx.npz").tokens, TokenFile.load(tmp_path / "torch.npz").tokens)
    onnx_wav, _ = sf.read(tmp_path / "onnx.wav")
    torch_wav, _ = sf.read(tmp_path / "torch.wav")
    assert abs(onnx_wav - torch_wav).max() <= 1e-4


def test_an_export_without_the_step_is_one_line(exported, tmp_path):
    eager, _, folder = exported
    old = tmp_path / "onnx"
    shutil.copytree(folder / "onnx", old)  # a copy: ORT refuses external data outside the model's folder
    meta = json.loads((folder / "onnx" / "onnx.json").read_text())
    del meta["streaming"]
    (old / "onnx.json").write_text(json.dumps(meta))
    codec = Codec(eager.model, chunk_seconds=None).use_onnx(old)
    with pytest.raises(ValueError, match="has no streaming step .* export it again with `taae export --onnx`") as err:
        codec.streaming(1)
    assert "\n" not in str(err.value)


def test_a_non_causal_onnx_codec_refuses_to_stream(tmp_path):
    codec = Codec(tiny_model())
    codec.export(tmp_path / "export", onnx=True)
    assert not (tmp_path / "export" / "onnx" / "encoder_step.onnx").exists()
    with pytest.raises(ValueError, match="streaming needs a causal TAAE"):
        Codec.load(tmp_path / "export", runtime="onnx").streaming(1)
