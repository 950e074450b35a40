"""taae.io.atomic's byte and text writers: a kept file (a report, a figure) is replaced whole or not at all."""

import pytest

from taae.io.atomic import write_bytes, write_text


def test_atomic_write_replaces_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")
    write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert target.stat().st_mode & 0o777 != 0o600  # not the private mode of the temporary file
    with pytest.raises(TypeError):
        write_bytes(target, "not bytes")  # a failed write keeps the old file and cleans up
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_atomic_write_text_is_utf8(tmp_path):
    assert write_text(tmp_path / "a.md", "PESQ ↑ ±").read_bytes() == "PESQ ↑ ±".encode()
