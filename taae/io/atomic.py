"""Atomic file writes: a file a user keeps is either the previous one or the complete new one, never a partial one.

Every writer in taae that produces a file a user keeps (token files, audio, exports, evaluation reports) goes
through here: the bytes go to a temporary file in the target's folder (the same file system, so the rename is
atomic), which is flushed and fsynced, then ``os.replace``-d over the target, and the folder is fsynced so that
the rename itself survives a crash. Any failure removes the temporary file and leaves the previous file
byte-identical; an ``OSError`` is re-raised naming the file and the cause in words ("no space left on device").

New files get the mode ``open()`` would give them (0666 minus the umask), not ``mkstemp``'s 0600; a replaced file
keeps its mode. A target that ``open(path, "w")`` would refuse (a write-protected file for a non-root user, a
folder) is refused the same way, although ``os.replace`` needs only the folder's permission.

:func:`check_not_input` is the same-file check every command runs before it writes: no command writes over its own
input (resolved paths, symbolic and hard links).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["TEMP_SUFFIX", "atomic_write", "check_not_input", "fsync_dir", "fsync_replace", "new_file_mode", "same_file",
           "write_bytes", "write_error", "write_json", "write_many", "write_text", "write_with"]

TEMP_SUFFIX = ".tmp"
"""Temporary files are ``.<name>.<random>.tmp`` next to their target."""


def write_error(path: str | os.PathLike, err: OSError) -> OSError:
    """``err`` as one line naming ``path`` and the cause, with the same ``OSError`` subclass and errno."""
    reason = os.strerror(err.errno).lower() if err.errno else (err.strerror or str(err) or type(err).__name__)
    new = type(err)(f"cannot write {path}: {reason}")
    new.errno = err.errno  # only errno: with strerror or filename set, str() would print "[Errno 28] …" instead
    return new


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0666 minus the umask (``mkstemp`` gives 0600)."""
    return _new_file_mode()


def _new_file_mode() -> int:
    try:  # Linux reports the umask without changing it
        with open("/proc/self/status") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` are one file: the same inode (hard or symbolic links), or the same resolved path."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one does not exist (yet): compare where the paths lead
        return Path(a).resolve() == Path(b).resolve()


def check_not_input(output: str | os.PathLike, inputs, what: str = "output") -> None:
    """Refuse to write ``output`` when it is one of ``inputs`` (see :func:`same_file`): writing would destroy it.

    Raises:
        ValueError: one line naming both paths.
    """
    for source in inputs:
        if source is not None and same_file(output, source):
            raise ValueError(f"{what} {output} is the input {source} (same file); writing it would destroy the "
                             "input: choose another output")


def _check_writable(path: Path) -> None:
    """Refuse what ``open(path, "w")`` would refuse, before anything is staged."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    effective = os.access in os.supports_effective_ids  # checks as the user writes (euid), not the real uid
    if path.exists() and not os.access(path, os.W_OK, effective_ids=effective):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))


def _open_temp(path: Path, mode: str, encoding: str | None, newline: str | None) -> tuple[Path, IO[Any]]:
    try:
        _check_writable(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as err:
        raise write_error(path, err) from err
    text = {} if "b" in mode else {"encoding": encoding or "utf-8", "newline": newline}
    return Path(name), os.fdopen(fd, mode, **text)


def _finish(tmp: Path, f: IO[Any], path: Path) -> None:
    """Flush, fsync and close the temporary file and give it the target's mode."""
    with f:
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, stat.S_IMODE(path.stat().st_mode) if path.exists() else _new_file_mode())


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk, where the platform can open folders."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform opens folders; the rename is atomic all the same
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _discard(tmp: Path, f: IO[Any] | None, path: Path, err: BaseException) -> BaseException:
    """Close and remove a temporary file after ``err``; the exception to raise in its place."""
    if f is not None and not f.closed:
        try:
            f.close()
        except OSError:
            pass  # a full disk fails the final flush too; the first error is the one to report
    tmp.unlink(missing_ok=True)
    return write_error(path, err) if isinstance(err, OSError) else err


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None,
                 newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; when the block ends cleanly it replaces ``path``.

    Args:
        path: the file to write; parent folders are created.
        mode: ``"wb"`` (bytes) or ``"w"`` (text, ``encoding`` default UTF-8, ``newline`` as in ``open``).

    Raises:
        OSError: the write, fsync or rename failed, named ("cannot write x.npz: no space left on device");
            the previous file is untouched and no temporary file is left. Exceptions raised inside the block
            propagate the same way.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    tmp, f = _open_temp(path, mode, encoding, newline)
    try:
        yield f
        _finish(tmp, f, path)
        os.replace(tmp, path)
    except BaseException as err:
        named = _discard(tmp, f, path, err)
        if named is err:
            raise
        raise named from err
    fsync_dir(path.parent)


def write_with(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """For writers that need a path of their own (matplotlib's ``savefig``, Lightning's ``save_checkpoint``):
    ``write(tmp)`` fills a temporary sibling of ``path``, which then replaces ``path`` as in :func:`atomic_write`."""
    path = Path(path)
    tmp, f = _open_temp(path, "wb", None, None)
    f.close()
    try:
        write(tmp)
        _finish(tmp, open(tmp, "rb+"), path)
        os.replace(tmp, path)
    except BaseException as err:
        named = _discard(tmp, None, path, err)
        if named is err:
            raise
        raise named from err
    fsync_dir(path.parent)
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`); returns the path."""
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`); returns the path."""
    with atomic_write(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return Path(path)


def write_many(files: Mapping[str | os.PathLike, bytes | str]) -> list[Path]:
    """Write several files that belong together (an export's weights and config) all or nothing.

    Every file is staged completely (written, fsynced) before the first rename, so a full disk or any other
    write error leaves all previous files untouched. Only a failing rename between two of them could mix old
    and new, and a rename within one folder needs no new space.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for target, data in files.items():
            path = Path(target)
            tmp, f = _open_temp(path, "wb" if isinstance(data, bytes) else "w", "utf-8", "")
            staged.append((tmp, path))
            try:
                f.write(data)
                _finish(tmp, f, path)
            except BaseException as err:
                named = _discard(tmp, f, path, err)
                if named is err:
                    raise
                raise named from err
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for folder in {path.parent for _, path in staged}:
        fsync_dir(folder)
    return [path for _, path in staged]


def fsync_replace(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Flush a finished ``src`` to disk and rename it over ``dst`` (same file system), then flush the folder entry.

    For writers that build a file (or a tar) themselves under a temporary name and move it into place at the end.
    """
    with open(src, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)
    return Path(dst)


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """``value`` as indented JSON with a final newline, written atomically."""
    return write_text(path, json.dumps(value, indent=2) + "\n")
