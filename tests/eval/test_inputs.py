"""LibriSpeech layout: FLAC files in speaker/chapter folders, ``*.trans.txt`` transcripts, subsets by list file."""

from __future__ import annotations

import pytest

from taae.eval.inputs import content_hash, list_audio_files, read_transcripts, select_subset
from tests.eval.speech_folders import TRANSCRIPTS, librispeech


def test_librispeech_files_and_transcripts(tmp_path):
    top = librispeech(tmp_path, seconds=0.2)
    files = list_audio_files(top)
    assert sorted(f.stem for f in files) == sorted(TRANSCRIPTS)
    assert {f.stem: t for f, t in read_transcripts(files).items()} == TRANSCRIPTS


def test_no_transcripts_gives_none(tmp_path):
    top = librispeech(tmp_path, seconds=0.2, transcripts=False)
    assert read_transcripts(list_audio_files(top)) == {}


def test_transcript_line_without_text_names_file_and_line(tmp_path):
    top = librispeech(tmp_path, seconds=0.2)
    trans = next(top.rglob("*.trans.txt"))
    trans.write_text(trans.read_text() + "1089-134686-0009\n")
    with pytest.raises(ValueError, match=rf"{trans.name}:\d+: utterance '1089-134686-0009' has no text"):
        read_transcripts(list_audio_files(top))


def test_subset_by_id_or_path_in_list_order(tmp_path):
    top = librispeech(tmp_path, seconds=0.2)
    files = list_audio_files(top)
    (tmp_path / "list.txt").write_text("121-121726-0000  # first\n\n1089/134686/1089-134686-0001.flac\n")
    chosen = select_subset(files, tmp_path / "list.txt", top)
    assert [f.stem for f in chosen] == ["121-121726-0000", "1089-134686-0001"]
    (tmp_path / "bad.txt").write_text("1089-134686-0000\nnope-1-2\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: 'nope-1-2' matches no audio file"):
        select_subset(files, tmp_path / "bad.txt", top)


def test_content_hash_changes_with_any_byte(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    (tmp_path / "m" / "w.bin").write_bytes(b"\x00\x01")
    before = content_hash(tmp_path / "m")
    (tmp_path / "m" / "w.bin").write_bytes(b"\x00\x02")
    assert content_hash(tmp_path / "m") != before and len(before) == 16
