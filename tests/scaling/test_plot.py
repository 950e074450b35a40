"""The table → fit → plot path on a synthetic study (no training): per-file values are read back paired by file,
the fit command recovers the law, and the plot writes a PNG and the CSV of exactly what it drew."""

import json

import matplotlib.image
import numpy as np
import pytest

from taae.scaling import files, table
from taae.scaling.__main__ import main
from taae.scaling.plot import PlotSettings, plot

SIZES = {"s": 1e6, "m": 4e6, "l": 1.6e7}
FILES = [f"utt{i}" for i in range(40)]


def law(n, family):
    return (30.0 * n**-0.25 + 1.0) if family == "taae" else (10.0 * n**-0.15 + 1.5)


@pytest.fixture
def study(tmp_path):
    rng = np.random.default_rng(0)
    results = []
    for family, flops_per_param in (("taae", 6.0), ("rvqgan", 90.0)):
        for rung, n in SIZES.items():
            per_file = tmp_path / family / rung / "per_file.csv"
            values = law(n, family) + rng.normal(0.0, 0.05, len(FILES))
            rows = [{"file": f, "system": f"{family}_700bps", "mel": v} for f, v in zip(FILES, values)]
            rows.append({"file": "utt0", "system": f"{family}_400bps", "mel": 99.0})  # another preset: ignored
            files.write_csv(per_file, ["file", "system", "mel"], rows)
            results.append({
                "family": family, "name": rung, "parameters": n, "train_flops_per_audio_second": flops_per_param * n,
                "budget": {"requested": "audio_seconds=10", "trained_batches": 5, "audio_seconds": 10.0,
                           "train_flops": 10.0 * flops_per_param * n, "wall_seconds": 1.0, "cpu_seconds": 2.0,
                           "met": True},
                "evaluation": {"per_file": str(per_file)},
                "presets": {"700bps": {"system": f"{family}_700bps", "bitrate": 700.0,
                                       "metrics": {"mel": {"mean": float(values.mean()), "std": 0.05,
                                                           "count": len(FILES)}}}},
            })
    return tmp_path, table.write(tmp_path, results)


def test_series_reads_each_rungs_files_paired_and_by_size(study):
    _, paths = study
    rows = table.read(paths["csv"])
    s = table.series(rows, "taae", "700bps", "mel", "train_flops")
    assert s.rungs == ["s", "m", "l"] and s.files == sorted(FILES) and s.per_file.shape == (3, len(FILES))
    np.testing.assert_allclose(s.per_file.mean(axis=1), [r["mel_mean"] for r in rows if r["family"] == "taae"])
    np.testing.assert_allclose(s.x, [60.0 * n for n in SIZES.values()])
    with pytest.raises(ValueError, match="no rows for family 'dac'"):
        table.series(rows, "dac", "700bps", "mel")


def test_fit_command_recovers_the_synthetic_exponents(study, capsys):
    _, paths = study
    args = ["fit", "--table", str(paths["csv"]), "--metric", "mel", "--preset", "700bps", "--num-boot", "200"]
    assert main(args) == 0
    record = json.loads((paths["csv"].parent / "fit_mel_700bps.json").read_text())
    saturating = {(f["family"], f["x"]): f for f in record["fits"] if f["offset"]}
    assert saturating["taae", "parameters"]["ci"]["b"][0] < -0.25 < saturating["taae", "parameters"]["ci"]["b"][1]
    assert saturating["rvqgan", "parameters"]["ci"]["b"][0] < -0.15 < saturating["rvqgan", "parameters"]["ci"]["b"][1]
    assert "taae mel at 700bps vs parameters: a·N^b + c" in capsys.readouterr().out


def test_fit_and_plot_leave_out_rungs_that_did_not_spend_their_budget(study, capsys):
    tmp, paths = study
    rows = files.read_csv(paths["csv"])
    for row in rows:  # the largest RVQGAN stopped early and diverged: its mel is far off the law
        if row["family"] == "rvqgan" and row["rung"] == "l":
            row["budget_met"] = "False"
    per_file = tmp / "rvqgan" / "l" / "per_file.csv"
    files.write_csv(per_file, ["file", "system", "mel"],
                    [{**r, "mel": 15.0} if r["system"] == "rvqgan_700bps" else r for r in files.read_csv(per_file)])
    files.write_csv(paths["csv"], list(rows[0]), rows)
    common = ["--table", str(paths["csv"]), "--metric", "mel", "--num-boot", "50"]
    assert main(["fit", *common, "--out", str(tmp / "fit.json")]) == 0
    assert "left out, budget not met (--include-unmet keeps them): rvqgan/l" in capsys.readouterr().out
    fits = json.loads((tmp / "fit.json").read_text())["fits"]
    rvqgan = [f for f in fits if f["family"] == "rvqgan"]
    assert rvqgan and all(f["rungs"] == ["s", "m"] and not f["offset"] for f in rvqgan)  # two sizes: a·N^b only
    assert all(f["b"] < 0 for f in rvqgan)  # mel falls with size; through the diverged rung it would rise
    assert main(["plot", *common, "--out", str(tmp / "kept")]) == 0
    assert {p["rung"] for p in files.read_csv(tmp / "kept.csv") if p["family"] == "rvqgan"} == {"s", "m"}
    assert main(["plot", *common, "--out", str(tmp / "all"), "--include-unmet"]) == 0
    assert {p["rung"] for p in files.read_csv(tmp / "all.csv") if p["family"] == "rvqgan"} == {"s", "m", "l"}


def test_plot_draws_both_axes_and_both_families(study):
    tmp, paths = study
    out = plot(table.read(paths["csv"]), tmp / "scaling", PlotSettings(metric="mel", preset="700bps", num_boot=100))
    image = matplotlib.image.imread(out["png"])
    assert image.ndim == 3 and image.shape[1] > image.shape[0]  # two panels side by side
    points = files.read_csv(out["csv"])
    assert {(p["axis"], p["family"]) for p in points} == {(a, f) for a in table.X_AXES for f in ("taae", "rvqgan")}
    for p in points:
        mean, low, high, fit = (float(p[k]) for k in ("mean", "ci_low", "ci_high", "fit"))
        assert low < mean < high and fit == pytest.approx(mean, abs=1e-6)  # three rungs: the law interpolates
        assert p["fit_form"] == "a·N^b + c"


def test_command_errors_are_one_line(tmp_path, capsys):
    assert main(["plot", "--table", str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err
    assert "error: ladder table not found" in err and err.count("\n") == 1
