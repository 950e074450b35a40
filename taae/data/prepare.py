"""A folder or manifest of audio files -> a lhotse Shar set (``taae prepare IN OUT --shard-size N``).

Files are listed as the folder module lists them (:func:`taae.data.dataset.find_audio_files`: sorted, recursive)
and checked as it checks them (:func:`~taae.data.dataset.check_file`); shard n holds files n·N … (n+1)·N − 1 of
that list minus the unusable ones, which are reported and skipped. The kept files therefore sit in the same
order as the folder module's, which is what makes the two modules' batches comparable.

Each shard is written by one worker into a temp folder inside OUT, then moved into place: the recording tar
first, the cuts manifest last. A shard whose cuts manifest exists is complete and is never rewritten. A re-run is
exact or refuses: it reads every complete shard, stops with one line if one holds a cut that is not among the
input's files, writes the planned shards a killed run left out, and adds every other readable input file that no
shard holds (files added to the input, another ``--shard-size``) as new shards numbered after the last one.
"Skipped" always means unreadable (checked in this run), never "not looked at". Only this module's own temp
folders (``.tmp-NNNNNN-PID`` holding shard files) are removed; other ``.tmp-*`` entries are left alone. OUT
otherwise holds nothing but the shards, because lhotse's ``CutSet.from_shar(in_dir=OUT)`` reads every file of the
folder as a field.

Cut ids are the files' paths relative to the input folder (or to the manifest's common folder), without suffix.
Audio is stored as FLAC by default: lossless for 8/16/24-bit PCM sources.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from taae.data.files import check_file, find_audio_files
from taae.io.atomic import check_not_input, fsync_replace
from taae.io.audio import AUDIO_SUFFIXES, AudioError

AUDIO_FORMATS = ("flac", "wav")
TEMP_PREFIX = ".tmp-"
_OWN_TEMP = re.compile(r"\.tmp-\d{6}-\d+")
_SHARD_NAME = re.compile(r"(?:cuts|recording)\.(\d{6})\.(?:jsonl\.gz|tar)")
_TEMP_CONTENTS = {"cuts.jsonl.gz", "recording.tar"}


@dataclass
class PrepareReport:
    """What :func:`prepare` did: shard counts, cuts and hours in OUT, and every file left out with the reason."""

    out: str
    shards: int = 0
    written: int = 0
    already_complete: int = 0
    added: int = 0
    """New shards for input files that no existing shard holds (a re-run over a grown input, another shard size)."""
    cuts: int = 0
    seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        added = f", {self.added} added for files no shard held" if self.added else ""
        return (f"{self.out}: {self.shards} shards ({self.written} written, {self.already_complete} already "
                f"complete{added}), {self.cuts} cuts, {self.seconds / 3600:.3f} h; {len(self.skipped)} files skipped")


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
        ValueError: a bad argument, no audio in ``source``, or an existing shard in ``out`` that holds a cut that is
            not among the input's files (another input: use a new ``out``).
    """
    if not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"--shard-size must be a positive integer, got {shard_size!r}")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs must be a positive integer, got {jobs!r}")
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"--format must be one of {list(AUDIO_FORMATS)}, got {audio_format!r}")
    source, out = Path(source), Path(out)
    check_not_input(out, [source], "OUT")
    files = find_audio_files(source)
    if not files:
        raise ValueError(f"{source}: no audio files ({'/'.join(AUDIO_SUFFIXES)})")
    ids = cut_ids(files, source)
    plan = [list(zip(files[i:i + shard_size], ids[i:i + shard_size])) for i in range(0, len(files), shard_size)]
    out.mkdir(parents=True, exist_ok=True)
    _remove_own_temp_folders(out)

    report = PrepareReport(str(out), shards=len(plan))
    existing = _complete_shards(out)
    known = set(ids)
    for number, present in sorted(existing.items()):
        strangers = sorted(set(present) - known)
        if strangers:
            raise ValueError(f"{shard_names(out, number)[0]} holds cut {strangers[0]!r}, which is not among the "
                             f"files of {source}: OUT was prepared from another input; use a new OUT")
    # The planned layout stands when every complete shard holds only its planned files (a killed run's re-run).
    aligned = all(n < len(plan) and set(present) <= {cid for _, cid in plan[n]} for n, present in existing.items())
    pending, covered = [], set()
    for number, present in sorted(existing.items()):
        report.already_complete += 1
        report.cuts += len(present)
        report.seconds += sum(present.values())
        covered |= set(present)
    if aligned:
        for number, members in enumerate(plan):
            if number not in existing:
                pending.append((number, members, str(out), audio_format))
                covered |= {cid for _, cid in members}
    left = [(path, cid) for path, cid in zip(files, ids) if cid not in covered]
    if left:  # files no shard holds: skipped if unreadable now, else added as new shards after the last one
        readable = []
        for path, cid in left:
            try:
                check_file(path)
                readable.append((path, cid))
            except AudioError as err:
                report.skipped.append((str(path), str(err).removeprefix(f"{path}: ")))
        first = max([_last_shard_number(out), len(plan) - 1 if aligned else -1]) + 1
        added = [readable[i:i + shard_size] for i in range(0, len(readable), shard_size)]
        pending += [(first + i, members, str(out), audio_format) for i, members in enumerate(added)]
        report.added = len(added)
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
    report.shards = len(_complete_shards(out))
    report.skipped.sort()
    return report


def _remove_own_temp_folders(out: Path) -> None:
    """Remove a killed run's temp folders: only ``.tmp-NNNNNN-PID`` folders holding nothing but shard files."""
    for entry in out.glob(f"{TEMP_PREFIX}*"):
        if _OWN_TEMP.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink() \
                and {p.name for p in entry.iterdir()} <= _TEMP_CONTENTS:
            shutil.rmtree(entry, ignore_errors=True)


def _last_shard_number(out: Path) -> int:
    """The highest shard number of any shard file in ``out`` (complete or not); -1 if none."""
    numbers = [int(m.group(1)) for p in out.iterdir() if (m := _SHARD_NAME.fullmatch(p.name))]
    return max(numbers, default=-1)


def _complete_shards(out: Path) -> dict[int, dict[str, float]]:
    """{shard number: {cut id: duration}} of every complete shard (cuts manifest and recording tar) in ``out``."""
    shards = {}
    for cuts_path in sorted(out.glob("cuts.*.jsonl.gz")):
        match = _SHARD_NAME.fullmatch(cuts_path.name)
        if not match or not shard_names(out, int(match.group(1)))[1].exists():
            continue
        present = {}
        try:
            with gzip.open(cuts_path, "rt", encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        cut = json.loads(line)
                        present[str(cut["id"])] = float(cut["duration"])
        except (OSError, EOFError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{cuts_path} is not a readable cuts manifest ({err}); remove it or use a new OUT") \
                from err
        shards[int(match.group(1))] = present
    return shards


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
