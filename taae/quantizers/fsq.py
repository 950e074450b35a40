"""Finite scalar quantisation with TAAE's symmetric grid, per-item dither mix and exact int64 index math.

Implements §3 (Parker et al. 2024, arXiv 2411.19842 §3.2): the latent is bounded by b = tanh(z) and each
dimension is rounded to the symmetric L-point grid {-1 + 2k/(L-1)}, which holds ±1 (and 0 for odd L). Training
replaces hard rounding by the per-item mix of pass-through, straight-through and uniform noise (§3). Indices are
mixed radix with the first dimension least significant, computed in int64 (§3, §9 item 3): a float32 sum is
exact only up to 2^24, below 17^6 - 1 = 24 137 568.

One rounding rule serves quantisation, index math and the post-hoc residual stages (residual_fsq.py): round half
up, as in the paper's Eq. 1,

    digit = clamp(floor((L - 1)(x + 1)/2 + 1/2), 0, L - 1),        value = 2·digit/(L - 1) - 1.

The released code uses torch.round (half to even); the two differ only at exact ties, which the greedy residual
encoder does hit (§4), so the rule is fixed here once.

Shape legend: B batch, D latent dim, S frames.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from einops import rearrange, reduce
from torch import Tensor, nn

from taae.quantizers.token_spec import TokenSpec


def as_levels(name: str, levels: Sequence[int]) -> tuple[int, ...]:
    """Validate a sequence of level counts (integers >= 2) and return it as a tuple of ints."""
    values = tuple(levels)
    if not values or any(isinstance(v, bool) or int(v) != v or v < 2 for v in values):
        raise ValueError(f"{name} must be a non-empty sequence of integers >= 2, got {levels!r}")
    return tuple(int(v) for v in values)


def grid_digits(x: Tensor, levels: Tensor) -> Tensor:
    """Digit of the nearest grid point under round half up (Eq. 1), clamped to [0, L - 1].

    Args:
        x: values, nominally in [-1, 1], any float dtype; broadcastable with ``levels``.
        levels: integer tensor of level counts L.

    Returns:
        int64 digits with the broadcast shape of ``x`` and ``levels``.
    """
    # Eq. 1 as floor((L-1)x/2 + L/2) = floor((L-1)x/2 + c) + L//2 with c = 1/2 for odd L and 0 for even L.
    # (L-1)x/2 is exact in float64 for float32/bf16 x, and adding c cannot round across an integer, so a tie
    # always goes up and a value next to a tie never does (even for |x| < 2^-53, where x + 1 would round).
    # Clamping x to [-1, 1] first is the same as clamping the digit to [0, L-1], and keeps inf in range.
    u = x.detach().to(torch.float64, copy=True).clamp_(-1.0, 1.0)
    u = u.mul_((levels - 1).to(torch.float64) / 2).add_((levels % 2).to(torch.float64) / 2).floor_()
    return u.to(torch.int64).add_(levels // 2)


def grid_values(digits: Tensor, levels: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """Grid value 2·digit/(L - 1) - 1 of integer ``digits``, formed in float64 and cast to ``dtype``."""
    lm1 = (levels - 1).to(torch.float64)
    # One division of two exact integers: correctly rounded, so every caller gets the same bits for a digit.
    return digits.to(torch.float64, copy=True).mul_(2).sub_(lm1).div_(lm1).to(dtype)


def _upcast(x: Tensor) -> Tensor:
    # §3: quantise in float32 or wider. bf16 keeps 8 significant bits, too few for tanh near ±1 and for the
    # residual stages (docs/architecture.md §4), so lower precision is up-cast and the codes stay float32.
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _straight_through(quantized: Tensor, b: Tensor) -> Tensor:
    # b + sg(Q(b) - b) written as Q(b) + (b - sg(b)): the same unit gradient, but b - b is exactly 0, so the
    # values are the grid's bits exactly (b + (Q - b) can land one ulp off the grid).
    return quantized + (b - b.detach())


class FSQ(nn.Module):
    """TAAE's finite scalar quantiser on a channel-first latent (B, D, S).

    Args:
        levels: grid size L per latent dimension; the paper's model uses 17 levels on 6 dimensions (§3).
        dither_prob: the Bernoulli probability p of both per-item masks of §3 (the reference code's
            ``noise_dropout``). An item is passed through with probability p², straight-through quantised with
            p(1 - p) and noised with 1 - p; at the paper's p = 0.5 that is 25% / 25% / 50%. Beware: noise goes
            where the second mask is off, so its share grows as p falls (the reference wrapper's p = 0.05 gives
            95% noise, §9 item 4).
        random_levels: optional set of grid sizes (the paper's {5, 9, 17}) sampled during training. Each batch item
            draws one L uniformly and every dimension of that item uses it; the paper does not state the
            granularity or the probabilities (§3, NF), so per item and uniform are ours. Both the grid and the
            noise width follow the sampled L. Evaluation always uses ``levels``.

    Codes come back as float32 (float64 when the input is float64); the quantiser runs with autocast disabled.
    The codebook is never materialised: ``codebook_size`` is a plain int and indices are computed arithmetically.
    """

    def __init__(
        self,
        levels: Sequence[int] = (17,) * 6,
        dither_prob: float = 0.5,  # §3, p = 0.5
        random_levels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.levels = as_levels("levels", levels)
        if not 0.0 <= dither_prob <= 1.0:
            raise ValueError(f"dither_prob must lie in [0, 1], got {dither_prob}")
        self.dither_prob = float(dither_prob)
        self.random_levels = None if random_levels is None else as_levels("random_levels", random_levels)
        self.dim = len(self.levels)
        self.codebook_size = math.prod(self.levels)
        basis = [math.prod(self.levels[:d]) for d in range(self.dim)]  # first dimension least significant
        # Non-persistent int64 buffers: they follow .to(device) but keep the state dict empty.
        self.register_buffer("_levels", rearrange(torch.tensor(self.levels), "d -> d 1"), persistent=False)
        self.register_buffer("_basis", rearrange(torch.tensor(basis), "d -> d 1"), persistent=False)
        random_levels = torch.tensor(self.random_levels or (), dtype=torch.int64)
        self.register_buffer("_random_levels", random_levels, persistent=False)

    @property
    def step(self) -> tuple[float, ...]:
        """Grid step Δ = 2/(L - 1) per dimension (0.125 for 17 levels)."""
        return tuple(2.0 / (L - 1) for L in self.levels)

    def token_spec(self, frame_rate: float, name: str = "native") -> TokenSpec:
        """One token of ``codebook_size`` values per frame: the native (unsplit) FSQ bitrate."""
        return TokenSpec(name, (self.codebook_size,), frame_rate)

    @staticmethod
    def bound(z: Tensor) -> Tensor:
        """Plain tanh (§3), without the epsilon and even-L shift of Mentzer et al.'s bound."""
        return torch.tanh(z)

    def forward(self, z: Tensor) -> Tensor:
        """Bound and quantise: ``quantize(tanh(z))``.

        Args:
            z: (B, D, S) unbounded latent.

        Returns:
            (B, D, S) codes: on the grid in eval mode, the dither mix in train mode.
        """
        self._check_shape(z, "z")
        with torch.autocast(z.device.type, enabled=False):
            # tanh runs after the up-cast, so a bf16 latent is bounded in float32 as well.
            return self.quantize(self.bound(_upcast(z)))

    def quantize(self, b: Tensor) -> Tensor:
        """Quantise a bounded latent b in [-1, 1]; hard rounding in eval mode, the §3 dither mix in train mode.

        Args:
            b: (B, D, S) bounded latent, e.g. ``tanh(z)``.

        Returns:
            (B, D, S) float32 (or float64) codes; gradients reach ``b`` with slope 1 on every path, including
            eval-mode rounding (straight-through).
        """
        self._check_shape(b, "b")
        with torch.autocast(b.device.type, enabled=False):
            b = _upcast(b)
            if not self.training:
                return _straight_through(grid_values(grid_digits(b, self._levels), self._levels, b.dtype), b)
            return self._dither(b)

    def _dither(self, b: Tensor) -> Tensor:
        B = b.shape[0]
        levels = self._levels  # (D, 1)
        if self.random_levels is not None:
            choice = torch.randint(len(self.random_levels), (B,), device=b.device)
            levels = rearrange(self._random_levels[choice], "b -> b 1 1")  # one L per item, shared by all dims
        quantized = grid_values(grid_digits(b, levels), levels, b.dtype)
        step = (2.0 / (levels - 1)).to(b.dtype)

        # §3 step 1: m1 keeps b, otherwise the straight-through quantiser b + sg(Q(b) - b).
        keep = self._item_mask(B, b)
        out = torch.where(keep, b, _straight_through(quantized, b))
        # §3 step 2: where an independent m2 is 0, uniform noise of one step's width replaces the result.
        noise = (torch.rand_like(b) - 0.5) * step  # U[-Δ/2, Δ/2)
        return torch.where(self._item_mask(B, b), out, b + noise)

    def _item_mask(self, batch: int, like: Tensor) -> Tensor:
        # One Bernoulli(p) draw per batch item, broadcast over dims and frames (§3; vqp draws per element).
        return torch.rand(batch, 1, 1, device=like.device) < self.dither_prob

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Mixed-radix index of each frame's code, first dimension least significant.

        Args:
            codes: (B, D, S) grid values (off-grid values are rounded with the same half-up rule).

        Returns:
            (B, S) int64 indices in [0, codebook_size).
        """
        self._check_shape(codes, "codes")
        if not codes.dtype.is_floating_point:
            raise TypeError(f"codes must be a float tensor, got {codes.dtype}")
        if not torch.isfinite(codes).all():
            raise ValueError("codes hold NaN or infinite values; they have no index")
        # Digits become int64 before they meet the int64 basis: no float sum ever holds an index (§9 item 3).
        digits = grid_digits(codes, self._levels)  # (B, D, S)
        return reduce(digits * self._basis, "b d s -> b s", "sum")

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Inverse of :meth:`codes_to_indices`.

        Args:
            indices: (B, S) integer indices in [0, codebook_size).

        Returns:
            (B, D, S) float32 codes.
        """
        if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
            raise TypeError(f"indices must be an integer tensor, got {indices.dtype}")
        if indices.dim() != 2:
            raise ValueError(f"indices must have shape (B, S), got {tuple(indices.shape)}")
        indices = indices.to(torch.int64)
        bad = (indices < 0) | (indices >= self.codebook_size)
        if bad.any():
            b, s = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"FSQ index out of range at item {b}, frame {s}: {int(indices[b, s])}, "
                f"allowed 0..{self.codebook_size - 1}"
            )
        digits = (rearrange(indices, "b s -> b 1 s") // self._basis) % self._levels  # (B, D, S)
        return grid_values(digits, self._levels, torch.float32)

    def _check_shape(self, x: Tensor, name: str) -> None:
        if x.dim() != 3 or x.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (B, {self.dim}, S), got {tuple(x.shape)}")

    def extra_repr(self) -> str:
        return f"levels={self.levels}, dither_prob={self.dither_prob}, random_levels={self.random_levels}"
