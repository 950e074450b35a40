"""Figures of an evaluation: log-mel spectrogram images for the listening page, and the bitrate-vs-quality plot.

Shape legend: T samples, M mel bands, F frames.

A spectrogram is a plain image, one pixel per (mel band, frame) with low frequencies at the bottom, so the images
of one utterance through every system line up pixel for pixel when shown at the same size. Every image of a page
shares one ``ColourScale`` (the loudest reference bin on the page is its top): a system that loses energy in a
band looks darker there, whichever utterance it is. The colour bar is a figure of its own, shown once.

Figures use matplotlib's object API on the Agg canvas (no pyplot state, no display) and are written atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from taae.eval.metrics import HIGHER_IS_BETTER
from taae.eval.results import COLUMN_TITLES, EvalReport, SystemSummary
from taae.io.atomic import write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RATE_QUALITY_METRICS = ("pesq_wb", "stoi", "mel", "mos")
"""Panels of the bitrate-vs-quality plot, in order; those the evaluation did not compute are left out."""
POWER_FLOOR = 1e-10
"""Mel power floor before the logarithm (-100 dB), so that digital silence stays finite."""
FIGURE_DPI = 120


@dataclass
class MelImageConfig:
    """How the log-mel images of the listening page are computed and coloured."""

    window_seconds: float = 0.064
    """STFT window (and FFT size): 1024 samples at 16 kHz, enough frequency resolution to see harmonics."""
    hop_seconds: float = 0.010
    """Frame step: one image column per 10 ms."""
    n_mels: int = 80
    """Mel bands from 0 Hz to Nyquist: one image row each."""
    dynamic_range_db: float = 80.0
    """Colours span this many dB below the scale's top; anything quieter is the bottom colour."""
    cmap: str = "magma"

    def __post_init__(self):
        for key in ("window_seconds", "hop_seconds", "dynamic_range_db"):
            if not getattr(self, key) > 0:
                raise ValueError(f"MelImageConfig.{key} must be > 0, got {getattr(self, key)}")
        if self.n_mels < 1:
            raise ValueError(f"MelImageConfig.n_mels must be >= 1, got {self.n_mels}")


@dataclass
class ColourScale:
    """dB values mapped to the bottom and top colours of every spectrogram image on a page."""

    vmin: float
    vmax: float


def log_mel_db(wav: np.ndarray | torch.Tensor, sample_rate: int, config: MelImageConfig | None = None) -> np.ndarray:
    """Log-mel power spectrogram in dB (10 log10 power, floored at ``POWER_FLOOR``).

    Args:
        wav: (T,) or (1, T) waveform.
        sample_rate: in Hz.

    Returns:
        (M, F) float32 array, F = 1 + T // hop.
    """
    import torchaudio

    cfg = config or MelImageConfig()
    win = max(2, round(cfg.window_seconds * sample_rate))
    hop = max(1, round(cfg.hop_seconds * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=sample_rate, n_fft=win, hop_length=hop, n_mels=cfg.n_mels,
                                               power=2.0)
    x = torch.as_tensor(np.asarray(wav, dtype=np.float32)).reshape(-1)
    power = mel(x)  # (M, F)
    return (10.0 * torch.log10(power.clamp(min=POWER_FLOOR))).numpy().astype(np.float32)


def colour_scale(spectrograms: Iterable[np.ndarray], dynamic_range_db: float) -> ColourScale:
    """The scale whose top is the loudest bin of ``spectrograms`` (dB) and whose bottom is ``dynamic_range_db`` lower.

    Raises:
        ValueError: for no spectrogram at all.
    """
    peaks = [float(np.max(s)) for s in spectrograms if s.size]
    if not peaks:
        raise ValueError("colour_scale needs at least one non-empty spectrogram")
    top = max(peaks)
    return ColourScale(vmin=top - dynamic_range_db, vmax=top)


def spectrogram_png(db: np.ndarray, scale: ColourScale, cmap: str = "magma") -> bytes:
    """(M, F) dB array → PNG bytes, one pixel per bin, low frequencies at the bottom."""
    from matplotlib.image import imsave

    buf = io.BytesIO()
    imsave(buf, db, vmin=scale.vmin, vmax=scale.vmax, cmap=cmap, origin="lower", format="png")
    return buf.getvalue()


def _figure_png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI)
    return buf.getvalue()


def write_colourbar(path: str | Path, scale: ColourScale, cmap: str = "magma") -> Path:
    """A horizontal colour bar of ``scale`` in dB relative to its top (0 dB = the loudest reference bin)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.8, 0.9), layout="constrained")
    ax = fig.add_subplot()
    span = scale.vmax - scale.vmin
    bar = fig.colorbar(ScalarMappable(Normalize(-span, 0.0), cmap), cax=ax, orientation="horizontal")
    bar.set_label("log-mel power, dB below the loudest reference bin", fontsize=8)
    ax.tick_params(labelsize=8)
    return write_bytes(path, _figure_png(fig))


# ------------------------------------------------------------------------------------------------------------
# bitrate vs quality


def _family(system: SystemSummary) -> str:
    # Codec rows are named "<family>_<preset>" (taae.eval.references.CodecSystem).
    return system.name.split("_", 1)[0]


def _point_label(system: SystemSummary) -> str:
    return system.name.split("_", 1)[1] if "_" in system.name else system.name


MARKERS = ("s", "^", "D", "v", "P", "X", "<", ">", "h", "*")


def rate_quality_figure(report: EvalReport, metrics: Sequence[str] = RATE_QUALITY_METRICS) -> Figure | None:
    """One panel per metric: mean over files against nominal bits/s (log axis), one point per system.

    Codec presets of one model family are joined by a line (lowest bitrate first); reference codecs are single
    points; systems without a bitrate (identity, noise) are dashed horizontal lines. None when no panel has data.
    """
    import matplotlib
    from matplotlib.figure import Figure

    def mean(s: SystemSummary, m: str) -> float | None:
        v = s.metrics[m].mean if m in s.metrics else None
        return v if v is not None and math.isfinite(v) else None

    systems = report.sorted_systems()
    panels = [m for m in metrics if m in report.metrics
              and any(mean(s, m) is not None and s.bitrate is not None for s in systems)]
    if not panels:
        return None
    fig = Figure(figsize=(4.0 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colours = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
    families = list(dict.fromkeys(_family(s) for s in systems if s.kind == "codec"))
    references = [s for s in systems if s.kind != "codec"]
    colour_of = {f: colours[i % len(colours)] for i, f in enumerate(families)}
    colour_of.update({s.name: colours[(len(families) + i) % len(colours)] for i, s in enumerate(references)})
    for ax, m in zip(axes, panels):
        for family in families:
            pts = sorted((s.bitrate, mean(s, m), _point_label(s)) for s in systems
                         if s.kind == "codec" and _family(s) == family and s.bitrate and mean(s, m) is not None)
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=colour_of[family],
                    label=f"{family} presets")
            for x, y, label in pts:  # upright labels: presets sit close together on the bitrate axis
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(0, 6), fontsize=7, rotation=90,
                            ha="center", va="bottom")
        for i, s in enumerate(references):
            y = mean(s, m)
            if y is None:
                continue
            if s.bitrate:
                ax.plot([s.bitrate], [y], MARKERS[i % len(MARKERS)], color=colour_of[s.name], label=s.name)
            else:
                ax.axhline(y, linestyle="--", linewidth=1, color=colour_of[s.name], label=s.name)
        ax.set_xscale("log")
        ax.margins(y=0.2)  # room for the upright labels
        ax.set_xlabel("bits/s (nominal)")
        ax.set_title(f"{COLUMN_TITLES.get(m, m)} {'↑' if HIGHER_IS_BETTER[m] else '↓'}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    handles: dict[str, object] = {}
    for ax in axes:  # one legend entry per system, wherever it first appears
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 6),
               fontsize=8, frameon=False)
    return fig


def write_rate_quality_plot(report: EvalReport, path: str | Path,
                            metrics: Sequence[str] = RATE_QUALITY_METRICS) -> Path | None:
    """Save ``rate_quality_figure`` as PNG at ``path``; None (nothing written) when there is nothing to plot."""
    fig = rate_quality_figure(report, metrics)
    return None if fig is None else write_bytes(path, _figure_png(fig))
