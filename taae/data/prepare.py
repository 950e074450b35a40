"""A folder or manifest of audio files -> a lhotse Shar set (``taae prepare IN OUT --shard-size N``).

Files are listed as the folder module lists them (:func:`taae.data.dataset.find_audio_files`: sorted, recursive)
and checked as it checks them (:func:`~taae.data.dataset.check_file`); shard n holds files n·N … (n+1)·N − 1 of
that list minus the unusable ones, which are reported and skipped. The kept files therefore sit in the same
order as the folder module's, which is what makes the two modules' batches comparable.

Each shard is written by one worker into a temp folder inside OUT, then moved into place: the recording tar
first, the cuts manifest last. A shard whose cuts manifest exists is complete and is never rewritten; a re-run
after a kill writes only the missing shards (and removes the dead run's temp folders). OUT holds nothing but
the shards, because lhotse's ``CutSet.from_shar(in_dir=OUT)`` reads every file of the folder as a field.

Cut ids are the files' paths relative to the input folder (or to the manifest's common folder), without suffix.
Audio is stored as FLAC by default: lossless for 8/16/24-bit PCM sources.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from taae.audio import AUDIO_SUFFIXES, AudioError
from taae.data.dataset import check_file, find_audio_files
from taae.jobs.files import fsync_replace

AUDIO_FORMATS = ("flac", "wav")
TEMP_PREFIX = ".tmp-"


@dataclass
class PrepareReport:
    """What :func:`prepare` did: shard counts, cuts and hours in OUT, and every file left out with the reason."""

    out: str
    shards: int = 0
    written: int = 0
    already_complete: int = 0
    cuts: int = 0
    seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.out}: {self.shards} shards ({self.written} written, {self.already_complete} already "
                f"complete), {self.cuts} cuts, {self.seconds / 3600:.3f} h; {len(self.skipped)} files skipped")


def cut_ids(files: list[Path], source: Path) -> list[str]:
    """Relative paths without suffix; raises ``ValueError`` when two files would share an id."""
    root = source if source.is_dir() else Path(os.path.commonpath([str(f.parent.resolve()) for f in files]))
    ids = []
    for f in files:
        base = f if source.is_dir() else f.resolve()
        ids.append(base.relative_to(root).with_suffix("").as_posix())
    seen: dict[str, Path] = {}
    for f, cid in zip(files, ids):
        if cid in seen:
            raise ValueError(f"{seen[cid]} and {f} would both become cut {cid!r}; rename one")
        seen[cid] = f
    return ids


def shard_names(out: Path, number: int) -> tuple[Path, Path]:
    return out / f"cuts.{number:06d}.jsonl.gz", out / f"recording.{number:06d}.tar"


def prepare(source: str | os.PathLike, out: str | os.PathLike, shard_size: int = 1000, jobs: int = 1,
            audio_format: str = "flac", progress: bool = True) -> PrepareReport:
    """Write the Shar set; see the module docstring. Returns a :class:`PrepareReport`.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: a bad argument, no audio in ``source``, or an existing shard in ``out`` that holds other files
            than this input assigns to it (another input or another ``shard_size``: use a new ``out``).
    """
    if not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"--shard-size must be a positive integer, got {shard_size!r}")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs must be a positive integer, got {jobs!r}")
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"--format must be one of {list(AUDIO_FORMATS)}, got {audio_format!r}")
    source, out = Path(source), Path(out)
    files = find_audio_files(source)
    if not files:
        raise ValueError(f"{source}: no audio files ({'/'.join(AUDIO_SUFFIXES)})")
    ids = cut_ids(files, source)
    plan = [list(zip(files[i:i + shard_size], ids[i:i + shard_size])) for i in range(0, len(files), shard_size)]
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f"{TEMP_PREFIX}*"):  # a killed run's half-written shards
        shutil.rmtree(stale, ignore_errors=True)

    report = PrepareReport(str(out), shards=len(plan))
    pending = []
    for number, members in enumerate(plan):
        cuts_path, recording_path = shard_names(out, number)
        if cuts_path.exists() and recording_path.exists():
            _account_complete(report, cuts_path, members)
        else:
            pending.append((number, members, str(out), audio_format))
    bar = tqdm(total=len(pending), desc="prepare", unit="shard", disable=not progress or not pending,
               file=sys.stderr)
    if jobs == 1 or len(pending) < 2:
        results = map(_write_shard, pending)
    else:
        pool = multiprocessing.get_context("spawn").Pool(min(jobs, len(pending)))
        results = pool.imap_unordered(_write_shard, pending)
    try:
        for cuts, seconds, skipped in results:
            report.written += 1 if cuts else 0
            report.cuts += cuts
            report.seconds += seconds
            report.skipped += skipped
            bar.update()
    finally:
        bar.close()
        if jobs > 1 and len(pending) >= 2:
            pool.close()
            pool.join()
    report.shards = sum(1 for n in range(len(plan)) if shard_names(out, n)[0].exists())
    report.skipped.sort()
    return report


def _account_complete(report: PrepareReport, cuts_path: Path, members: list[tuple[Path, str]]) -> None:
    """Count a finished shard, after checking that it holds this input's files for its position."""
    expected = {cid: path for path, cid in members}
    present = {}
    with gzip.open(cuts_path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                cut = json.loads(line)
                present[cut["id"]] = float(cut["duration"])
    strangers = sorted(set(present) - set(expected))
    if strangers:
        raise ValueError(f"{cuts_path} holds cuts that are not this input's files for its shard (e.g. "
                         f"{strangers[0]!r}): it was prepared from another input or --shard-size; use a new OUT")
    report.already_complete += 1
    report.cuts += len(present)
    report.seconds += sum(present.values())
    for cid, path in expected.items():
        if cid not in present:
            try:
                check_file(path)
                reason = "skipped by an earlier run"
            except AudioError as err:
                reason = str(err).removeprefix(f"{path}: ")
            report.skipped.append((str(path), reason))


def _write_shard(task) -> tuple[int, float, list[tuple[str, str]]]:
    """Write one shard (in a worker); returns (cuts, seconds, skipped files)."""
    from lhotse import Recording
    from lhotse.shar import SharWriter

    number, members, out, audio_format = task
    out = Path(out)
    tmp = out / f"{TEMP_PREFIX}{number:06d}-{os.getpid()}"
    tmp.mkdir()
    cuts, seconds, skipped = 0, 0.0, []
    try:
        with warnings.catch_warnings(), SharWriter(str(tmp), fields={"recording": audio_format}, shard_size=None,
                                                   warn_unused_fields=False) as writer:
            warnings.simplefilter("ignore")  # lhotse's notes on audio backends; failures are reported below
            for path, cid in members:
                try:
                    check_file(path)
                    cut = Recording.from_file(str(path), recording_id=cid).to_cut()
                    writer.write(cut)
                except (AudioError, OSError, RuntimeError, ValueError) as err:
                    skipped.append((str(path), str(err).removeprefix(f"{path}: ")))
                    continue
                cuts += 1
                seconds += float(cut.duration)
        if cuts:
            cuts_path, recording_path = shard_names(out, number)
            fsync_replace(tmp / "recording.tar", recording_path)
            fsync_replace(tmp / "cuts.jsonl.gz", cuts_path)  # last: its presence marks the shard complete
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cuts, seconds, skipped
