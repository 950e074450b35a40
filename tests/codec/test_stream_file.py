"""taae.codec.stream_file: the files ``taae stream`` keeps go through the atomic writers
(``taae.io.audio.save_audio``)."""

from __future__ import annotations

import errno
import os

import pytest
import soundfile as sf
import torch

import taae.io.atomic
from taae.io.audio import save_audio


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    out = tmp_path / "out.wav"
    save_audio(out, torch.full((1, 160), 0.5), 16000)
    before = out.read_bytes()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(taae.io.atomic.os, "fsync", full_disk)
    with pytest.raises(OSError, match="cannot write .*out.wav: no space left on device"):
        save_audio(out, torch.zeros(1, 160), 16000)
    assert out.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["out.wav"]


def test_the_format_follows_the_suffix_and_the_result_is_user_readable(tmp_path):
    out = tmp_path / "sub" / "out.flac"
    save_audio(out, torch.zeros(1, 160), 16000)
    assert sf.info(out).format == "FLAC" and sorted(os.listdir(out.parent)) == ["out.flac"]
    assert out.stat().st_mode & 0o044  # not mkstemp's 0600


def test_stream_file_has_no_writer_of_its_own():
    import taae.codec.stream_file

    assert not hasattr(taae.codec.stream_file, "_write_atomic")  # one atomic-write helper: taae.io.atomic
