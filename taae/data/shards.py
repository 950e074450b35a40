"""lhotse Shar shards: listing them, reading a range of cuts across shards, and the shuffle buffer.

The stream these make is what :class:`taae.data.shar.SharStream` splits among ranks and loader workers (see that
module for who reads what and how a run resumes).
"""

from __future__ import annotations

import random
import tarfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from taae.data.files import AudioFile

SHARD_ERRORS = (tarfile.TarError, OSError, EOFError, RuntimeError, ValueError, AssertionError)
"""What reading a damaged shard raises in lhotse (a truncated tar, a bad manifest line; mismatched ids assert)."""


@dataclass(frozen=True)
class Shard:
    """One shard: its cuts manifest, its recording tar, how many cuts it holds, and its first cut's set index."""

    cuts: str
    recording: str
    num_cuts: int
    offset: int


def shard_fields(source: str | Mapping[str, Sequence[str]], key: str) -> dict[str, list[str]]:
    """``{"cuts": [...], "recording": [...]}`` of a local Shar directory or of an explicit field mapping.

    A mapping names every shard (local paths, ``pipe:`` commands or URLs, as lhotse reads them); a directory is
    listed: ``cuts.*.jsonl.gz`` and ``recording.*.tar``, paired by shard number.
    """
    if isinstance(source, Mapping):
        fields = {name: [str(p) for p in paths] for name, paths in source.items()}
        missing = [name for name in ("cuts", "recording") if name not in fields]
        if missing:
            raise ValueError(f"{key}: Shar fields need 'cuts' and 'recording' lists, missing {missing}")
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"{key}: no such Shar directory: {source}")
        fields = {"cuts": sorted(str(p) for p in folder.glob("cuts.*.jsonl*")),
                  "recording": sorted(str(p) for p in folder.glob("recording.*.tar"))}
        if not fields["cuts"]:
            raise ValueError(f"{key}={source}: no Shar shards (cuts.NNNNNN.jsonl.gz) in this directory")
    if len(fields["cuts"]) != len(fields["recording"]):
        raise ValueError(f"{key}: {len(fields['cuts'])} cuts manifests but {len(fields['recording'])} recording "
                         "tars; every shard needs both")
    for cuts, recording in zip(fields["cuts"], fields["recording"]):
        if _shard_number(cuts) != _shard_number(recording):
            raise ValueError(f"{key}: shards do not pair up: {cuts} beside {recording}")
    return fields


def _shard_number(path: str) -> str:
    parts = Path(path.split()[-1] if path.startswith("pipe:") else path).name.split(".")
    return parts[1] if len(parts) > 2 else ""


def list_shards(source: str | Mapping[str, Sequence[str]], key: str) -> list[Shard]:
    """The shards of ``source`` with their cut counts (one pass over each small cuts manifest)."""
    from lhotse.lazy import count_newlines_fast

    fields = shard_fields(source, key)
    shards, offset = [], 0
    for cuts, recording in zip(fields["cuts"], fields["recording"]):
        try:
            count = count_newlines_fast(cuts)
        except (OSError, EOFError, ValueError) as err:
            raise ValueError(f"{key}: cannot read the cuts manifest {cuts}: {err}") from err
        shards.append(Shard(cuts, recording, count, offset))
        offset += count
    if offset == 0:
        raise ValueError(f"{key}={source}: the Shar set holds no cuts")
    return shards


def shard_cuts(shard: Shard) -> Iterator:
    """The shard's cuts in stored order, each with its recording's bytes in memory (lhotse's reader)."""
    from lhotse.shar import LazySharIterator

    return iter(LazySharIterator(fields={"cuts": [shard.cuts], "recording": [shard.recording]}))


def cut_file(cut, shard: Shard) -> AudioFile:
    """A Shar cut as an :class:`AudioFile` whose bytes are held in memory."""
    recording = cut.recording
    if recording is None or recording.sources[0].type != "memory":
        raise OSError(f"cut {cut.id} in {shard.recording} has no recording data")
    return AudioFile(f"{shard.recording}:{cut.id}", int(recording.num_samples), int(recording.sampling_rate),
                     len(recording.channel_ids), data=recording.sources[0].source)


def read_range(shards: Sequence[Shard], start: int, stop: int) -> Iterator[tuple[int, AudioFile | None, str]]:
    """``(set index, file or None, name)`` for stream positions [start, stop) of ``shards`` concatenated.

    A shard that breaks off (a truncated tar, a manifest shorter than counted) is warned about and its remaining
    positions come as ``None``, so that positions keep their meaning.
    """
    position = 0
    for shard in shards:
        lo, hi = max(start - position, 0), min(stop - position, shard.num_cuts)
        position += shard.num_cuts
        if lo >= hi:
            if position >= stop:
                break
            continue
        done = 0
        try:
            for i, cut in enumerate(shard_cuts(shard)):
                if i >= hi:
                    break
                if i >= lo:
                    try:
                        file = cut_file(cut, shard)
                    except OSError as err:
                        warnings.warn(str(err), stacklevel=2)
                        file = None
                    yield shard.offset + i, file, f"{shard.recording}:{cut.id}"
                done = i + 1
        except SHARD_ERRORS as err:
            warnings.warn(f"{shard.recording}: unreadable after {done} of {shard.num_cuts} cuts ({err}); its "
                          "remaining cuts are replaced", stacklevel=2)
        for i in range(max(done, lo), hi):
            yield shard.offset + i, None, f"{shard.cuts} cut #{i}"


def buffer_shuffle(items: Iterator, size: int, rng: random.Random) -> Iterator:
    """A seeded shuffle buffer: each incoming item displaces a random one of ``size`` held; the rest come last."""
    held = []
    for item in items:
        if len(held) < size:
            held.append(item)
            continue
        j = rng.randrange(size)
        yield held[j]
        held[j] = item
    rng.shuffle(held)
    yield from held
