"""Exponential moving average of the generator's weights (export prefers these, §6).

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """A frozen copy of ``model`` whose weights track it with decay min(β, 1 − (1 + step)^−power).

    The warm-up term lets the average follow the fast early changes (β = 0.9999 alone would keep the random
    init for ~10k steps); β and power 3/4 are the released code's values (§6). ``step`` is a buffer, so a
    resumed run continues the same schedule.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, power: float = 0.75):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.power = power
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True):  # the average is never trained, and never dithers
        return super().train(False)

    def current_decay(self) -> float:
        return min(self.decay, 1.0 - (1.0 + int(self.step)) ** -self.power)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        for ema_p, p in zip(self.model.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)
        self.step += 1
