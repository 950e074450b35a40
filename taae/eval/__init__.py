"""Evaluation: objective metrics, reference codecs, reports and the ``evaluate.py`` driver (§8).

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from taae.eval.metrics import (
    FileMetrics,
    Stopwatch,
    compute_metrics,
    mel_distance,
    pesq_score,
    real_time_factor,
    si_sdr,
    stft_distance,
    stoi_score,
)
from taae.eval.references import AddNoise, Codec2, Identity, MuLaw8, Opus, available_references
from taae.eval.report import write_report
from taae.eval.results import EvalReport, FileResult, MetricSummary, SystemSummary, summarize
from taae.eval.systems import CodecSystem, System, SystemOutput
from taae.eval.token_stats import EntropyStats, entropy_bitrate

__all__ = [
    "AddNoise", "Codec2", "CodecSystem", "EntropyStats", "EvalReport", "FileMetrics", "FileResult", "Identity",
    "MetricSummary", "MuLaw8", "Opus", "Stopwatch", "System", "SystemOutput", "SystemSummary",
    "available_references", "compute_metrics", "entropy_bitrate", "mel_distance", "pesq_score",
    "real_time_factor", "si_sdr", "stft_distance", "stoi_score", "summarize", "write_report",
]
