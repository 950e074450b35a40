"""GAN objectives and feature matching on hand-made discriminator outputs with hand-computed values."""

from __future__ import annotations

import pytest
import torch

from taae.losses.adversarial import discriminator_loss, feature_matching_loss, generator_adversarial_loss


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


@pytest.fixture
def logits():
    # two sub-discriminators; a feature map first, then the logits; only the logits may matter
    real = [[t(100.0), t(0.5, 2.0)], [t(-100.0), t(-1.0)]]
    fake = [[t(-100.0), t(0.0, -2.0)], [t(100.0), t(3.0)]]
    return real, fake


def test_lsgan_discriminator_loss(logits):
    real, fake = logits
    # d1: mean(0², (−2)²) = 2, mean(0.5², (−1)²) = 0.625;  d2: 3² = 9, (1 − (−1))² = 4
    assert discriminator_loss(real, fake, kind="lsgan").item() == pytest.approx(2 + 0.625 + 9 + 4)
    assert discriminator_loss(real, fake, kind="lsgan", reduction="mean").item() == pytest.approx(15.625 / 2)


def test_hinge_discriminator_loss(logits):
    real, fake = logits
    # d1: mean(relu(0.5), relu(−1)) = 0.25, mean(relu(1), relu(−1)) = 0.5;  d2: relu(2) = 2, relu(4) = 4
    assert discriminator_loss(real, fake, kind="hinge").item() == pytest.approx(0.25 + 0.5 + 2 + 4)


def test_generator_losses(logits):
    _, fake = logits
    # lsgan: mean((1 − 0)², (1 + 2)²) = 5, (1 − 3)² = 4;  hinge: −mean(0, −2) = 1, −3
    assert generator_adversarial_loss(fake, kind="lsgan").item() == pytest.approx(9.0)
    assert generator_adversarial_loss(fake, kind="hinge").item() == pytest.approx(-2.0)
    assert generator_adversarial_loss(fake, kind="hinge", reduction="mean").item() == pytest.approx(-1.0)


def test_unknown_kind_or_reduction_raises(logits):
    real, fake = logits
    with pytest.raises(ValueError, match="allowed: hinge, lsgan"):
        discriminator_loss(real, fake, kind="wgan")
    with pytest.raises(ValueError, match="allowed: hinge, lsgan"):
        generator_adversarial_loss(fake, kind="relativistic")
    with pytest.raises(ValueError, match="reduction"):
        discriminator_loss(real, fake, reduction="max")


@pytest.fixture
def features():
    real = [[t(1.0, -1.0), t(2.0, 2.0), t(50.0)], [t(4.0), t(-50.0)]]
    fake = [[t(0.0, 0.0), t(2.0, 4.0), t(-50.0)], [t(1.0), t(50.0)]]
    return real, fake


def test_feature_matching_normalised_and_not(features):
    real, fake = features
    eps = 1e-3
    # layer distances 1, 1, 3; mean|real| 1, 2, 4; the logits (±50) are excluded
    disc1 = (1 / (1 + eps) + 1 / (2 + eps)) / 2
    disc2 = 3 / (4 + eps)
    assert feature_matching_loss(real, fake, normalize=True).item() == pytest.approx((disc1 + disc2) / 2)
    assert feature_matching_loss(real, fake, normalize=False).item() == pytest.approx(1 + 1 + 3)


def test_feature_matching_detaches_real(features):
    real, fake = features
    real = [[f.clone().requires_grad_(True) for f in d] for d in real]
    fake = [[f.clone().requires_grad_(True) for f in d] for d in fake]
    feature_matching_loss(real, fake).backward()
    assert all(f.grad is None for d in real for f in d)
    assert fake[0][0].grad is not None and fake[0][0].grad.abs().sum() > 0
    assert fake[0][-1].grad is None  # logits take no part


def test_discriminator_loss_gradients_reach_both_branches(logits):
    real, fake = logits
    real = [[f.clone().requires_grad_(True) for f in d] for d in real]
    fake = [[f.clone().requires_grad_(True) for f in d] for d in fake]
    discriminator_loss(real, fake, kind="lsgan").backward()
    assert real[0][-1].grad is not None and fake[0][-1].grad is not None
    assert real[0][0].grad is None


def test_mismatched_structures_raise(features):
    real, fake = features
    with pytest.raises(ValueError, match="sub-discriminator"):
        feature_matching_loss(real, fake[:1])
    with pytest.raises(ValueError, match="feature maps"):
        feature_matching_loss(real, [fake[0][1:], fake[1]])
