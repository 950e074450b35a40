"""ONNX export and the ONNX Runtime runner (taae.codec.onnx_runtime): tokens equal the eager ones, audio within 1e-4."""

from __future__ import annotations

import json

import pytest
import torch

from taae.codec import Codec
from tests.codec.test_codec import tiny_model
from tests.conftest import synth_speech

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")  # torch.onnx's exporter


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny TAAE with a user preset, exported with --onnx; returns (eager codec, folder)."""
    folder = tmp_path_factory.mktemp("onnx") / "export"
    eager = Codec(tiny_model())
    eager.add_preset("fine", "9x3")
    eager.export(folder, onnx=True)
    return eager, folder


@pytest.mark.parametrize("seconds", [0.3, 2.0, 6.1])
def test_onnx_tokens_equal_eager_and_audio_within_1e_4(exported, seconds):
    eager, folder = exported
    onnx = Codec.load(folder, runtime="onnx")
    wav = synth_speech(seconds, seed=3)
    for preset in ("native", "700bps", "fine"):  # the user preset travels with the export
        tokens = onnx.encode(wav, 16000, preset)
        assert torch.equal(tokens, eager.encode(wav, 16000, preset)), preset
        torch.testing.assert_close(onnx.decode(tokens, preset), eager.decode(tokens, preset), atol=1e-4, rtol=0)


def test_onnx_batched_list_encode_equals_eager(exported):
    eager, folder = exported
    onnx = Codec.load(folder, runtime="onnx")
    wavs = [synth_speech(s, seed=i) for i, s in enumerate((0.3, 1.0, 1.0, 2.5))]
    for a, b in zip(onnx.encode(wavs, 16000, "700bps"), eager.encode(wavs, 16000, "700bps")):
        assert torch.equal(a, b)


def test_cli_export_onnx_and_encode_with_runtime_onnx(exported, tmp_path):
    import soundfile as sf

    from taae.__main__ import main
    from taae.io.tokens import TokenFile

    eager, folder = exported
    sf.write(tmp_path / "a.wav", synth_speech(1.1)[0].numpy(), 16000)
    assert main(["encode", "-c", str(folder), str(tmp_path / "a.wav"), str(tmp_path / "a.npz"), "-p", "700bps",
                 "--runtime", "onnx", "--threads", "1"]) == 0
    expected = eager.encode_file(tmp_path / "a.wav", "700bps").tokens
    assert torch.equal(TokenFile.load(tmp_path / "a.npz").tokens, expected)


def test_onnx_folder_of_other_weights_or_version_is_one_line(exported, tmp_path):
    eager, folder = exported
    other = Codec(tiny_model(seed=1))
    with pytest.raises(ValueError, match=r"was exported from model \w+ but this codec's model is") as err:
        other.use_onnx(folder / "onnx")
    assert "\n" not in str(err.value)
    meta = json.loads((folder / "onnx" / "onnx.json").read_text())
    bumped = tmp_path / "onnx"
    bumped.mkdir()
    for name in ("encoder.onnx", "decoder.onnx"):
        (bumped / name).symlink_to(folder / "onnx" / name)
    (bumped / "onnx.json").write_text(json.dumps(meta | {"version": 99}))
    with pytest.raises(ValueError, match=r"format/version \('taae-onnx', 99\) is not 'taae-onnx' version 1"):
        eager.use_onnx(bumped)
    with pytest.raises(FileNotFoundError, match="onnx.json is missing"):
        eager.use_onnx(tmp_path)
    with pytest.raises(ValueError, match="runtime must be 'torch' or 'onnx'"):
        Codec.load(folder, runtime="tensorrt")


def test_onnx_folder_from_another_taae_version_is_one_line(exported, tmp_path):
    # Same format version, same weights, another taae: its graphs bake in that taae's model code.
    eager, folder = exported
    meta = json.loads((folder / "onnx" / "onnx.json").read_text())
    (tmp_path / "onnx.json").write_text(json.dumps(meta | {"taae_version": "0.0.1"}))
    with pytest.raises(ValueError, match=r"was exported by taae 0\.0\.1 but this is taae .*export it again") as err:
        eager.use_onnx(tmp_path)
    assert "\n" not in str(err.value)


def test_the_istft_head_exports_and_runs_in_onnx_runtime(tmp_path):
    """tiny.yaml's iSTFT head: torch.export has no complex tensors, so under export the head inverts in real
    arithmetic (``ISTFTHead.istft_real``); tokens equal and audio within 1e-4 of the eager ``torch.istft``."""
    eager = Codec(tiny_model(head="istft"))
    eager.export(tmp_path / "export", onnx=True)
    onnx = Codec.load(tmp_path / "export", runtime="onnx")
    wav = synth_speech(2.0, seed=5)
    tokens = onnx.encode(wav, 16000, "700bps")
    assert torch.equal(tokens, eager.encode(wav, 16000, "700bps"))
    torch.testing.assert_close(onnx.decode(tokens, "700bps"), eager.decode(tokens, "700bps"), atol=1e-4, rtol=0)
