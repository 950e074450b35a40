"""Evaluation inputs (spec §10): which audio files a run covers, and each reference as every system sees it.

Data is a folder (searched recursively for ``taae.audio.AUDIO_SUFFIXES``) or a manifest: .txt with one path per
line, .tsv/.csv with a path column, .jsonl with a path key. Each reference is loaded and preprocessed exactly as
the codec preprocesses its input (mono, resampled to the model rate, loudness-normalised to -20 LUFS, spec §8); that
preprocessed signal is both what every system codes and what its output is scored against.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from taae.audio import AUDIO_SUFFIXES, TARGET_LUFS

MANIFEST_PATH_KEYS = ("path", "audio_filepath", "audio", "file", "filename")


def _manifest_paths(manifest: Path) -> list[Path]:
    text = manifest.read_text(encoding="utf-8").splitlines()
    lines = [ln for ln in text if ln.strip() and not ln.lstrip().startswith("#")]
    raw: list[str] = []
    if manifest.suffix in (".jsonl", ".json"):
        for i, ln in enumerate(lines):
            row = json.loads(ln)
            key = next((k for k in MANIFEST_PATH_KEYS if k in row), None)
            if key is None:
                raise ValueError(f"{manifest}:{i + 1}: no path key, expected one of {MANIFEST_PATH_KEYS}")
            raw.append(str(row[key]))
    elif manifest.suffix in (".tsv", ".csv") and lines:
        delimiter = "\t" if manifest.suffix == ".tsv" else ","
        rows = list(csv.reader(lines, delimiter=delimiter))
        header = [h.strip().lower() for h in rows[0]]
        key = next((k for k in MANIFEST_PATH_KEYS if k in header), None)
        col, body = (header.index(key), rows[1:]) if key else (0, rows)
        raw = [r[col] for r in body if r]
    else:
        raw = [ln.strip() for ln in lines]
    # Relative paths are relative to the manifest, so a data set folder can move as a whole.
    return [p if p.is_absolute() else manifest.parent / p for p in map(Path, raw)]


def list_audio_files(data: str | Path, max_files: int | None = None) -> list[Path]:
    """Audio files of a folder (recursive, sorted) or a manifest, at most ``max_files``."""
    data = Path(data)
    if data.is_dir():
        files = sorted(p for p in data.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    elif data.is_file():
        files = _manifest_paths(data)
    else:
        raise FileNotFoundError(f"data not found: {data}")
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
    from taae.audio import load_audio, preprocess

    wav, sr = load_audio(path)
    ref = codec.preprocess(wav, sr) if codec is not None else preprocess(wav, sr, sample_rate, TARGET_LUFS)
    if not torch.isfinite(ref).all():
        raise ValueError(f"{path}: non-finite samples after preprocessing")
    return ref.detach().float().cpu().reshape(1, -1)
