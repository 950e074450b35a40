"""taae.eval.plots: log-mel images (orientation, frequency axis, shared colour scale) and the bitrate plot."""

import io
import math

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.image import imread

from taae.eval.plots import (
    ColourScale,
    MelImageConfig,
    colour_scale,
    log_mel_db,
    rate_quality_figure,
    spectrogram_png,
    write_rate_quality_plot,
)
from taae.eval.results import EvalReport, MetricSummary, SystemSummary

SR = 16000


def _tone(freq: float, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def test_log_mel_frames_and_frequency_axis():
    cfg = MelImageConfig()
    low, high = log_mel_db(_tone(300.0), SR, cfg), log_mel_db(_tone(4000.0), SR, cfg)
    assert low.shape == (cfg.n_mels, 1 + int(0.5 * SR) // 160)
    # Row 0 is the lowest band: a low tone peaks in a lower row than a high tone.
    assert int(low.mean(axis=1).argmax()) < int(high.mean(axis=1).argmax())
    assert np.isfinite(log_mel_db(np.zeros(1600, np.float32), SR, cfg)).all()  # silence is floored, not -inf


def test_spectrogram_png_low_frequencies_at_the_bottom_on_the_given_scale():
    db = np.full((8, 5), -200.0, np.float32)
    db[0] = 0.0  # the lowest band at the scale's top
    image = imread(io.BytesIO(spectrogram_png(db, ColourScale(vmin=-80.0, vmax=0.0), "magma")))
    assert image.shape[:2] == (8, 5)  # one pixel per band and frame
    cmap = colormaps["magma"]
    np.testing.assert_allclose(image[-1, 0, :3], cmap(1.0)[:3], atol=1 / 255)  # bottom row: the top colour
    np.testing.assert_allclose(image[0, 0, :3], cmap(0.0)[:3], atol=1 / 255)  # below vmin: the bottom colour


def test_colour_scale_is_shared_not_per_image():
    loud, quiet = np.array([[0.0, -30.0]]), np.array([[-20.0, -50.0]])
    scale = colour_scale([loud, quiet], dynamic_range_db=80.0)
    assert (scale.vmin, scale.vmax) == (-80.0, 0.0)
    cmap = colormaps["magma"]
    top = imread(io.BytesIO(spectrogram_png(quiet, scale)))[0, 0, :3]
    # The quieter image's loudest bin is 20 dB below the top, so it is not drawn in the top colour.
    np.testing.assert_allclose(top, cmap(60 / 80)[:3], atol=2 / 255)
    with pytest.raises(ValueError, match="at least one"):
        colour_scale([], 80.0)


@pytest.mark.parametrize("key, value", [("hop_seconds", 0.0), ("dynamic_range_db", -1.0), ("n_mels", 0)])
def test_mel_config_rejects_bad_values(key, value):
    with pytest.raises(ValueError, match=key):
        MelImageConfig(**{key: value})


def _summary(name, kind, bitrate, **means):
    metrics = {m: MetricSummary(v, None, 1, 0) for m, v in means.items()}
    return SystemSummary(name=name, kind=kind, bitrate=bitrate, metrics=metrics, num_files=1, failed_files=0)


def _report():
    systems = [_summary("taae_1000bps", "codec", 1000.0, pesq_wb=2.0, mel=1.0),
               _summary("taae_400bps", "codec", 400.0, pesq_wb=1.5, mel=1.4),
               _summary("taae_700bps", "codec", 700.0, pesq_wb=1.9, mel=1.1),
               _summary("opus_6k", "reference", 6000.0, pesq_wb=2.5, mel=0.9),
               _summary("identity", "reference", None, pesq_wb=4.64, mel=0.0)]
    return EvalReport(settings={}, systems=systems, metrics=["mel", "pesq_wb"])


def test_rate_quality_figure_joins_presets_in_bitrate_order():
    fig = rate_quality_figure(_report())
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["PESQ-WB ↑", "Mel ↓"]  # panel order, only computed metrics
    lines = {line.get_label(): line for line in axes[0].lines}
    presets = lines["taae presets"]
    assert list(presets.get_xdata()) == [400.0, 700.0, 1000.0] and list(presets.get_ydata()) == [1.5, 1.9, 2.0]
    assert list(lines["opus_6k"].get_xdata()) == [6000.0]  # a point of its own, not joined to the presets
    assert list(lines["identity"].get_ydata()) == [4.64, 4.64]  # no bitrate: a horizontal line
    assert axes[0].get_xscale() == "log"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["taae presets", "opus_6k", "identity"]


def test_no_plot_without_bitrates(tmp_path):
    report = _report()
    report.systems = [s for s in report.systems if s.bitrate is None]
    assert write_rate_quality_plot(report, tmp_path / "p.png") is None
    assert not (tmp_path / "p.png").exists()
