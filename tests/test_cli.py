"""``python -m taae``: encode/decode round trips (file, folder, glob), info, export, failures and --help."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from taae.__main__ import main
from taae.io.audio import save_audio
from tests.codec.test_codec import tiny_model, write_checkpoint
from tests.conftest import synth_speech


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "last.ckpt", tiny_model(seed=0), tiny_model(seed=1))


def test_file_round_trip(tmp_path, checkpoint):
    wav = synth_speech(1.37, seed=4)
    save_audio(tmp_path / "in.wav", wav, 16000)
    assert main(["encode", str(tmp_path / "in.wav"), str(tmp_path / "in.npz"), "-c", str(checkpoint),
                 "--preset", "700bps"]) == 0
    with np.load(tmp_path / "in.npz") as data:
        assert data["tokens"].dtype == np.uint16 and data["tokens"].shape == (1, 2, 35)
        assert str(data["preset"]) == "2x15625_700bps"
    assert main(["decode", str(tmp_path / "in.npz"), str(tmp_path / "out.wav"), "-c", str(checkpoint)]) == 0
    info = sf.info(tmp_path / "out.wav")
    assert (info.frames, info.samplerate, info.channels) == (wav.shape[-1], 16000, 1)


def test_info_and_export(tmp_path, checkpoint, capsys):
    assert main(["info", "--checkpoint", str(checkpoint)]) == 0
    out = capsys.readouterr().out
    for needle in ("TAAE (ema weights)", "400bps", "700bps", "1000bps", " 400 ", " 700 ", " 1000 ", "387.7",
                   "16000 Hz", "frame rate 25 Hz", "hop 640"):
        assert needle in out, needle
    assert main(["export", "-c", str(checkpoint), str(tmp_path / "export"), "--no-ema"]) == 0
    assert "generator weights" in capsys.readouterr().out
    assert main(["info", "-c", str(tmp_path / "export")]) == 0
    assert "TAAE (export weights)" in capsys.readouterr().out


def test_folder_and_glob(tmp_path, checkpoint, capsys):
    src = tmp_path / "corpus"
    save_audio(src / "a.wav", synth_speech(0.6, seed=1), 16000)
    save_audio(src / "sub" / "b.flac", synth_speech(0.9, 22050, seed=2), 22050)
    (src / "sub" / "broken.wav").write_text("not audio")
    (src / "notes.txt").write_text("ignored")
    assert main(["encode", str(src), str(tmp_path / "tokens"), "-c", str(checkpoint), "-p", "1000bps"]) == 1
    err = capsys.readouterr().err
    assert "broken.wav" in err and "1 of 3 files failed" in err
    assert sorted(p.relative_to(tmp_path / "tokens").as_posix() for p in (tmp_path / "tokens").rglob("*.npz")) == [
        "a.npz", "sub/b.npz"]
    assert main(["decode", str(tmp_path / "tokens"), str(tmp_path / "decoded"), "-c", str(checkpoint)]) == 0
    assert sf.info(tmp_path / "decoded" / "sub" / "b.wav").frames == round(0.9 * 16000)
    assert main(["encode", str(src / "**" / "*.flac"), str(tmp_path / "glob"), "-c", str(checkpoint)]) == 0
    assert [p.relative_to(tmp_path / "glob").as_posix() for p in (tmp_path / "glob").rglob("*")
            if p.is_file()] == ["sub/b.npz"]


def test_clear_errors(tmp_path, checkpoint, capsys):
    assert main(["encode", str(tmp_path / "none.wav"), str(tmp_path / "x.npz"), "-c", str(checkpoint)]) == 2
    assert "input not found" in capsys.readouterr().err
    assert main(["info", "-c", str(tmp_path / "none.ckpt")]) == 2
    assert "none.ckpt" in capsys.readouterr().err
    save_audio(tmp_path / "a.wav", synth_speech(0.5), 16000)
    assert main(["encode", str(tmp_path / "a.wav"), str(tmp_path / "a.npz"), "-c", str(checkpoint),
                 "-p", "bogus"]) == 1
    assert "unknown preset 'bogus'" in capsys.readouterr().err


def test_help():
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    result = subprocess.run([sys.executable, "-m", "taae", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for verb in ("encode", "decode", "info", "export"):
        assert verb in result.stdout


def test_round_trip_of_demo_speech_through_a_freshly_trained_checkpoint(tmp_path):
    from taae.training.cli import TaaeCLI
    from tests.conftest import ASSETS

    speech = ASSETS / "speech_call_fwd.wav"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.wav").write_bytes(speech.read_bytes())
    cli = TaaeCLI(args=[
        "fit", "--config", "configs/taae/tiny.yaml", "--data.class_path", "taae.data.AudioDataModule",
        "--data.init_args.train", str(tmp_path / "data"), "--data.init_args.segment_length", "3200",
        "--data.init_args.batch_size", "1", "--trainer.max_steps", "4", "--trainer.logger", "false",
        "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.accelerator", "cpu"])
    checkpoint = tmp_path / "last.ckpt"
    cli.trainer.save_checkpoint(checkpoint)
    assert int(cli.model.generator_steps) == 2

    for preset in ("400bps", "700bps", "1000bps"):
        out = tmp_path / f"{preset}.npz"
        assert main(["encode", str(speech), str(out), "-c", str(checkpoint), "--preset", preset]) == 0
        assert main(["decode", str(out), str(tmp_path / f"{preset}.wav"), "-c", str(checkpoint)]) == 0
        decoded, rate = sf.read(tmp_path / f"{preset}.wav")
        assert rate == 16000 and len(decoded) == sf.info(speech).frames
        assert np.isfinite(decoded).all() and np.abs(decoded).max() > 0


def test_stream_equals_encode_then_decode(tmp_path, capsys):
    causal = tiny_model(seed=2, causal=True, window=(8, 0))
    ckpt = write_checkpoint(tmp_path / "causal.ckpt", causal)
    save_audio(tmp_path / "in.wav", synth_speech(1.37, seed=5), 16000)
    assert main(["stream", str(tmp_path / "in.wav"), str(tmp_path / "streamed.wav"), "-c", str(ckpt),
                 "--chunk-ms", "80", "-p", "700bps", "--tokens", str(tmp_path / "streamed.npz"),
                 "--subtype", "FLOAT", "--print-chunks"]) == 0
    out = capsys.readouterr().out
    assert "80 ms algorithmic" in out and "real-time factor" in out and "18 of 2 frame(s)" in out
    assert "chunk    17  wall" in out and "chunk    18" not in out
    assert main(["encode", str(tmp_path / "in.wav"), str(tmp_path / "offline.npz"), "-c", str(ckpt),
                 "-p", "700bps"]) == 0
    with np.load(tmp_path / "streamed.npz") as streamed, np.load(tmp_path / "offline.npz") as offline:
        assert all(np.array_equal(streamed[key], offline[key]) for key in offline.files)
    assert main(["decode", str(tmp_path / "offline.npz"), str(tmp_path / "offline.wav"), "-c", str(ckpt),
                 "--subtype", "FLOAT"]) == 0
    streamed_wav, _ = sf.read(tmp_path / "streamed.wav")
    offline_wav, _ = sf.read(tmp_path / "offline.wav")
    assert streamed_wav.shape == offline_wav.shape == (round(1.37 * 16000),)
    np.testing.assert_allclose(streamed_wav, offline_wav, atol=1e-5, rtol=0)


def test_stream_errors(tmp_path, checkpoint, capsys):
    save_audio(tmp_path / "in.wav", synth_speech(0.5), 16000)
    assert main(["stream", str(tmp_path / "in.wav"), str(tmp_path / "o.wav"), "-c", str(checkpoint)]) == 2
    assert "streaming needs a causal TAAE" in capsys.readouterr().err
    causal = write_checkpoint(tmp_path / "causal.ckpt", tiny_model(causal=True, window=(8, 0)))
    assert main(["stream", str(tmp_path / "in.wav"), str(tmp_path / "o.wav"), "-c", str(causal),
                 "--chunk-ms", "50"]) == 2
    assert "--chunk-ms 50 is not a whole number of 40 ms frames" in capsys.readouterr().err
