"""Loss combination at the generator output: the plain weighted sum equals ordinary backprop, and the balancer
gives each term the share of the output gradient its weight asks for, whatever the term's scale."""

import pytest
import torch

from taae.training.balancer import GradientBalancer, WeightedSum, output_gradients


def _terms(y: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    # Two terms whose raw output gradients differ by ~10^6 in norm, like waveform L1 vs 15·mel at init.
    return {"big": 1e4 * (y - target).square().mean(), "small": 1e-2 * (y - target.flip(-1)).abs().mean()}


@pytest.mark.parametrize("per_item", [False, True])
def test_balancer_shares_follow_the_weights_whatever_the_scale(per_item):
    torch.manual_seed(0)
    balancer = GradientBalancer(total_norm=1.0, ema_decay=0.9, per_item=per_item, terms=("big", "small"))
    weights = {"big": 0.3, "small": 0.7}
    raw_ratio = None
    for step in range(20):
        y = torch.randn(4, 1, 800, requires_grad=True)
        target = torch.randn(4, 1, 800)
        grads = output_gradients(_terms(y, target), y)
        raw_ratio = float(grads["big"].norm() / grads["small"].norm())
        combined = balancer(grads, weights)
        balancer.commit(combined)
        for name, weight in weights.items():
            assert combined.shares[name] == pytest.approx(weight, rel=0.05), (step, name, combined.shares)
        assert sum(combined.shares.values()) == pytest.approx(1.0)
    assert raw_ratio > 1e4  # the terms really are of very different scale
    # The combined gradient keeps the norm it aims at (each term's part has norm share·R, nearly orthogonal).
    norm = combined.gradient.flatten(1).norm(dim=1).mean() if per_item else combined.gradient.norm()
    assert 0.7 < float(norm) < 1.0 + 1e-6


def test_weighted_sum_reports_raw_shares_and_equals_the_gradient_of_the_weighted_loss():
    torch.manual_seed(0)
    y = torch.randn(2, 1, 400, requires_grad=True)
    target = torch.randn(2, 1, 400)
    weights = {"big": 2.0, "small": 5.0}
    combined = WeightedSum()(output_gradients(_terms(y, target), y), weights)
    terms = _terms(y, target)
    (expected,) = torch.autograd.grad(sum(weights[k] * v for k, v in terms.items()), y)
    torch.testing.assert_close(combined.gradient, expected, rtol=1e-6, atol=0)
    assert combined.shares["big"] > 0.999  # unbalanced, the large-scale term takes everything
    assert combined.weights == weights


def test_balancer_state_is_a_buffer_and_survives_a_state_dict_round_trip():
    a = GradientBalancer(ema_decay=0.5, terms=("mel", "waveform"))
    y = torch.randn(2, 1, 100, requires_grad=True)
    a.commit(a(output_gradients({"mel": y.square().sum(), "waveform": y.abs().sum()}, y),
               {"mel": 1.0, "waveform": 1.0}))
    b = GradientBalancer(ema_decay=0.5, terms=("mel", "waveform"))
    b.load_state_dict(a.state_dict())
    assert b.average_norms() == a.average_norms() and len(a.average_norms()) == 2


def test_balancer_refuses_undeclared_terms_and_zero_total_weight():
    balancer = GradientBalancer(terms=("mel",))
    y = torch.randn(1, 1, 10, requires_grad=True)
    grads = output_gradients({"stft": y.sum()}, y)
    with pytest.raises(ValueError, match="stft"):
        balancer(grads, {"stft": 1.0})
    with pytest.raises(ValueError, match="sum to 0"):
        balancer(output_gradients({"mel": y.sum()}, y), {"mel": 0.0})
    with pytest.raises(ValueError, match="ema_decay"):
        GradientBalancer(ema_decay=1.0)


def test_a_proposal_changes_nothing_until_committed_and_non_finite_norms_are_refused():
    # Bug (main): forward() folded every step's norms into the averages at once, a non-finite one included.
    balancer = GradientBalancer(ema_decay=0.5, terms=("mel", "waveform"))
    y = torch.randn(2, 1, 100, requires_grad=True)
    weights = {"mel": 1.0, "waveform": 1.0}
    balancer.commit(balancer(output_gradients({"mel": y.square().sum(), "waveform": y.abs().sum()}, y), weights))
    before = {k: v.clone() for k, v in balancer.state_dict().items()}
    grads = output_gradients({"mel": y.square().sum(), "waveform": y.abs().sum()}, y)
    grads["waveform"][0, 0, 0] = float("inf")
    combined = balancer(grads, weights)
    assert not torch.isfinite(combined.gradient).all()  # what the module's finite check sees, and skips
    assert all(torch.equal(before[k], v) for k, v in balancer.state_dict().items())
    with pytest.raises(ValueError, match="non-finite norms"):
        balancer.commit(combined)
    # A term absent from a step keeps its average (e.g. adversarial terms during the warm-up).
    balancer.commit(balancer({"mel": grads["mel"]}, weights))
    kept = float(before["_norm_sum"][1] / before["_weight_sum"][1])
    assert balancer.average_norms()["waveform"] == pytest.approx(kept)
