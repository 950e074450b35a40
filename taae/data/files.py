"""Audio files a data set may use: finding them in a folder or manifest, and checking each once at setup.

A file that fails the check (unreadable, truncated, empty, not audio) is skipped with its reason listed, so one bad
file costs one warning, not a crashed run hours later. :mod:`taae.data.dataset` crops the files that pass.
"""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
import torch

from taae.io.audio import AUDIO_SUFFIXES, AudioError, check_complete

PROBE_FRAMES = 1024
"""Frames read at the start and the end of each file at setup: catches truncated data without a full decode."""


MAX_LISTED_SKIPS = 50


@dataclass(frozen=True)
class AudioFile:
    """An audio file that passed the setup check (or a Shar recording, with its bytes)."""

    path: str
    frames: int
    sample_rate: int
    channels: int
    data: bytes | None = field(default=None, repr=False, compare=False)
    """The encoded file held in memory (a Shar recording); None reads ``path`` from disk."""


MANIFEST_PATH_KEYS = ("path", "audio_filepath", "audio", "file", "filename")
"""Column (``.tsv``/``.csv``) or key (``.jsonl``) names that hold a manifest's audio paths, first match wins
(``audio_filepath`` is NeMo's manifest key)."""


def find_audio_files(source: str | Path) -> list[Path]:
    """List the audio files named by a folder (searched recursively), a manifest or a single audio file.

    Manifests: ``.tsv``/``.csv`` with a header naming a path column and ``.jsonl``/``.json`` (one object per line)
    with a path key, both from :data:`MANIFEST_PATH_KEYS`; anything else one path per line. Blank lines and ``#``
    comments are ignored; relative paths are resolved against the manifest's folder. Training, ``taae prepare`` and
    evaluation all list their inputs here.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"no such folder or manifest: {source}")
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if source.suffix.lower() in AUDIO_SUFFIXES:
        return [source]
    lines = [ln for ln in source.read_text(encoding="utf-8").splitlines() if ln.strip()
             and not ln.lstrip().startswith("#")]
    suffix = source.suffix.lower()
    if suffix in (".tsv", ".csv") and lines:
        rows = list(csv.reader(lines, delimiter="\t" if suffix == ".tsv" else ","))
        header = [h.strip().lower() for h in rows[0]]
        key = next((k for k in MANIFEST_PATH_KEYS if k in header), None)
        if key is None:
            raise ValueError(f"manifest {source} has no path column: its header is {rows[0]}, expected one of "
                             f"{list(MANIFEST_PATH_KEYS)}")
        entries = [row[header.index(key)] for row in rows[1:] if row]
    elif suffix in (".jsonl", ".json"):
        entries = []
        for n, line in enumerate(lines, 1):
            record = json.loads(line)
            key = next((k for k in MANIFEST_PATH_KEYS if k in record), None)
            if key is None:
                raise ValueError(f"manifest {source} entry {n} has no path key (one of {list(MANIFEST_PATH_KEYS)}): "
                                 f"{line[:200]}")
            entries.append(str(record[key]))
    else:
        entries = lines
    return [p if p.is_absolute() else source.parent / p for p in map(Path, (e.strip() for e in entries))]


def check_file(path: Path) -> AudioFile:
    """Header plus a short read at both ends; raises :class:`AudioError` naming the file and the problem."""
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    try:
        info = sf.info(str(path))
        if info.frames <= 0:
            raise AudioError(f"{path}: empty (0 frames)")
        check_complete(path, info)  # libsndfile opens a truncated WAV as a shorter valid one
        with sf.SoundFile(str(path)) as f:
            for start in (0, max(0, info.frames - PROBE_FRAMES)):
                f.seek(start)
                block = f.read(PROBE_FRAMES, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    raise AudioError(f"{path}: no data at frame {start} of {info.frames} (truncated?)")
                if not torch.isfinite(torch.from_numpy(block)).all():
                    raise AudioError(f"{path}: NaN or inf samples")
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        if isinstance(e, AudioError):
            raise
        raise AudioError(f"{path}: unreadable ({e})") from e
    return AudioFile(str(path), int(info.frames), int(info.samplerate), int(info.channels))


def scan(source: str | Path, key: str) -> tuple[list[AudioFile], list[tuple[str, str]]]:
    """Check every file named by ``source``; returns (usable files, [(path, reason)] skipped) and warns once."""
    files, skipped = [], []
    for path in find_audio_files(source):
        try:
            files.append(check_file(path))
        except AudioError as e:
            skipped.append((str(path), str(e).removeprefix(f"{path}: ")))
    if skipped:
        listed = "\n".join(f"  {p}: {why}" for p, why in skipped[:MAX_LISTED_SKIPS])
        more = len(skipped) - MAX_LISTED_SKIPS
        warnings.warn(
            f"{key}={source}: skipping {len(skipped)} unusable audio file(s):\n{listed}"
            + (f"\n  ... and {more} more (see AudioDataModule.skipped)" if more > 0 else ""),
            stacklevel=2,
        )
    if not files:
        raise ValueError(f"{key}={source}: no usable audio files ({'/'.join(AUDIO_SUFFIXES)}) found")
    return files, skipped
