"""The evaluation driver behind ``evaluate.py``: data → systems → metrics (process pool) → report.

Protocol (§8, written into every report): each reference file is loaded and preprocessed exactly as the
codec preprocesses its input (mono, resampled to the model rate, loudness-normalised to -20 LUFS); that
preprocessed signal is both what every system codes and what its output is scored against. Codec outputs are
compared at exactly the input length: a length mismatch is an error for that file, never trimmed silently
(reference codecs may differ by a few samples, recorded per file, see ``references.py``).

Model inference runs in the main process; reference codecs and the CPU-bound metrics (PESQ, STOI, mel/STFT,
DNSMOS) run in a pool of worker processes (``scoring.py``). A file that fails (unreadable, a system error, a
metric error) is reported and counted, never fatal. File listing and reference loading live in ``inputs.py``;
this module holds the run's configuration, the loop that feeds the pool, the report's settings and the CLI.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import logging
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from taae.errors import DEBUG_FLAG, pop_debug, run_main
from taae.eval.baselines import BaselineSystem, load_baselines
from taae.eval.examples import save_example
from taae.eval.inputs import TARGET_LUFS, file_ids, list_audio_files, load_reference, select_subset
from taae.eval.metrics import optional_metrics_status
from taae.eval.references import available_references
from taae.eval.report import markdown_table, write_report
from taae.eval.results import REFERENCE_EXAMPLES, EvalReport, FileResult, summarize_system
from taae.eval.scoring import ScoreJob, ScoringPool
from taae.eval.speech_models import speech_scorer
from taae.eval.systems import CodecSystem, System
from taae.eval.token_stats import entropy_bitrate

log = logging.getLogger(__name__)

DEFAULT_PRESETS = ("native", "400bps", "700bps", "1000bps")


@dataclass
class EvalConfig:
    """Everything one evaluation run needs; the CLI flags map one to one."""

    data: str
    """A folder (searched recursively for .wav/.flac/.ogg) or a manifest (.txt one path per line, .tsv/.csv with a
    ``path`` column, .jsonl with a ``path`` / ``audio_filepath`` key)."""
    out: str
    """Output folder for report.json, report.md, per_file.csv, rate_quality.png, report.html and examples/."""
    checkpoint: str | None = None
    """Lightning checkpoint or export folder; None evaluates the reference systems only."""
    trust_checkpoint: bool = False
    """Fully unpickle a checkpoint that the safe load refuses (it can run code: trusted files only)."""
    presets: list[str] = field(default_factory=lambda: list(DEFAULT_PRESETS))
    """Codec presets to evaluate; ``all`` takes every preset the codec has."""
    references: str = "auto"
    """``auto``, ``none`` or a comma-separated list of identity, mulaw, opus, codec2."""
    stages: list[str] = field(default_factory=list)
    """Extra post-hoc residual FSQ stage specs, e.g. ``5x5:1,0.25``."""
    max_files: int | None = None
    workers: int | None = None
    """Metric processes; None → ``os.cpu_count()``, 0 → everything in the main process."""
    device: str = "cpu"
    examples: int = 3
    """Decoded files saved for listening, per system."""
    mos: bool = True
    sample_rate: int = 16000
    """Evaluation rate without a checkpoint (with one, the codec's rate)."""
    baselines: list[str] = field(default_factory=list)
    """``KIND=PATH[@SETTINGS]`` baselines from local weights (``taae.eval.baselines``): encodec, mimi, dac-hf
    (transformers folders), dac, stable-codec (taae import)."""
    asr: str | None = None
    """transformers ASR folder (HuBERT/wav2vec 2.0 CTC or Whisper) for the WER and dWER columns."""
    speaker: str | None = None
    """transformers x-vector folder (``WavLMForXVector``) for the SIM column."""
    subset: str | None = None
    """A list file of utterance ids or relative paths: only those files, in that order."""


@dataclass
class EvalResult:
    report: EvalReport
    results: list[FileResult]
    paths: dict[str, Path]


# ------------------------------------------------------------------------------------------------------------
# driver


def _version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _codec_systems(codec, cfg: EvalConfig, notes: list[str]) -> list[CodecSystem]:
    """One system per requested preset or stage string; ones this codec cannot make are skipped with a note."""
    wanted = list(codec.presets()) if cfg.presets == ["all"] else list(cfg.presets)
    for spec in cfg.stages:
        # Codec.resolve_preset registers a stage string such as "5x5:1,0.25" as a preset of that name.
        wanted.append(spec)
    systems: dict[str, CodecSystem] = {}
    for preset in dict.fromkeys(wanted):
        try:
            system = CodecSystem(codec, preset, cfg.device)
        except ValueError as err:
            notes.append(f"preset {preset!r} skipped: {err}")
            continue
        if system.preset in {s.preset for s in systems.values()}:
            continue  # an alias of a preset already listed
        systems[preset] = system
    return list(systems.values())


def _settings(cfg: EvalConfig, codec, files: list[Path], sample_rate: int, workers: int) -> dict:
    import taae

    lufs = getattr(codec, "target_lufs", TARGET_LUFS)

    settings = {
        "data": str(Path(cfg.data).resolve()), "num_files": len(files), "sample_rate": sample_rate,
        "preprocessing": (f"each reference is loaded, downmixed to mono, resampled to {sample_rate} Hz and "
                          f"loudness-normalised to {lufs:g} LUFS (BS.1770), exactly as the codec "
                          "preprocesses its input; every system codes that signal and is scored against it at "
                          "the same length."),
        "checkpoint": cfg.checkpoint, "device": cfg.device, "workers": workers, "references": cfg.references,
        "examples": cfg.examples,
        "presets": cfg.presets, "stages": cfg.stages, "baselines": cfg.baselines, "asr": cfg.asr,
        "speaker": cfg.speaker, "subset": cfg.subset, "command": sys.argv, "git_commit": _git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"taae": taae.__version__, "python": platform.python_version(), "torch": torch.__version__,
                     **{p: _version(p) for p in ("torchaudio", "numpy", "pesq", "pystoi", "speechmos",
                                                 "onnxruntime", "transformers")}},
    }
    if cfg.device.startswith("cuda") and torch.cuda.is_available():
        settings["device_name"] = torch.cuda.get_device_name(torch.device(cfg.device))
    if codec is not None:
        settings.update(model_hash=getattr(codec, "model_hash", None),
                        num_parameters=getattr(codec, "num_parameters", None),
                        frame_rate=getattr(codec, "frame_rate", None))
    return settings


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Run one evaluation and write its report into ``cfg.out``.

    Raises:
        ValueError / FileNotFoundError: for bad data, presets or references (before any work is done).
    """
    notes: list[str] = []
    files = list_audio_files(cfg.data, None if cfg.subset else cfg.max_files, exclude=cfg.out)
    if cfg.subset:
        files = select_subset(files, cfg.subset, cfg.data)[: cfg.max_files or None]
    codec = None
    if cfg.checkpoint not in (None, "", "none"):
        from taae.codec import Codec

        codec = Codec.load(cfg.checkpoint, device=cfg.device, trust=cfg.trust_checkpoint)
    sample_rate = int(codec.sample_rate) if codec is not None else cfg.sample_rate
    metrics, metric_notes = optional_metrics_status(cfg.mos)
    notes += metric_notes
    codec_systems = _codec_systems(codec, cfg, notes) if codec is not None else []
    if codec is not None and not codec_systems:
        raise ValueError(f"none of the presets {cfg.presets + cfg.stages} exists for {cfg.checkpoint} (known: "
                         f"{list(codec.presets())}, aliases: {list(codec.aliases())})")
    refs = available_references(cfg.references, sample_rate)
    notes += refs.notes
    baselines, baseline_notes = load_baselines(cfg.baselines, sample_rate, cfg.device)
    notes += baseline_notes
    scorer, speech_notes = speech_scorer(cfg.asr, cfg.speaker, files, sample_rate, cfg.device)
    notes += speech_notes
    metrics += scorer.metrics if scorer else []
    signal_metrics = tuple(m for m in metrics if scorer is None or m not in scorer.metrics)
    main_systems: list[System] = [*codec_systems, *baselines]
    systems: list[System] = [*main_systems, *refs.systems]
    if not systems:
        raise ValueError("nothing to evaluate: no checkpoint and no reference system (see --references)")
    workers = (os.cpu_count() or 1) if cfg.workers is None else cfg.workers
    if main_systems and cfg.device == "cpu" and workers > 0:
        notes.append("RTF measured on CPU while metric workers share the cores; use --workers 0 for clean timing")

    out_dir = Path(cfg.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[FileResult] = []
    tokens: dict[str, list[torch.Tensor]] = {s.name: [] for s in codec_systems}
    ids = file_ids(files, cfg.data)

    from tqdm.auto import tqdm

    bar = tqdm(total=len(files) * len(systems), desc="evaluate", unit="pair", disable=None)

    def collect(res: FileResult, audio: np.ndarray | None, index: int) -> None:
        if scorer is not None:
            speech = scorer.score(index, None if audio is None else torch.from_numpy(audio).reshape(1, -1))
            res.values.update(speech.values)
            res.errors.update(speech.errors)
            res.texts.update(speech.texts)
        results.append(res)
        for key, msg in res.errors.items():
            log.warning("%s / %s: %s failed: %s", res.file, res.system, key, msg)
        if audio is not None and index < cfg.examples:
            save_example(out_dir, res.system, index, files[index], audio, sample_rate)
        bar.update(1)

    pool = ScoringPool(workers, collect)
    try:
        warm = False
        for i, path in enumerate(files):
            # The speech models score the decoded audio in this process, so every output comes back.
            keep = i < cfg.examples or scorer is not None
            try:
                ref = load_reference(path, codec, sample_rate)
                if scorer is not None:
                    scorer.prepare(i, ref)
            except Exception as err:  # noqa: BLE001
                for s in systems:
                    pool.submit(ScoreJob(i, ids[i], np.zeros(0, np.float32), sample_rate, signal_metrics, s.name,
                                         error=f"load: {type(err).__name__}: {err}"))
                continue
            ref_np = ref.numpy().reshape(-1)
            if i < cfg.examples:
                save_example(out_dir, REFERENCE_EXAMPLES, i, path, ref_np, sample_rate)
            for s in main_systems:
                job = ScoreJob(i, ids[i], ref_np, sample_rate, signal_metrics, s.name, keep_audio=keep)
                try:
                    if not warm:
                        s.warmup(ref)
                    o = s.process(ref)
                    if s.name in tokens:
                        tokens[s.name].append(o.tokens)
                    job.out, job.encode_seconds, job.decode_seconds, job.seconds, job.length_change = (
                        o.audio.numpy().reshape(-1), o.encode_seconds, o.decode_seconds, o.seconds, o.length_change)
                except Exception as err:  # noqa: BLE001
                    job.error = f"{type(err).__name__}: {err}"
                pool.submit(job)
            warm = warm or bool(main_systems)
            for s in refs.systems:
                pool.submit(ScoreJob(i, ids[i], ref_np, sample_rate, signal_metrics, s.name, system=s,
                                     keep_audio=keep))
        pool.join()
    finally:
        bar.close()
        pool.shutdown()

    # Workers finish out of order: back to file order, then system order.
    file_rank = {f: n for n, f in enumerate(ids)}
    system_rank = {s.name: n for n, s in enumerate(systems)}
    results.sort(key=lambda r: (file_rank.get(r.file, 0), system_rank.get(r.system, 0)))
    summaries = []
    for s in systems:
        extra = {}
        if isinstance(s, CodecSystem):
            extra = {"preset": s.preset, "exact_bitrate": s.spec.exact_bitrate,
                     "tokens_per_second": s.spec.tokens_per_frame * s.spec.frame_rate,
                     "entropy": entropy_bitrate(tokens[s.name], s.spec) if tokens[s.name] else None}
        elif isinstance(s, BaselineSystem):
            extra = {"weights": s.weights, "weights_hash": s.weights_hash, "model_rate": s.model_rate}
        summaries.append(summarize_system(s.name, results, s.kind, s.bitrate, metrics, **extra))
    report = EvalReport(settings=_settings(cfg, codec, files, sample_rate, workers), systems=summaries,
                        metrics=metrics, notes=notes)
    paths = write_report(report, results, out_dir)
    return EvalResult(report=report, results=results, paths=paths)


# ------------------------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evaluate.py", description=(
        "Evaluate a taae codec (and reference codecs) on a speech set: SI-SDR, mel/STFT distance, PESQ, STOI, "
        "DNSMOS, entropy bitrate, RTF; with --asr / --speaker also WER, dWER and speaker similarity; beside "
        "reference codecs and --baseline codecs from local weights. Writes report.json, report.md, per_file.csv, "
        "per_utterance.jsonl, rate_quality.png, examples/ and report.html (every system side by side)."))
    p.add_argument("--checkpoint", required=True, help="checkpoint or export folder; 'none' for references only")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="fully unpickle a .ckpt that the safe load refuses (it can run code: trusted files only)")
    p.add_argument("--data", required=True, help="folder (recursive .wav/.flac/.ogg) or manifest (.txt/.tsv/.jsonl)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--presets", default=",".join(DEFAULT_PRESETS), help="comma-separated presets, or 'all'")
    p.add_argument("--references", default="auto", help="auto | none | comma list of identity,mulaw,opus,codec2")
    p.add_argument("--stages", nargs="*", default=[], help='extra post-hoc FSQ stage specs, e.g. "5x5:1,0.25"')
    p.add_argument("--max-files", type=int, default=None)
    p.add_argument("--workers", type=int, default=None, help="metric processes (default: CPU count; 0: inline)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (model inference)")
    p.add_argument("--examples", type=int, default=3, help="decoded files to save per system")
    p.add_argument("--no-mos", action="store_true", help="skip DNSMOS")
    p.add_argument("--sample-rate", type=int, default=16000, help="evaluation rate when --checkpoint none")
    p.add_argument("--baseline", action="append", default=[], metavar="KIND=PATH[@SETTINGS]",
                   help="a baseline codec from local weights, repeatable: encodec|mimi|dac-hf=<transformers folder>"
                        "[@codebook counts], dac=<weights.pth>|stable-codec=<folder>[@presets]")
    p.add_argument("--asr", default=None, help="transformers ASR folder (HuBERT-CTC, Whisper): WER / dWER columns")
    p.add_argument("--speaker", default=None, help="transformers WavLMForXVector folder: SIM column")
    p.add_argument("--subset", default=None, help="list file of utterance ids or relative paths to evaluate")
    p.add_argument(DEBUG_FLAG, action="store_true", help="show tracebacks for user errors too")
    return p


def main(argv: list[str] | None = None) -> int:
    argv, debug = pop_debug(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_main("evaluate.py", lambda: _run(args), debug)


def _run(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be >= 0, got {args.workers}")
    cfg = EvalConfig(data=args.data, out=args.out, checkpoint=args.checkpoint,
                     trust_checkpoint=args.trust_checkpoint,
                     presets=[p.strip() for p in args.presets.split(",") if p.strip()], references=args.references,
                     stages=list(args.stages), max_files=args.max_files, workers=args.workers, device=args.device,
                     examples=args.examples, mos=not args.no_mos, sample_rate=args.sample_rate,
                     baselines=list(args.baseline), asr=args.asr, speaker=args.speaker, subset=args.subset)
    result = evaluate(cfg)
    print(markdown_table(result.report))
    print(f"wrote {', '.join(str(p) for p in result.paths.values())}")
    print(f"listening report: {result.paths['html'].resolve()}")
    return 0
