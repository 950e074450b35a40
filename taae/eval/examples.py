"""The example utterances of an evaluation, as the listening page shows them: one card per system and file.

Shape legend: T samples, M mel bands, F frames.

``taae.eval.run`` saves the first ``--examples`` files through every system under ``examples/<system>/`` and the
preprocessed input under ``examples/reference/`` (names from ``taae.eval.report.example_path``). Here each saved
WAV gets its log-mel image beside it (same name, ``.png``), all on one colour scale whose top is the loudest bin
of the references, plus the shared colour bar ``spectrogram_scale.png``. The identity system is the reference
itself, so its card is the reference's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from taae.eval.plots import MelImageConfig, colour_scale, log_mel_db, spectrogram_png, write_colourbar
from taae.eval.results import (
    COLUMN_TITLES,
    DIGITS,
    REFERENCE_EXAMPLES,
    EvalReport,
    FileResult,
    SystemSummary,
    example_path,
)
from taae.io.atomic import write_bytes

COLOURBAR_PNG = "spectrogram_scale.png"
IDENTITY = "identity"  # taae.eval.references.Identity.name: its output is the reference, bit for bit
CAPTION_METRICS = ("pesq_wb", "stoi", "mos")
"""Per-file scores printed on each card (those the evaluation computed)."""


@dataclass
class ExampleCard:
    """One system's rendition of one example utterance."""

    system: str
    title: str
    bitrate: str
    wav: str | None
    """URL of the WAV relative to the page, None when there is no audio (the system failed on this file)."""
    png: str | None
    scores: str = ""
    error: str | None = None


@dataclass
class Example:
    index: int
    file: str
    duration: float
    cards: list[ExampleCard]


def format_bitrate(bps: float | None) -> str:
    """700 → "700 bps", 6000 → "6 kbps", 128000 → "128 kbps"; None → "—"."""
    if bps is None or not math.isfinite(bps):
        return "—"
    return f"{bps:.0f} bps" if bps < 1000 else f"{bps / 1000:.3g} kbps"


def _url(path: Path) -> str:
    # File stems may hold spaces, '#' or '%': quote them, keep the folder separators.
    return quote(path.as_posix())


def card_systems(report: EvalReport) -> list[SystemSummary]:
    """Systems that get an example card, after the reference: codec presets by bitrate, then reference codecs by
    bitrate, then systems without a bitrate; identity is left out (its card is the reference's)."""
    def key(s: SystemSummary):
        return (s.kind != "codec", s.bitrate is None, s.bitrate or 0.0, s.name)

    return sorted((s for s in report.systems if s.name != IDENTITY), key=key)


def _scores(result: FileResult | None, metrics: list[str]) -> str:
    if result is None:
        return ""
    parts = []
    for m in metrics:
        v = result.values.get(m)
        if v is not None and math.isfinite(v):
            parts.append(f"{COLUMN_TITLES[m]} {v:.{DIGITS.get(m, 2)}f}")
    return " · ".join(parts)


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (T, C)
    return data.mean(axis=1), int(rate)


def collect_examples(report: EvalReport, results: list[FileResult], out_dir: str | Path,
                     mel: MelImageConfig | None = None,
                     caption_metrics: tuple[str, ...] = CAPTION_METRICS) -> list[Example]:
    """Find the saved examples in ``out_dir``, write a log-mel PNG beside each WAV and the shared colour bar.

    The examples are the files whose reference WAV exists under ``examples/reference/`` (``run.py`` saves the first
    ``--examples`` files); the colour scale's top is the loudest bin of those references.
    """
    mel = mel or MelImageConfig()
    out = Path(out_dir)
    by_pair = {(r.file, r.system): r for r in results}
    metrics = [m for m in caption_metrics if m in report.metrics]
    systems = card_systems(report)
    has_identity = any(s.name == IDENTITY for s in report.systems)

    # Only this run's examples: a run with fewer --examples into the same folder leaves older ones behind.
    limit = report.settings.get("examples")
    found: list[tuple[int, str, list[tuple[ExampleCard, Path | None]]]] = []
    for index, file in enumerate(dict.fromkeys(r.file for r in results)):  # results are in file order
        ref = example_path(REFERENCE_EXAMPLES, index, file)
        if (limit is not None and index >= limit) or not (out / ref).is_file():
            continue
        cards = [(ExampleCard(REFERENCE_EXAMPLES, "reference (= identity)" if has_identity else "reference",
                              "input", _url(ref), None, _scores(by_pair.get((file, IDENTITY)), metrics)), out / ref)]
        for s in systems:
            rel = example_path(s.name, index, file)
            result = by_pair.get((file, s.name))
            card = ExampleCard(s.name, s.name, format_bitrate(s.bitrate), None, None, _scores(result, metrics))
            failed = result.errors.get("system") if result is not None else None
            # A system that failed on this file this time has no example, whatever an earlier run left there.
            if failed is None and (out / rel).is_file():
                card.wav = _url(rel)
                cards.append((card, out / rel))
            else:
                card.error = failed or "no example saved"
                cards.append((card, None))
        found.append((index, file, cards))

    spectra: dict[Path, np.ndarray] = {}
    durations: dict[int, float] = {}
    for index, _, cards in found:
        for card, path in cards:
            if path is not None:
                wav, rate = _read_wav(path)
                spectra[path] = log_mel_db(wav, rate, mel)
                if card.system == REFERENCE_EXAMPLES:
                    durations[index] = len(wav) / rate
    if not found:
        return []
    scale = colour_scale([spectra[cards[0][1]] for _, _, cards in found], mel.dynamic_range_db)
    write_colourbar(out / COLOURBAR_PNG, scale, mel.cmap)
    examples = []
    for index, file, cards in found:
        for card, path in cards:
            if path is not None:
                png = path.with_suffix(".png")
                write_bytes(png, spectrogram_png(spectra[path], scale, mel.cmap))
                card.png = _url(png.relative_to(out))
        examples.append(Example(index, file, durations[index], [c for c, _ in cards]))
    return examples


def save_example(out_dir: Path, system: str, index: int, path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Save one decoded example (or the reference) where the listening page looks for it (:func:`example_path`)."""
    import torch

    from taae.io.audio import save_audio

    # save_audio creates the folder.
    save_audio(out_dir / example_path(system, index, path.name), torch.from_numpy(audio).reshape(1, -1), sample_rate)
