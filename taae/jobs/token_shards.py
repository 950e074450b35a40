"""Token shards on disk: one per input Shar shard, its summary, the job manifest, and the flat export for LMs.

Shape legend: K tokens per frame, S latent frames of one cut, F frames of many cuts concatenated.

A tokenization output folder holds, for every input shard NNNNNN:

==========================  ==============================================================================
``codes.NNNNNN.tar``        ``token_format="tar"``: a lhotse Shar field (NeMo's layout): per cut ``ID.npy``
                            (S, K) in the smallest unsigned type + ``ID.json`` (a lhotse ``TemporalArray``
                            with ``frame_shift`` = 1 / frame rate); a skipped cut gets lhotse's placeholder,
                            so the tar stays aligned with the input's ``cuts.NNNNNN.jsonl.gz``
``tokens.NNNNNN.npz``       ``token_format="npz"``: ``tokens`` (F, K), ``offsets`` (cuts + 1,) frame offsets,
                            ``cut_ids``, ``num_samples`` (cuts,): ``numpy.load(allow_pickle=False)`` reads it
``summary.NNNNNN.json``     written last: the shard's counts and skipped cuts; its presence marks the shard
                            complete
``manifest.json``           the job (model hash, preset, vocabularies, frame and sample rate, format) and the
                            counts of every shard, rebuilt from the summaries at the end of every run
==========================  ==============================================================================

Every file is written atomically (temp file beside it, fsync, rename).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taae.io.atomic import atomic_write, fsync_replace, write_json
from taae.io.tokens import storage_dtype

FORMAT = "taae-token-shards"
FORMAT_VERSION = 1
TOKEN_FORMATS = ("npz", "tar")
MANIFEST = "manifest.json"
FIELD = "codes"
"""The lhotse field name of token tars (NeMo's): ``CutSet.from_shar(fields={..., "codes": [...]})``."""


@dataclass(frozen=True)
class TokenJob:
    """What every token shard of a folder shares; a re-run into the same folder must match it."""

    model_hash: str
    preset: str
    vocab_sizes: tuple[int, ...]
    frame_rate: float
    sample_rate: int
    token_format: str
    normalize: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"vocab_sizes": list(self.vocab_sizes), "dtype": self.dtype.name}

    @property
    def dtype(self) -> np.dtype:
        return storage_dtype(self.vocab_sizes)

    def check(self, recorded: dict[str, Any], where: Path) -> None:
        """Raise ``ValueError`` naming every field where ``recorded`` (a manifest or summary) differs."""
        mine = self.to_dict()
        diff = [f"{key} {recorded.get(key)!r} (this run: {mine[key]!r})" for key in mine
                if key != "dtype" and recorded.get(key) != mine[key]]
        if diff:
            raise ValueError(f"{where} was written by another job: {'; '.join(diff)}. Tokenize into another folder "
                             "(nothing was changed)")


def data_path(out: Path, number: int, token_format: str) -> Path:
    return out / (f"{FIELD}.{number:06d}.tar" if token_format == "tar" else f"tokens.{number:06d}.npz")


def summary_path(out: Path, number: int) -> Path:
    return out / f"summary.{number:06d}.json"


def write_token_shard(out: Path, number: int, job: TokenJob, source: str, cuts: list[dict[str, Any]]) -> dict:
    """Write shard ``number`` from its cuts in stored order; returns its summary.

    Each cut is ``{"cut_id", "tokens": (K, S) int64 tensor or None, "num_samples", "error"}``.
    """
    kept = [c for c in cuts if c["tokens"] is not None]
    arrays = {c["cut_id"]: c["tokens"].cpu().numpy().T.astype(job.dtype) for c in kept}  # (S, K)
    target = data_path(out, number, job.token_format)
    if job.token_format == "tar":
        _write_tar(target, job, cuts, arrays)
    else:
        lengths = [arrays[c["cut_id"]].shape[0] for c in kept]
        payload = {
            "tokens": np.concatenate(list(arrays.values())) if kept else np.zeros((0, len(job.vocab_sizes)),
                                                                                   job.dtype),
            "offsets": np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64),
            "cut_ids": np.array([c["cut_id"] for c in kept], dtype=np.str_),
            "num_samples": np.array([c["num_samples"] for c in kept], dtype=np.int64),
        }
        with atomic_write(target) as f:
            np.savez(f, **payload)
    summary = {
        "format": FORMAT, "version": FORMAT_VERSION, **job.to_dict(), "shard": number, "source": source,
        "data": target.name, "data_bytes": target.stat().st_size, "cuts": len(kept),
        "frames": int(sum(a.shape[0] for a in arrays.values())),
        "seconds": float(sum(c["num_samples"] for c in kept)) / job.sample_rate,
        "skipped": [{"cut_id": c["cut_id"], "reason": c["error"]} for c in cuts if c["tokens"] is None],
    }
    write_json(summary_path(out, number), summary)  # last: marks the shard complete
    return summary


def _write_tar(target: Path, job: TokenJob, cuts: list[dict], arrays: dict[str, np.ndarray]) -> None:
    from lhotse.array import Array, TemporalArray
    from lhotse.shar.writers import ArrayTarWriter

    tmp = target.with_name(f".{target.name}.tmp")
    with ArrayTarWriter(str(tmp), shard_size=None, compression="numpy") as writer:
        for cut in cuts:
            if cut["tokens"] is None:
                writer.write_placeholder(cut["cut_id"])
                continue
            value = arrays[cut["cut_id"]]
            manifest = TemporalArray(array=Array(storage_type="shar", storage_path="", storage_key="",
                                                 shape=list(value.shape)),
                                     temporal_dim=0, frame_shift=1.0 / job.frame_rate, start=0)
            writer.write(cut["cut_id"], value, manifest)
    fsync_replace(tmp, target)


def complete_summaries(out: Path, job: TokenJob) -> dict[int, dict]:
    """Summaries of the complete shards in ``out`` (checked against ``job``), by shard number.

    A summary whose data file is missing or has another size (a torn copy) does not count: that shard is redone.
    """
    if (out / MANIFEST).is_file():
        job.check(_read_json(out / MANIFEST), out / MANIFEST)
    done = {}
    for path in sorted(out.glob("summary.*.json")):
        summary = _read_json(path)
        job.check(summary, path)
        data = out / summary["data"]
        if data.is_file() and data.stat().st_size == summary["data_bytes"]:
            done[int(summary["shard"])] = summary
    return done


def write_manifest(out: Path, job: TokenJob, source: str, num_shards: int) -> dict:
    """Rebuild ``manifest.json`` from every complete shard's summary; returns it."""
    summaries = complete_summaries(out, job)
    shards = [{key: s[key] for key in ("shard", "source", "data", "cuts", "frames", "seconds", "skipped")}
              for _, s in sorted(summaries.items())]
    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION, **job.to_dict(), "source": source,
        "layout": "per cut (frames, tokens per frame), frames at frame_rate",
        "shards_total": num_shards, "shards_complete": len(shards),
        "cuts": sum(s["cuts"] for s in shards), "skipped": sum(len(s["skipped"]) for s in shards),
        "frames": sum(s["frames"] for s in shards), "hours": sum(s["seconds"] for s in shards) / 3600,
        "shards": shards,
    }
    write_json(out / MANIFEST, manifest)
    return manifest


def read_token_shard(out: Path, summary: dict) -> list[tuple[str, np.ndarray, int | None]]:
    """``(cut_id, tokens (S, K), num_samples or None)`` of every tokenized cut of a shard, in stored order."""
    path = out / summary["data"]
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            tokens, offsets = data["tokens"], data["offsets"]
            return [(str(cid), tokens[offsets[i]:offsets[i + 1]], int(n))
                    for i, (cid, n) in enumerate(zip(data["cut_ids"], data["num_samples"]))]
    from lhotse.shar.readers.tar import TarIterator

    cuts = []
    for manifest, name in TarIterator(str(path)):
        if manifest is not None:
            cuts.append((str(name.with_suffix("")), manifest.load(), None))
    return cuts


def load_manifest(folder: Path) -> dict:
    """The manifest of a tokenization output folder; ``FileNotFoundError``/``ValueError`` name the problem."""
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: no {MANIFEST} (not a `taae tokenize` output, or the run never ended)")
    manifest = _read_json(path)
    if manifest.get("format") != FORMAT or not 1 <= int(manifest.get("version", 0)) <= FORMAT_VERSION:
        raise ValueError(f"{path}: not a {FORMAT} manifest of version 1 … {FORMAT_VERSION}")
    return manifest


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable JSON ({err})") from err


def frames_for(num_samples: int, sample_rate: int, frame_rate: float) -> int:
    """Latent frames of ``num_samples`` (the encoder pads to whole frames)."""
    return math.ceil(num_samples * frame_rate / sample_rate)
