"""Atomic writes: a failed write (a full disk, a writer that raises) leaves the previous file byte-identical and no
partial file, for token files, audio, exports and evaluation reports."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import taae.io.atomic
from taae.__main__ import main
from taae.codec import Codec
from taae.eval.report import write_report
from taae.eval.results import EvalReport
from taae.io.atomic import atomic_write, write_bytes, write_many, write_text
from taae.io.audio import save_audio
from tests.codec.test_codec import tiny_model
from tests.conftest import synth_speech


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(tiny_model())


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _previous_files(folder: Path, codec: Codec) -> dict[str, Path]:
    """A token file, a WAV, an export and a report, written the normal way: what a failed rewrite must keep."""
    wav = synth_speech(0.5, seed=1)
    save_audio(folder / "speech.wav", wav, 16000)
    tokens = codec.encode_file(folder / "speech.wav", "700bps").save(folder / "keep.npz")
    save_audio(folder / "prev.wav", wav, 16000)
    export = codec.export(folder / "export")
    write_report(EvalReport(settings={"data": "x"}, systems=[], metrics=[], notes=["first"]), [], folder / "eval")
    return {"tokens": tokens, "wav": folder / "prev.wav", "export": export, "source": folder / "speech.wav"}


def _rewrite_all(folder: Path, codec: Codec, files: dict[str, Path]) -> list[str]:
    """Try to overwrite every previous file with different content; the error messages."""
    errors = []
    attempts = [
        lambda: codec.encode_file(files["source"], "1000bps").save(files["tokens"]),
        lambda: save_audio(files["wav"], synth_speech(0.7, seed=2), 16000),
        lambda: Codec(tiny_model(seed=3)).export(files["export"]),
        lambda: write_report(EvalReport(settings={}, systems=[], metrics=[], notes=["second"]), [], folder / "eval"),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as info:
            attempt()
        errors.append(str(info.value))
    return errors


class _FailingFile:
    """A file whose writes stop with ENOSPC after ``budget`` bytes, as a full disk does mid-write."""

    def __init__(self, f, budget: int):
        self._f, self._budget = f, budget

    def write(self, data):
        if len(data) > self._budget:
            self._f.write(data[: self._budget])
            self._budget = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._budget -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def test_a_failure_mid_write_keeps_every_previous_file(tmp_path, codec, monkeypatch):
    files = _previous_files(tmp_path, codec)
    before = _snapshot(tmp_path)
    real_open_temp = taae.io.atomic._open_temp

    def failing_open_temp(*args):
        tmp, f = real_open_temp(*args)
        return tmp, _FailingFile(f, 100)

    monkeypatch.setattr(taae.io.atomic, "_open_temp", failing_open_temp)
    errors = _rewrite_all(tmp_path, codec, files)
    assert all("no space left on device" in e for e in errors), errors
    assert "keep.npz" in errors[0] and "prev.wav" in errors[1]
    assert _snapshot(tmp_path) == before  # byte-identical, and no temporary file left behind


def test_a_writer_that_raises_keeps_the_previous_file(tmp_path, codec, monkeypatch):
    files = _previous_files(tmp_path, codec)
    before = _snapshot(tmp_path)

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise RuntimeError("simulated crash inside np.savez")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(RuntimeError, match="simulated crash"):
        codec.encode_file(files["source"], "1000bps").save(files["tokens"])
    assert _snapshot(tmp_path) == before


def test_helpers_replace_and_keep_modes(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    write_text(target, "one")
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    target.chmod(0o640)
    write_bytes(target, b"two")
    assert target.read_bytes() == b"two" and stat.S_IMODE(target.stat().st_mode) == 0o640
    with pytest.raises(KeyError):
        with atomic_write(target) as f:
            f.write(b"three")
            raise KeyError("the caller's own error")
    assert target.read_bytes() == b"two" and os.listdir(target.parent) == ["a.txt"]
    write_many({tmp_path / "x.json": "{}", tmp_path / "x.bin": b"\x00"})
    assert (tmp_path / "x.json").read_text() == "{}" and (tmp_path / "x.bin").read_bytes() == b"\x00"


@pytest.fixture
def full_disk(tmp_path):
    """A 16 MiB tmpfs (root only; skipped where it cannot be mounted), unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(folder: Path) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\x00" * 4096)
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_disk_full_keeps_every_previous_file(full_disk, codec, capsys):
    files = _previous_files(full_disk, codec)
    _fill(full_disk)
    before = _snapshot(full_disk)
    errors = _rewrite_all(full_disk, codec, files)
    assert all("no space left on device" in e for e in errors), errors
    # The command line reports it in one line per file and keeps going.
    assert main(["encode", str(files["source"]), str(files["tokens"]), "-c", str(files["export"])]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {files['tokens']}: no space left on device" in err
    assert _snapshot(full_disk) == before
    assert sf.info(str(files["wav"])).frames == 8000  # the previous WAV, not a truncated new one


def test_a_path_writer_replaces_the_file_or_leaves_it_as_it_was(tmp_path):
    from taae.io.atomic import write_with

    target = tmp_path / "fig.png"
    target.write_bytes(b"previous")

    def half_then_crash(tmp):
        tmp.write_bytes(b"half a figure")
        raise RuntimeError("simulated crash inside savefig")

    with pytest.raises(RuntimeError, match="simulated crash"):
        write_with(target, half_then_crash)
    assert target.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]
    write_with(target, lambda tmp: tmp.write_bytes(b"new figure"))
    assert target.read_bytes() == b"new figure" and sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


def test_a_write_protected_file_is_refused_like_open_would(tmp_path):
    # Bug on main: os.replace needs only the folder's permission, so a 0444 file was replaced for a non-root user.
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="taae-0444-"))  # reachable by an unprivileged user (tmp_path is 0700)
    try:
        folder.chmod(0o777)
        target = folder / "kept.txt"
        target.write_text("old")
        target.chmod(0o444)
        if os.geteuid() == 0:  # root may write anything, as open() lets it: check as an unprivileged user
            pid = os.fork()
            if pid == 0:
                status = 1
                try:
                    os.setgid(65534)
                    os.setuid(65534)
                    write_text(target, "new")
                except PermissionError as err:
                    status = 0 if str(err) == f"cannot write {target}: permission denied" else 3
                except BaseException:
                    status = 2
                os._exit(status)
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        else:
            with pytest.raises(PermissionError, match=f"cannot write {target}: permission denied"):
                write_text(target, "new")
        assert target.read_text() == "old" and [p.name for p in folder.iterdir()] == ["kept.txt"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
