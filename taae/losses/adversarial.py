"""GAN objectives and feature matching over the outputs of taae's discriminators.

Every discriminator in ``taae.models.discriminators`` returns ``list[list[Tensor]]``: one list per
sub-discriminator, holding its feature maps with the logit map last. The functions here read that structure.

- LSGAN (DAC, §7): D = Σ_d mean(D(x̂)²) + mean((1 − D(x))²), G = Σ_d mean((1 − D(x̂))²).
- Hinge (stable-audio-tools' default, §6): D = Σ_d mean(relu(1 − D(x))) + mean(relu(1 + D(x̂))),
  G = Σ_d −mean(D(x̂)). stable-audio-tools divides both by the number of sub-discriminators: ``reduction="mean"``.
- Feature matching: DAC's plain L1 sum (§7), or the normalised form of TAAE's code (§6).

The caller detaches the fake audio for the discriminator step; real features are detached here.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import torch
from torch import Tensor

GAN_KINDS = ("hinge", "lsgan")
REDUCTIONS = ("sum", "mean")

# helper functions


def _check(kind: str, reduction: str) -> None:
    if kind not in GAN_KINDS:
        raise ValueError(f"unknown GAN loss kind {kind!r}; allowed: {', '.join(GAN_KINDS)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; allowed: {', '.join(REDUCTIONS)}")


def _logits(outputs: list[list[Tensor]]) -> list[Tensor]:
    if not outputs or any(not features for features in outputs):
        raise ValueError("expected one non-empty feature list per sub-discriminator")
    return [features[-1].float() for features in outputs]


def _reduce(terms: list[Tensor], reduction: str) -> Tensor:
    total = torch.stack(terms).sum()
    return total / len(terms) if reduction == "mean" else total


# main functions


def discriminator_loss(
    real: list[list[Tensor]], fake: list[list[Tensor]], kind: str = "hinge", reduction: str = "sum"
) -> Tensor:
    """Discriminator objective over all sub-discriminators; only each list's last element (the logits) is used.

    Args:
        real: discriminator outputs for real audio.
        fake: discriminator outputs for generated audio (computed from detached audio by the caller).
        kind: "hinge" or "lsgan".
        reduction: "sum" over sub-discriminators (DAC) or "mean" (stable-audio-tools).
    """
    _check(kind, reduction)
    real_logits, fake_logits = _logits(real), _logits(fake)
    if len(real_logits) != len(fake_logits):
        raise ValueError(f"{len(real_logits)} real vs {len(fake_logits)} fake sub-discriminator outputs")
    terms = []
    for d_real, d_fake in zip(real_logits, fake_logits):
        if kind == "lsgan":
            terms.append(d_fake.square().mean() + (1 - d_real).square().mean())
        else:
            terms.append(torch.relu(1 - d_real).mean() + torch.relu(1 + d_fake).mean())
    return _reduce(terms, reduction)


def generator_adversarial_loss(fake: list[list[Tensor]], kind: str = "hinge", reduction: str = "sum") -> Tensor:
    """Generator objective: LSGAN Σ_d mean((1 − D(x̂))²) or hinge Σ_d −mean(D(x̂))."""
    _check(kind, reduction)
    if kind == "lsgan":
        terms = [(1 - d_fake).square().mean() for d_fake in _logits(fake)]
    else:
        terms = [-d_fake.mean() for d_fake in _logits(fake)]
    return _reduce(terms, reduction)


def feature_matching_loss(
    real: list[list[Tensor]], fake: list[list[Tensor]], normalize: bool = True, eps: float = 1e-3
) -> Tensor:
    """L1 distance between real and fake feature maps, every map but the last (the logits).

    Args:
        real: discriminator outputs for real audio; detached here, so no gradient reaches the real branch.
        fake: discriminator outputs for generated audio.
        normalize: True: TAAE's code (§6), per layer mean|f_real − f_fake| / (mean|f_real| + eps),
            averaged over layers within a sub-discriminator, then over sub-discriminators. False: DAC
            (§7), Σ over sub-discriminators and layers of mean|f_real − f_fake|.
        eps: denominator floor of the normalised form (stable-audio-tools' 1e-3).
    """
    if len(real) != len(fake):
        raise ValueError(f"{len(real)} real vs {len(fake)} fake sub-discriminator outputs")
    per_disc = []
    for feats_real, feats_fake in zip(real, fake):
        if len(feats_real) != len(feats_fake):
            raise ValueError(f"{len(feats_real)} real vs {len(feats_fake)} fake feature maps in a sub-discriminator")
        layers = []
        for f_real, f_fake in zip(feats_real[:-1], feats_fake[:-1]):
            f_real, f_fake = f_real.detach().float(), f_fake.float()
            dist = (f_real - f_fake).abs().mean()
            layers.append(dist / (f_real.abs().mean() + eps) if normalize else dist)
        if layers:
            per_disc.append(torch.stack(layers).mean() if normalize else torch.stack(layers).sum())
    if not per_disc:
        raise ValueError("no feature maps to match: every sub-discriminator returned only its logits")
    total = torch.stack(per_disc)
    return total.mean() if normalize else total.sum()
