"""What an evaluation produces, as data: per-file results, per-system summaries, the report, its table and the
example paths. The writers (:mod:`taae.eval.report`), the plots and the listening page import these; none of them
imports another.

Every mean is NaN-aware: a metric that failed on a file (NaN) is left out of that metric's mean and counted under
``failures``; ``count`` is the number of files that entered the mean. ``std`` is the sample standard deviation
(ddof = 1), None for fewer than two values.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from taae.eval.metrics import HIGHER_IS_BETTER, METRICS
from taae.eval.token_stats import EntropyStats

COLUMN_TITLES = {"si_sdr": "SI-SDR", "mel": "Mel", "stft": "STFT", "noise_floor": "Floor dB", "pesq_wb": "PESQ-WB",
                 "pesq_nb": "PESQ-NB", "stoi": "STOI", "mos": "DNSMOS", "wer": "WER", "dwer": "dWER", "sim": "SIM"}

PAPER_ROW = {"name": "TAAE 2×15625 (paper)", "bitrate": 700.0, "si_sdr": 4.73, "mel": 0.86, "stft": 1.26,
             "pesq_wb": 3.09, "stoi": 0.92, "mos": 3.36}
"""arXiv 2411.19842 Table 2, LibriSpeech test-clean. PESQ mode not stated (placed under WB); MOS is MOSNet, not
DNSMOS; the paper's mel/STFT distances come from auraloss settings, not ours."""


@dataclass
class FileResult:
    """One file through one system."""

    file: str
    system: str
    duration: float
    """Seconds of (preprocessed) reference audio."""
    values: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    """Metric name (or ``"system"`` when the system itself failed) → error message."""
    length_change: int = 0
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0
    seconds: float = 0.0
    texts: dict[str, str] = field(default_factory=dict)
    """ASR text of the output (``hypothesis``), of the reference (``reference_transcription``) and the data's
    ``transcript``, when an ASR model ran."""


@dataclass
class MetricSummary:
    mean: float | None
    std: float | None
    count: int
    failures: int


def summarize(values: list[float]) -> MetricSummary:
    """NaN-aware mean, sample std (ddof = 1), count of finite values and count of NaNs."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(finite)
    mean = sum(finite) / n if n else None
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1)) if n > 1 else None
    return MetricSummary(mean=mean, std=std, count=n, failures=len(values) - n)


@dataclass
class SystemSummary:
    """Aggregated results of one system or preset."""

    name: str
    kind: str
    """``codec`` for a taae preset, ``reference`` otherwise."""
    bitrate: float | None
    """Nominal bits per second (⌈log2⌉ convention for codec presets)."""
    metrics: dict[str, MetricSummary]
    num_files: int
    failed_files: int
    """Files on which the system itself failed (no audio to score)."""
    preset: str | None = None
    exact_bitrate: float | None = None
    tokens_per_second: float | None = None
    entropy: EntropyStats | None = None
    encode_rtf: float | None = None
    decode_rtf: float | None = None
    rtf: float | None = None
    """Whole round trip, seconds of compute per second of audio."""
    max_abs_length_change: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    """Failure counts per metric (and ``system``)."""
    weights: str | None = None
    """Folder or file of a baseline's weights, and its content hash (``inputs.content_hash``)."""
    weights_hash: str | None = None
    model_rate: int | None = None
    """A baseline's own sample rate (resampled in and out when it differs from the evaluation rate)."""
    corpus: dict[str, float] = field(default_factory=dict)
    """Corpus-level ``wer`` / ``dwer``: Σ word edits / Σ reference words over the files (the papers' convention)."""


def summarize_system(name: str, results: list[FileResult], kind: str = "reference", bitrate: float | None = None,
                     metrics: list[str] | None = None, **extra) -> SystemSummary:
    """Aggregate one system's per-file results. ``extra`` fills ``preset``, ``exact_bitrate``, ``entropy``."""
    metrics = list(metrics if metrics is not None else METRICS)
    rows = [r for r in results if r.system == name]
    audio = sum(r.duration for r in rows if "system" not in r.errors)

    def rtf(attr: str) -> float | None:
        total = sum(getattr(r, attr) for r in rows if "system" not in r.errors)
        return total / audio if audio > 0 and total > 0 else None

    corpus = {}
    for key in ("wer", "dwer"):
        edits = [r.values.get(f"{key}_edits", math.nan) for r in rows]
        words = [r.values.get(f"{key}_words", math.nan) for r in rows]
        pairs = [(e, w) for e, w in zip(edits, words) if math.isfinite(e) and math.isfinite(w)]
        if pairs and sum(w for _, w in pairs) > 0:
            corpus[key] = sum(e for e, _ in pairs) / sum(w for _, w in pairs)
    extra.setdefault("corpus", corpus)
    errors: dict[str, int] = {}
    for r in rows:
        for key in r.errors:
            errors[key] = errors.get(key, 0) + 1
    return SystemSummary(
        name=name, kind=kind, bitrate=bitrate, num_files=len(rows),
        metrics={m: summarize([r.values.get(m, math.nan) for r in rows]) for m in metrics},
        failed_files=errors.get("system", 0), encode_rtf=rtf("encode_seconds"), decode_rtf=rtf("decode_seconds"),
        rtf=rtf("seconds"), max_abs_length_change=max((abs(r.length_change) for r in rows), default=0),
        errors=errors, **extra,
    )


@dataclass
class EvalReport:
    settings: dict
    systems: list[SystemSummary]
    metrics: list[str]
    """Metric columns that were computed."""
    notes: list[str] = field(default_factory=list)

    def sorted_systems(self) -> list[SystemSummary]:
        """Rows by nominal bitrate, lowest first; systems without a bitrate (identity, noise) last."""
        return sorted(self.systems, key=lambda s: (s.bitrate is None, s.bitrate or 0.0, s.name))


# ------------------------------------------------------------------------------------------------------------
# writers


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _fmt_metric(s: MetricSummary, digits: int) -> str:
    if s.mean is None:
        return "—"
    return _fmt(s.mean, digits) + (f" ± {_fmt(s.std, digits)}" if s.std is not None else "")


DIGITS = {"stoi": 3, "si_sdr": 2, "mel": 3, "stft": 3, "wer": 3, "dwer": 3, "sim": 3}
"""Decimals shown per metric (2 for the others)."""


@dataclass
class Cell:
    """One cell of the results table: its text, and the value it sorts by (None: missing, sorted last)."""

    text: str
    value: float | str | None


def _num(value: float | None, digits: int = 2) -> Cell:
    ok = value is not None and math.isfinite(value)
    return Cell(_fmt(value, digits), float(value) if ok else None)


def table_header(report: EvalReport) -> list[str]:
    """Column titles of the results table, an arrow saying which way is better."""
    head = ["system", "bps (nominal)", "bps (entropy)", "tokens/s"]
    head += [f"{COLUMN_TITLES[m]} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in report.metrics]
    return head + ["enc RTF ↓", "dec RTF ↓"]


def table_rows(report: EvalReport) -> list[list[Cell]]:
    """The results table (rows by bitrate), shared by ``report.md`` and ``report.html``."""
    rows = []
    for s in report.sorted_systems():
        ent = s.entropy
        row = [Cell(s.name, s.name), _num(s.bitrate, 0), _num(ent.entropy_bitrate if ent else None, 0),
               _num(s.tokens_per_second, 0)]
        for m in report.metrics:
            ms = s.metrics[m]
            row.append(Cell(_fmt_metric(ms, DIGITS.get(m, 2)), _num(ms.mean).value))
        rows.append(row + [_num(s.encode_rtf, 3), _num(s.decode_rtf, 3)])
    return rows


def paper_row(report: EvalReport) -> list[str]:
    """The paper's row in the columns of ``table_header``, for context only."""
    row = [PAPER_ROW["name"], _fmt(PAPER_ROW["bitrate"], 0), "—", "50"]
    return row + [_fmt(PAPER_ROW.get(m), DIGITS.get(m, 2)) for m in report.metrics] + ["—", "—"]


PAPER_NOTE = ("For context only, the paper's LibriSpeech test-clean numbers (different data and metric settings, "
              "not directly comparable; PESQ mode not stated, MOS is MOSNet):")


def mos_note(report: EvalReport) -> str | None:
    """Which MOS model the DNSMOS column is, or None when it was not computed."""
    if "mos" not in report.metrics:
        return None
    version = report.settings.get("versions", {}).get("speechmos")
    return ("DNSMOS = DNSMOS P.835 overall quality (OVRL; Reddy et al., ICASSP 2022), a non-intrusive model "
            f"(the reference is not used) run offline from the ONNX files of `speechmos` {version or ''}".rstrip()
            + "; it scores 9.01 s windows and loops shorter clips to fill one. The paper's MOS column is MOSNet: "
            "a different model and scale.")


def report_notes(report: EvalReport) -> list[str]:
    """The paragraphs under the table: protocol, entropy and RTF conventions, MOS model, failures, run notes."""
    st = report.settings
    out = [f"Mean ± sample std over {st.get('num_files', '?')} files of `{st.get('data', '?')}`. "
           f"Protocol: {st.get('preprocessing', '')}"]
    ents = [s for s in report.systems if s.entropy is not None]
    if ents:
        frames = ", ".join(f"{s.name}: {s.entropy.num_frames}" for s in ents)
        out.append(f"bps (entropy) = frame rate × Σ plug-in entropy per stage over the pooled tokens "
                   f"(frames: {frames}); it reads low when frames ≪ vocabulary.")
    out.append("RTF = seconds of compute per second of audio on "
               f"{st.get('device', '?')}; reference codecs are timed as whole round trips in report.json.")
    mos = mos_note(report)
    if mos:
        out.append(mos)
    failures = [f"{s.name}: " + ", ".join(f"{k} {v}" for k, v in sorted(s.errors.items()))
                for s in report.sorted_systems() if s.errors]
    if failures:
        out.append("Failures (files): " + "; ".join(failures) + ".")
    return out + [f"- {n}" for n in report.notes]


RATE_QUALITY_PNG = "rate_quality.png"
EXAMPLES_DIR = "examples"
REFERENCE_EXAMPLES = "reference"
"""Folder name, under ``EXAMPLES_DIR``, of the preprocessed references that every system coded."""


def example_path(system: str, index: int, file: str) -> Path:
    """Where the decoded example of ``file`` (the ``index``-th file of the run) through ``system`` is saved,
    relative to the report folder: ``examples/<system>/<index:03d>_<stem>.wav``."""
    folder = re.sub(r"[^A-Za-z0-9._-]", "_", system)  # stage names hold ':' and ','
    return Path(EXAMPLES_DIR, folder, f"{index:03d}_{Path(file).stem}.wav")


