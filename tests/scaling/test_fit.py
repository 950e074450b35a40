"""Scaling-law fits: exact recovery without noise, known exponent and offset inside the bootstrap interval with
noise, a paired bootstrap that is not fooled by file difficulty, and the input checks."""

import numpy as np
import pytest

from taae.scaling.fit import bootstrap_fit, bootstrap_means, fit_power_law

SIZES = np.array([1e6, 3e6, 1e7, 3e7, 1e8])
A, B, C = 40.0, -0.3, 1.0  # mel-like: falls with size towards a floor of 1.0


def law(n, a=A, b=B, c=C):
    return a * n**b + c


@pytest.mark.parametrize("offset", [True, False])
def test_noise_free_data_give_the_law_back(offset):
    values = law(SIZES, c=C if offset else 0.0)
    fit = fit_power_law(SIZES, values, offset=offset)
    assert fit.b == pytest.approx(B, abs=1e-6)
    assert fit.a == pytest.approx(A, rel=1e-5)
    assert fit.c == pytest.approx(C if offset else 0.0, abs=1e-6)
    assert fit.rmse < 1e-8 and not fit.at_bound
    np.testing.assert_allclose(fit(SIZES), values, rtol=1e-8)


def test_three_sizes_determine_the_saturating_law_and_either_sign_works():
    fit = fit_power_law(SIZES[:3], -law(SIZES[:3]))  # SI-SDR-like: rises with size
    assert (fit.a, fit.b, fit.c) == pytest.approx((-A, B, -C), rel=1e-5)


def test_known_exponent_and_offset_lie_inside_the_bootstrap_interval():
    rng = np.random.default_rng(0)
    per_file = law(SIZES)[:, None] + rng.normal(0.0, 0.3, size=(len(SIZES), 300))  # (R, F)
    fit = bootstrap_fit(SIZES, per_file, offset=True, num_boot=400, seed=1)
    assert fit.ci["b"][0] < B < fit.ci["b"][1]
    assert fit.ci["c"][0] < C < fit.ci["c"][1]
    assert fit.ci["a"][0] < A < fit.ci["a"][1]
    assert fit.ci["b"][1] - fit.ci["b"][0] < 0.4  # informative, not a vacuous interval
    assert fit.ci["b"][1] < 0  # "no scaling" (b = 0) is excluded
    assert fit.num_boot == 400 and fit.num_files == 300

    plain = bootstrap_fit(SIZES, law(SIZES, c=0.0)[:, None] + rng.normal(0.0, 0.3, (len(SIZES), 300)),
                          offset=False, num_boot=400, seed=1)
    assert plain.ci["b"][0] < B < plain.ci["b"][1] and "c" not in plain.ci


def test_the_bootstrap_keeps_files_paired_across_rungs():
    """A per-file difficulty shared by all rungs moves every rung together: it must not widen the interval."""
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0.0, 2.0, size=300)
    per_file = law(SIZES)[:, None] + difficulty + rng.normal(0.0, 0.02, size=(len(SIZES), 300))
    fit = bootstrap_fit(SIZES, per_file, offset=True, num_boot=300)
    assert fit.ci["b"][1] - fit.ci["b"][0] < 0.1
    assert fit.ci["b"][0] < B < fit.ci["b"][1]
    # the means of one resample all shift by the same mean difficulty
    draws = bootstrap_means(per_file, 5, seed=0)
    spread = draws - law(SIZES)
    assert np.ptp(spread, axis=1).max() < 0.05 < np.abs(spread).max()


def test_failed_files_are_left_out_of_each_rung_mean():
    per_file = np.tile(law(SIZES)[:, None], (1, 4))
    per_file[1, 2] = np.nan
    fit = bootstrap_fit(SIZES, per_file, num_boot=50)
    assert fit.b == pytest.approx(B, abs=1e-6) and fit.ci["b"] == pytest.approx((B, B), abs=1e-6)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="at least 3 sizes"):
        fit_power_law(SIZES[:2], law(SIZES[:2]), offset=True)
    with pytest.raises(ValueError, match="at least 2 sizes"):
        fit_power_law(SIZES[:1], law(SIZES[:1]), offset=False)
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([0.0, 1e6, 2e6], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="distinct"):
        fit_power_law([1e6, 1e6, 2e6], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="finite"):
        fit_power_law(SIZES, [1.0, np.nan, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="pair up"):
        fit_power_law(SIZES, [1.0, 2.0])
    with pytest.raises(ValueError, match="level"):
        bootstrap_fit(SIZES, np.ones((5, 3)), level=1.5)
    with pytest.raises(ValueError, match="at least one finite"):
        bootstrap_fit(SIZES, np.full((5, 3), np.nan))
