"""Evaluation inputs (§8): which audio files a run covers, and each reference as every system sees it.

Data is a folder (searched recursively for ``taae.io.audio.AUDIO_SUFFIXES``) or a manifest: .txt with one path per
line, .tsv/.csv with a path column, .jsonl with a path key. Each reference is loaded and preprocessed exactly as
the codec preprocesses its input (mono, resampled to the model rate, loudness-normalised to -20 LUFS, §1); that
preprocessed signal is both what every system codes and what its output is scored against.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

from pathlib import Path

import torch

from taae.data.files import find_audio_files
from taae.io.atomic import same_file
from taae.io.audio import AUDIO_SUFFIXES, TARGET_LUFS


def list_audio_files(data: str | Path, max_files: int | None = None, exclude: str | Path | None = None) -> list[Path]:
    """Audio files of a folder (recursive, sorted) or a manifest, at most ``max_files``; none inside ``exclude``
    (the evaluation's own output folder, whose decoded examples must not be scored as test files next time)."""
    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"data not found: {data}")
    if exclude is not None and same_file(exclude, data):
        raise ValueError(f"--out {exclude} is the --data folder; the report and decoded examples would land among "
                         "the test files: choose another --out")
    files = find_audio_files(data)
    if exclude is not None:
        skip = Path(exclude).resolve()
        files = [f for f in files if not f.resolve().is_relative_to(skip)]
    if not files:
        raise ValueError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {data}")
    return files[:max_files] if max_files else files


def file_ids(files: list[Path], data: str | Path) -> list[str]:
    """Report names of ``files``: relative to ``data`` when it is a folder, else the paths as given."""
    root = Path(data) if Path(data).is_dir() else None
    ids = []
    for p in files:
        try:
            ids.append(str(p.relative_to(root)) if root else str(p))
        except ValueError:
            ids.append(str(p))
    return ids


def load_reference(path: Path, codec, sample_rate: int) -> torch.Tensor:
    """(1, T) float32 CPU reference: ``codec.preprocess``, or the same steps at ``sample_rate`` without a codec.

    Raises:
        ValueError: for non-finite samples after preprocessing. Loading errors propagate.
    """
    from taae.io.audio import load_audio, preprocess

    wav, sr = load_audio(path)
    ref = codec.preprocess(wav, sr) if codec is not None else preprocess(wav, sr, sample_rate, TARGET_LUFS)
    if not torch.isfinite(ref).all():
        raise ValueError(f"{path}: non-finite samples after preprocessing")
    return ref.detach().float().cpu().reshape(1, -1)


TRANSCRIPT_GLOB = "*.trans.txt"
"""LibriSpeech's transcripts: one file per chapter folder, lines ``<utterance id> <TEXT>``."""


def read_transcripts(files: list[Path]) -> dict[Path, str]:
    """Transcripts of ``files`` from the ``*.trans.txt`` files in their folders (LibriSpeech layout), by path.

    Raises:
        ValueError: for a transcript line without text, naming its file and line.
    """
    by_folder: dict[Path, dict[str, str]] = {}
    out = {}
    for f in files:
        folder = f.parent
        if folder not in by_folder:
            table: dict[str, str] = {}
            for trans in sorted(folder.glob(TRANSCRIPT_GLOB)):
                for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
                    if not line.strip():
                        continue
                    utt, _, text = line.strip().partition(" ")
                    if not text.strip():
                        raise ValueError(f"{trans}:{n}: utterance {utt!r} has no text")
                    table[utt] = text.strip()
            by_folder[folder] = table
        if f.stem in by_folder[folder]:
            out[f] = by_folder[folder][f.stem]
    return out


def select_subset(files: list[Path], list_file: str | Path, data: str | Path) -> list[Path]:
    """The files named in ``list_file`` (one utterance id, e.g. ``1089-134686-0000``, or path relative to ``data``
    per line; ``#`` starts a comment), in the list's order.

    Raises:
        ValueError: naming the first entry that matches no file of ``data``.
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"--subset {list_file}: not found")
    ids = dict(zip(file_ids(files, data), files))
    stems = {f.stem: f for f in files}
    chosen = []
    for n, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        match = ids.get(entry) or stems.get(entry) or stems.get(Path(entry).stem if "/" in entry else "")
        if match is None:
            raise ValueError(f"--subset {list_file}:{n}: {entry!r} matches no audio file under {data}")
        chosen.append(match)
    if not chosen:
        raise ValueError(f"--subset {list_file}: lists no file")
    return list(dict.fromkeys(chosen))


HASH_CHARS = 16


def content_hash(path: str | Path) -> str:
    """sha256 over the relative names and bytes of every file under ``path`` (or of the file), first 16 hex."""
    import hashlib

    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:HASH_CHARS]
