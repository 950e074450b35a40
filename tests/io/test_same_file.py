"""No command writes over its own input (issue 28): resolved paths, symbolic and hard links, for every writer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from taae.__main__ import TOKEN_SUFFIXES, find_jobs
from taae.io.audio import AUDIO_SUFFIXES

ROOT = Path(__file__).resolve().parents[2]
SAME = "same file"


def _wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(1600, dtype="float32"), 16000)
    return path


def test_check_not_input_sees_links_and_resolved_paths(tmp_path):
    from taae.io.atomic import check_not_input

    src = _wav(tmp_path / "a.wav")
    os.link(src, tmp_path / "hard.npz")
    (tmp_path / "soft.wav").symlink_to(src)
    for out in (src, tmp_path / "hard.npz", tmp_path / "soft.wav", tmp_path / "sub" / ".." / "a.wav"):
        with pytest.raises(ValueError, match=SAME):
            check_not_input(out, [src])
    check_not_input(tmp_path / "b.wav", [src])


def test_encode_and_decode_refuse_an_output_that_is_the_input(tmp_path):
    # Bug on main: `taae encode a.wav link.npz` (a hard link to a.wav) replaced the audio with tokens.
    src = _wav(tmp_path / "a.wav")
    os.link(src, tmp_path / "link.npz")
    with pytest.raises(ValueError, match=SAME):
        find_jobs(str(src), str(tmp_path / "link.npz"), AUDIO_SUFFIXES, TOKEN_SUFFIXES)
    tokens = tmp_path / "t.npz"
    tokens.write_bytes(b"PK")
    os.link(tokens, tmp_path / "t.wav")
    with pytest.raises(ValueError, match=SAME):
        find_jobs(str(tokens), str(tmp_path / "t.wav"), TOKEN_SUFFIXES, (".wav", ".flac"))


def test_stream_refuses_in_in_and_tokens_over_the_output(tmp_path):
    # Bug on main: `taae stream IN IN` overwrote its input; --tokens equal to the output replaced the audio.
    from taae.codec.stream_file import stream_file

    src = _wav(tmp_path / "a.wav")
    with pytest.raises(ValueError, match=SAME):
        stream_file(None, src, src)
    with pytest.raises(ValueError, match=r"--tokens .*same file"):
        stream_file(None, src, tmp_path / "out.wav", tokens_path=tmp_path / "out.wav")
    with pytest.raises(ValueError, match=r"--tokens .*same file"):
        stream_file(None, src, tmp_path / "out.wav", tokens_path=src)


def test_prepare_and_tokenize_refuse_to_write_into_their_input(tmp_path):
    from taae.data.prepare import prepare
    from taae.jobs.tokenize import tokenize

    src = tmp_path / "src"
    _wav(src / "a.wav")
    with pytest.raises(ValueError, match=SAME):
        prepare(src, src, progress=False)
    assert sorted(p.name for p in src.iterdir()) == ["a.wav"]
    with pytest.raises(ValueError, match=SAME):
        tokenize(str(src), src / "." , checkpoint=str(tmp_path / "missing"))


def test_evaluate_never_scores_its_own_output(tmp_path):
    # Bug on main: --out inside --data listed the previous run's decoded examples as test files.
    from taae.eval.inputs import list_audio_files

    data = tmp_path / "data"
    _wav(data / "a.wav")
    _wav(data / "eval" / "examples" / "native" / "000_a.wav")
    assert list_audio_files(data, exclude=data / "eval") == [data / "a.wav"]
    with pytest.raises(ValueError, match="is the --data folder"):
        list_audio_files(data, exclude=data)


def test_import_stable_codec_dir_dir_keeps_the_released_weights(tmp_path):
    # Bug on main: the export's model.safetensors replaced the released model.safetensors (same name), rc 0.
    folder = tmp_path / "stable-codec"
    folder.mkdir()
    (folder / "model_config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"released weights")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "taae", "import", "stable-codec", str(folder), str(folder)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and SAME in proc.stderr
    assert (folder / "model.safetensors").read_bytes() == b"released weights"
