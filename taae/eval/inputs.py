"""Evaluation inputs (§8): which audio files a run covers, and each reference as every system sees it.

Data is a folder (searched recursively for ``taae.audio.AUDIO_SUFFIXES``) or a manifest: .txt with one path per
line, .tsv/.csv with a path column, .jsonl with a path key. Each reference is loaded and preprocessed exactly as
the codec preprocesses its input (mono, resampled to the model rate, loudness-normalised to -20 LUFS, §1); that
preprocessed signal is both what every system codes and what its output is scored against.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

from pathlib import Path

import torch

from taae.atomic import same_file
from taae.audio import AUDIO_SUFFIXES, TARGET_LUFS
from taae.data.dataset import find_audio_files


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
    from taae.audio import load_audio, preprocess

    wav, sr = load_audio(path)
    ref = codec.preprocess(wav, sr) if codec is not None else preprocess(wav, sr, sample_rate, TARGET_LUFS)
    if not torch.isfinite(ref).all():
        raise ValueError(f"{path}: non-finite samples after preprocessing")
    return ref.detach().float().cpu().reshape(1, -1)
