"""taae.stream_file: the files ``taae stream`` keeps are written atomically."""

from __future__ import annotations

import os

import pytest
import soundfile as sf
import torch

from taae.audio import save_audio
from taae.stream_file import _write_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    out = tmp_path / "out.wav"
    save_audio(out, torch.full((1, 160), 0.5), 16000)
    before = out.read_bytes()

    def torn(tmp):
        tmp.write_bytes(b"RIFF")  # half a file, then the process dies
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _write_atomic(out, torn)
    assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["out.wav"]


def test_the_temp_file_keeps_the_suffix_and_the_result_is_user_readable(tmp_path):
    # libsndfile picks the container from the suffix: a ".tmp" suffix would fail, a ".wav" one must be a wav.
    out = tmp_path / "sub" / "out.flac"
    _write_atomic(out, lambda tmp: save_audio(tmp, torch.zeros(1, 160), 16000))
    assert sf.info(out).format == "FLAC" and sorted(os.listdir(out.parent)) == ["out.flac"]
    assert out.stat().st_mode & 0o044  # not mkstemp's 0600
