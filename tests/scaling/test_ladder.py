import pytest

from taae.scaling.ladder import ROOT, fit_power_law, ladder


def test_power_law_fit_recovers_a_known_exponent():
    sizes = [25e6, 75e6, 240e6, 950e6]
    values = [3.0 * n**-0.12 for n in sizes]
    law = fit_power_law(sizes, values)
    assert law.exponent == pytest.approx(-0.12, abs=1e-9)
    assert law.coefficient == pytest.approx(3.0, rel=1e-9)
    assert law.r2 == pytest.approx(1.0)
    assert law(500e6) == pytest.approx(3.0 * 500e6**-0.12)


def test_power_law_rejects_bad_input():
    with pytest.raises(ValueError, match="two"):
        fit_power_law([1e6], [1.0])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1e6, 2e6], [1.0, -1.0])


def test_ladder_is_ordered_by_size_and_compute():
    rows = ladder(ROOT / "configs/taae/recipe.yaml", sorted((ROOT / "configs/taae/ladder").glob("*.yaml")))
    rows.sort(key=lambda r: r["parameters"])
    assert [r["size"] for r in rows] == ["25m", "75m", "240m", "540m", "950m"]
    flops = [r["train_tflops_per_audio_second"] for r in rows]
    assert flops == sorted(flops)
