"""Prepare the demo speech set: the Asterisk English voice prompts, decoded to 16 kHz mono wav.

    bash scripts/system_packages.sh           # once: ffmpeg, the prompt package, Codec 2 (apt-get)
    python -m taae.data.demo OUTDIR [--min-seconds 1.0] [--jobs N]

Source: the Debian package ``asterisk-core-sounds-en-g722`` (one female US-English speaker, studio quality,
G.722 wideband at 16 kHz; about 360 prompts of at least 1 s, ~22 minutes). ffmpeg decodes it (sox has no G.722
reader). The Debian packages come from ``scripts/system_packages.sh`` (``make demo-data`` runs it), with ``codec2``
(c2enc/c2dec) so that Codec 2 700C, the classic codec at TAAE's 700 bps, stands beside the model in the quickstart's
evaluation; this module installs nothing and names what is missing.

Layout written under OUTDIR (folders, so a data config can point ``train:`` at ``OUTDIR/train``)::

    OUTDIR/train/*.wav  OUTDIR/val/*.wav  OUTDIR/test/*.wav   16 kHz mono PCM16, named after the prompt path
                                                              with "/" replaced by "__" (digits/1 -> digits__1)
    OUTDIR/manifest.tsv                 split, name, seconds, source (.g722 path)
    OUTDIR/README.txt                   counts and minutes per split, source and license
    OUTDIR/LICENSE-asterisk-core-sounds.txt   the package's copyright file (CC-BY-SA-3.0, Allison Smith / Digium)
    OUTDIR/transcripts/en.txt           prompt texts, when asterisk-core-sounds-en (which has them) is installed

The split is a function of each prompt's name alone (a SHA-1 hash mapped to [0, 1): < 0.05 val, < 0.10 test,
else train), so adding or removing prompts never moves the others. Re-running is cheap: files already decoded
are kept, and wav files in the split folders that are no longer planned (another ``--min-seconds``) are removed.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from taae.io.atomic import write_text

log = logging.getLogger(__name__)

PACKAGE = "asterisk-core-sounds-en-g722"
EVAL_PACKAGES = ("codec2",)
"""Debian packages the quickstart's evaluation uses beside the model (Codec 2's c2enc/c2dec)."""
LICENSE_FILE = Path("/usr/share/doc/asterisk-core-sounds-en-g722/copyright")
TRANSCRIPT_FILE = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
SOUNDS_ROOT = "/usr/share/asterisk/sounds/"
G722_BYTES_PER_SECOND = 8000  # G.722 is 64 kbit/s whatever the content, so the size gives the duration
SPLITS = ("train", "val", "test")
VAL_FRACTION = 0.05
TEST_FRACTION = 0.05
# Tones, beeps, the "monkeys" joke and the silence/ folder are not speech.
NONSPEECH_RE = re.compile(
    r"^(silence/.*|ascending-2tone|descending-2tone|beep|beeperr|confbridge-join|confbridge-leave|tt-monkeys)$"
)


@dataclass(frozen=True)
class Prompt:
    """One voice prompt of the package."""

    source: str
    """Absolute path of the .g722 file."""
    name: str
    """Path below the voice folder without extension, "/" replaced by "__" (``digits__1``)."""
    seconds: float
    """Duration from the file size."""


def prompt_name(source: str) -> str:
    """Path below the voice folder, without extension: ``/usr/.../sounds/en/digits/1.g722`` -> ``digits/1``."""
    rel = source[len(SOUNDS_ROOT) :] if source.startswith(SOUNDS_ROOT) else source.lstrip("/")
    rel = rel.split("/", 1)[1] if "/" in rel else rel  # drop the voice folder ("en", "en_US", ...)
    return rel.rsplit(".", 1)[0]


def select_prompts(entries: Iterable[tuple[str, int]], min_seconds: float = 1.0) -> list[Prompt]:
    """Keep the speech prompts of at least ``min_seconds``.

    Args:
        entries: (absolute .g722 path, size in bytes) pairs.
        min_seconds: shortest prompt kept.

    Returns:
        The kept prompts, sorted by name.
    """
    if min_seconds < 0:
        raise ValueError(f"min_seconds must be >= 0, got {min_seconds}")
    kept = []
    for source, size in entries:
        rel = prompt_name(source)
        seconds = size / G722_BYTES_PER_SECOND
        if NONSPEECH_RE.match(rel) or seconds < min_seconds:
            continue
        kept.append(Prompt(source=source, name=rel.replace("/", "__"), seconds=seconds))
    return sorted(kept, key=lambda p: p.name)


def _unit_hash(name: str) -> float:
    return int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "big") / 2**64


def split_names(names: Sequence[str]) -> dict[str, list[str]]:
    """Assign each name to train / val / test from a stable hash of the name alone (~90/5/5 %).

    With three names or more, val and test are never empty: an empty one takes the train name whose hash is
    closest to its bucket, so the rule stays a deterministic function of the set of names.

    Args:
        names: unique names.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each sorted.
    """
    if len(set(names)) != len(names):
        raise ValueError("split_names needs unique names")
    if len(names) < 3:
        raise ValueError(f"need at least 3 files for a train/val/test split, got {len(names)}")
    u = {n: _unit_hash(n) for n in names}
    split = {
        n: "val" if u[n] < VAL_FRACTION else "test" if u[n] < VAL_FRACTION + TEST_FRACTION else "train" for n in names
    }
    for part in ("val", "test"):
        if not any(s == part for s in split.values()):
            train = sorted((n for n in names if split[n] == "train"), key=lambda n: (u[n], n))
            split[train[0]] = part
    return {part: sorted(n for n in names if split[n] == part) for part in SPLITS}


def _run(cmd: list[str], what: str) -> str:
    try:
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise RuntimeError(f"{what} failed: {cmd[0]!r} not found") from e
    except subprocess.CalledProcessError as e:
        tail = (e.stderr or e.stdout or "").strip()[-2000:]
        raise RuntimeError(f"{what} failed (exit {e.returncode}): {' '.join(cmd)}\n{tail}") from e
    return res.stdout


def _installed(package: str) -> bool:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    except FileNotFoundError:
        return False
    return "install ok installed" in out.stdout


def check_packages() -> None:
    """Refuse in one line, naming them, when ffmpeg or the prompt package is missing (the library installs
    nothing; ``scripts/system_packages.sh`` does)."""
    missing = [p for p in ("ffmpeg", PACKAGE) if not _installed(p)]
    if shutil.which("ffmpeg") is None and "ffmpeg" not in missing:
        missing.insert(0, "ffmpeg")
    if missing:
        raise RuntimeError(f"missing Debian packages {missing}: run `bash scripts/system_packages.sh` (apt-get, "
                           "through sudo when not root) or `make demo-data`")
    absent = [p for p in EVAL_PACKAGES if not _installed(p)]
    if absent:
        log.warning("%s not installed: the quickstart's evaluation will have no Codec 2 row "
                    "(bash scripts/system_packages.sh)", ", ".join(absent))


def list_package_files(package: str = PACKAGE) -> list[tuple[str, int]]:
    """(path, size) of the package's .g722 files, from ``dpkg -L``."""
    out = _run(["dpkg", "-L", package], f"dpkg -L {package}")
    paths = sorted(p for p in out.splitlines() if p.endswith(".g722") and os.path.isfile(p))
    if not paths:
        raise RuntimeError(f"package {package} lists no .g722 files")
    return [(p, os.path.getsize(p)) for p in paths]


def decode(src: str, dst: Path) -> None:
    """Decode one raw G.722 file to 16 kHz mono PCM16 wav, atomically (an interrupted run leaves no partial wav)."""
    tmp = dst.with_suffix(".tmp.wav")
    _run(
        [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "g722",
            "-i",
            src,
            "-ac",
            "1",
            "-ar",
            "16000",
            "-c:a",
            "pcm_s16le",
            "-bitexact",
            str(tmp),
        ],
        f"ffmpeg decode of {src}",
    )
    os.replace(tmp, dst)


def prepare(outdir: str | Path, min_seconds: float = 1.0, jobs: int | None = None) -> dict:
    """Build the demo set under ``outdir`` (see the module docstring for the layout).

    Returns:
        Summary: ``{"files": {split: n}, "minutes": {split: m}, "decoded": n_new, "seconds_taken": s}``.
    """
    start = time.perf_counter()
    out = Path(outdir)
    check_packages()
    prompts = select_prompts(list_package_files(), min_seconds)
    by_name = {p.name: p for p in prompts}
    split = split_names(list(by_name))
    plan = {out / part / f"{name}.wav": by_name[name] for part in SPLITS for name in split[part]}

    for part in SPLITS:
        (out / part).mkdir(parents=True, exist_ok=True)
        for stale in (out / part).glob("*.wav"):
            if stale not in plan:
                stale.unlink()
    todo = [(p.source, dst) for dst, p in plan.items() if not (dst.exists() and _readable(dst))]
    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        list(pool.map(lambda job: decode(*job), todo))  # list() re-raises the first decode error

    minutes = {part: 0.0 for part in SPLITS}
    rows = ["split\tname\tseconds\tsource"]
    for part in SPLITS:
        for name in split[part]:
            seconds = sf.info(str(out / part / f"{name}.wav")).duration
            minutes[part] += seconds / 60
            rows.append(f"{part}\t{name}\t{seconds:.4f}\t{by_name[name].source}")
    write_text(out / "manifest.tsv", "\n".join(rows) + "\n")
    if LICENSE_FILE.exists():
        shutil.copyfile(LICENSE_FILE, out / "LICENSE-asterisk-core-sounds.txt")
    if TRANSCRIPT_FILE.exists():
        import gzip

        (out / "transcripts").mkdir(exist_ok=True)
        (out / "transcripts" / "en.txt").write_bytes(gzip.decompress(TRANSCRIPT_FILE.read_bytes()))

    counts = {part: len(split[part]) for part in SPLITS}
    summary_line = ", ".join(f"{part} {counts[part]} files / {minutes[part]:.2f} min" for part in SPLITS)
    write_text(
        out / "README.txt",
        "Demo speech set: Asterisk English voice prompts (Debian package asterisk-core-sounds-en-g722),\n"
        "decoded from G.722 to 16 kHz mono PCM16 wav by `python -m taae.data.demo`.\n"
        f"Prompts of at least {min_seconds} s, non-speech prompts dropped.\n"
        f"{summary_line}\n"
        "License: CC-BY-SA-3.0 (Allison Smith / Digium), see LICENSE-asterisk-core-sounds.txt.\n"
    )
    return {
        "files": counts,
        "minutes": minutes,
        "decoded": len(todo),
        "seconds_taken": time.perf_counter() - start,
        "summary": summary_line,
    }


def _readable(path: Path) -> bool:
    try:
        return sf.info(str(path)).frames > 0
    except Exception:  # a partial or foreign file: decode it again
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m taae.data.demo", description=__doc__.split("\n")[0])
    parser.add_argument("outdir", help="output folder (train/, val/, test/ are created inside)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="drop prompts shorter than this")
    parser.add_argument("--jobs", type=int, default=None, help="parallel ffmpeg processes (default: CPU count)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        summary = prepare(args.outdir, args.min_seconds, args.jobs)
    except (RuntimeError, ValueError) as e:
        log.error("demo data preparation failed: %s", e)
        return 1
    log.info(
        "%s: %s (decoded %d new files in %.1f s)",
        args.outdir,
        summary["summary"],
        summary["decoded"],
        summary["seconds_taken"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
