"""Post-hoc residual FSQ: re-quantise a trained FSQ latent with a stack of coarser grids, without retraining.

Implements §4 (Parker et al. 2024, Eqs. 3-4, Table 1). Stage k has L_k levels per dimension and a scale
s_k; starting from the bounded latent r_0 = tanh(z), each stage rounds its residual to the grid s_k·ℓ_{L_k}:

    q_k = s_k · grid_{L_k}(r_{k-1} / s_k),      r_k = r_{k-1} - q_k,      decode = clip(Σ_k q_k, -1, 1).

With s_0 = 1 and s_{k+1} = s_k / (L_k - 1) the stage grids sum to a finer grid: [5, 5] at scales (1, 1/4) and
[3, 3, 3, 3] at (1, 1/2, 1/4, 1/8) both reproduce the 17-level training grid exactly, so the decoder sees the same
codes at 700 or 1000 bps as at the native rate.

Numerics: the residuals are float64 and tokens are int64 mixed-radix indices (first dimension least significant)
that never pass through float32 (§9 item 3). Rounding is round half up, shared with fsq.py: the greedy encoder
meets exact ties (0.25 against the 5-level step 0.5 rounds up to 0.5 and leaves -0.25 for the next stage), and a
fixed rule keeps the tokens deterministic. Tokens are also made canonical (see ``encode``): greedy rounding of a
raw latent can reach one decoded value through two token tuples. Unlike the released code, decode clips the sum
to [-1, 1] (§9 item 4) and checks every token's range.

Shape legend: B batch, D latent dim, S frames, K stages.

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from einops import rearrange, reduce, repeat
from torch import Tensor, nn

from taae.quantizers.fsq import as_levels, grid_digits, grid_values
from taae.quantizers.token_spec import TokenSpec

# Official stable-codec presets, stages as (levels per dimension, scale) (§4 table).
PRESETS: dict[str, list[tuple[list[int], float]]] = {
    # Not a decomposition: one coarser 6-level grid {±1, ±0.6, ±0.2}, tolerated because training saw L >= 5.
    "1x46656_400bps": [([6] * 6, 1.0)],
    "2x15625_700bps": [([5] * 6, 1.0), ([5] * 6, 0.25)],
    "4x729_1000bps": [([3] * 6, 1.0), ([3] * 6, 0.5), ([3] * 6, 0.25), ([3] * 6, 0.125)],
}
PRESET_ALIASES: dict[str, str] = {"400bps": "1x46656_400bps", "700bps": "2x15625_700bps", "1000bps": "4x729_1000bps"}


class PostHocResidualFSQ(nn.Module):
    """A residual stack of FSQ grids applied to a bounded latent (B, D, S), emitting K tokens per frame.

    Args:
        stages: ``[(levels, scale), ...]``, one pair per stage; ``levels`` is an int (used on every dimension) or
            one int per dimension, ``scale`` the stage's range s_k > 0.
        dim: latent dimension D (6 in the paper).
        allow_lossy: accept stages that cannot cover the previous stage's residual (see below) instead of raising.
        name: the preset name reported in token specs and error messages.

    Coverage: the first grid must reach ±1 (s_0 >= 1) and each later grid must span the worst-case residual of
    the one before, s_{k+1} >= s_k / (L_k - 1) (half of stage k's step). A stage set that breaks this silently
    clips residuals: the official code accepts it and yields out-of-range digits (§9 item 4).
    """

    def __init__(
        self,
        stages: Sequence[tuple[int | Sequence[int], float]],
        dim: int = 6,
        allow_lossy: bool = False,
        name: str = "custom",
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if len(stages) == 0:
            raise ValueError("stages must hold at least one (levels, scale) pair, got none")
        parsed = []
        for k, stage in enumerate(stages):
            if len(stage) != 2:
                raise ValueError(f"stage {k} must be a (levels, scale) pair, got {stage!r}")
            levels, scale = stage
            if isinstance(levels, numbers.Integral):
                levels = [levels] * dim
            levels = as_levels(f"levels of stage {k}", levels)
            if len(levels) != dim:
                raise ValueError(f"levels of stage {k} must give one value per dimension (dim={dim}), got {levels}")
            if not (math.isfinite(scale) and scale > 0):
                raise ValueError(f"scale of stage {k} must be a finite number > 0, got {scale}")
            parsed.append((levels, float(scale)))
        self.stages: tuple[tuple[tuple[int, ...], float], ...] = tuple(parsed)
        self.dim = dim
        self.name = name
        if not allow_lossy:
            self._check_coverage()

        self.scales = tuple(scale for _, scale in self.stages)
        self.vocab_sizes = tuple(math.prod(levels) for levels, _ in self.stages)
        bases = [[math.prod(levels[:d]) for d in range(dim)] for levels, _ in self.stages]
        levels_kd = torch.tensor([levels for levels, _ in self.stages])
        self.register_buffer("_levels", rearrange(levels_kd, "k d -> k d 1"), persistent=False)
        self.register_buffer("_basis", rearrange(torch.tensor(bases), "k d -> k d 1"), persistent=False)

    def _check_coverage(self) -> None:
        first = self.stages[0][1]
        if first < 1:
            raise ValueError(
                f"stage 0 (scale {first:g}) cannot reach the latent range ±1: short by {1 - first:g}; "
                "use a first scale >= 1 or pass allow_lossy=True"
            )
        for k in range(1, len(self.stages)):
            (levels, prev_scale), scale = self.stages[k - 1], self.stages[k][1]
            residual = prev_scale / (min(levels) - 1)  # half of stage k-1's coarsest step
            if scale < residual:
                raise ValueError(
                    f"stage {k} (scale {scale:g}) cannot cover the residual of stage {k - 1}, which reaches "
                    f"±{residual:g} (scale {prev_scale:g}, {min(levels)} levels): short by {residual - scale:g}; "
                    f"use a scale >= {residual:g} or pass allow_lossy=True"
                )

    @classmethod
    def from_preset(cls, name: str) -> PostHocResidualFSQ:
        """Build a named preset (``PRESETS`` or one of ``PRESET_ALIASES``)."""
        canonical = PRESET_ALIASES.get(name, name)
        if canonical not in PRESETS:
            known = ", ".join([*PRESETS, *PRESET_ALIASES])
            raise ValueError(f"unknown residual FSQ preset {name!r}; known presets: {known}")
        stages = PRESETS[canonical]
        return cls(stages, dim=len(stages[0][0]), name=canonical)

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def token_spec(self, frame_rate: float, name: str | None = None) -> TokenSpec:
        """Vocabulary per token and frame rate, as the codec and file format describe a preset."""
        return TokenSpec(name or self.name, self.vocab_sizes, frame_rate)

    @property
    def bits_per_frame(self) -> int:
        """Whole bits per token (⌈log2⌉, the paper's convention, §2), summed over the stages."""
        return self.token_spec(0.0).bits_per_frame

    @property
    def exact_bits_per_frame(self) -> float:
        return self.token_spec(0.0).exact_bits_per_frame

    def bitrate(self, frame_rate: float) -> float:
        """Nominal bits per second (⌈log2⌉ convention): 400 / 700 / 1000 for the presets at 25 Hz."""
        return self.token_spec(frame_rate).bitrate

    def exact_bitrate(self, frame_rate: float) -> float:
        """Information-theoretic bits per second: 387.7 / 696.6 / 951.0 for the presets at 25 Hz."""
        return self.token_spec(frame_rate).exact_bitrate

    @torch.no_grad()
    def encode(self, codes: Tensor) -> Tensor:
        """Residual encoding with canonical tokens.

        Greedy encoding alone can give one decoded value two token tuples: with the 700 bps preset 0.2 becomes
        (0, +0.25) while 0.25 becomes (0.5, -0.25) (a tie, rounded up), and both decode to 0.25. So the greedy
        tokens are decoded and the decoded value is encoded again: a frame's tokens then depend only on the codes
        the decoder sees, ``encode(decode(tokens)) == tokens`` for encoder-made tokens, and ``encode(tanh(z))``
        equals ``encode(fsq(z))`` for the exact presets. The decoded latent is the greedy one in every case; a
        frame keeps its first-pass tokens where a stage set that is not exact cannot re-encode its own sum.

        Args:
            codes: (B, D, S) bounded latent ``tanh(z)`` or FSQ codes, every value in [-1, 1].

        Returns:
            (B, K, S) int64 tokens, stage k's token in [0, vocab_sizes[k]).
        """
        if codes.dim() != 3 or codes.shape[1] != self.dim:
            raise ValueError(f"codes must have shape (B, {self.dim}, S), got {tuple(codes.shape)}")
        if not codes.dtype.is_floating_point:
            raise TypeError(f"codes must be a float tensor, got {codes.dtype}")
        outside = ~(codes.abs() <= 1)  # NaN counts as outside
        if outside.any():
            b, d, s = (int(i) for i in outside.nonzero()[0])
            raise ValueError(
                f"codes must be a bounded latent in [-1, 1] (apply tanh first); item {b}, dim {d}, frame {s} "
                f"holds {float(codes[b, d, s])}"
            )
        tokens, total = self._greedy(codes.to(torch.float64, copy=True))
        canonical, again = self._greedy(total.clone())
        same = reduce(again == total, "b d s -> b 1 s", "min")
        return torch.where(same, canonical, tokens)

    def _greedy(self, residual: Tensor) -> tuple[Tensor, Tensor]:
        """Greedy stage-by-stage rounding of a float64 (B, D, S) residual, consumed in place.

        Returns (B, K, S) tokens and the (B, D, S) float64 sum of the stage values.
        """
        total = torch.zeros_like(residual)
        tokens = []
        for k, scale in enumerate(self.scales):
            digits = grid_digits(residual / scale, self._levels[k])  # (B, D, S)
            stage = grid_values(digits, self._levels[k]).mul_(scale)
            # Same float64 operations in the same order as decode, so the sum matches it bit for bit.
            residual.sub_(stage)
            total.add_(stage)
            tokens.append(reduce(digits.mul_(self._basis[k]), "b d s -> b s", "sum"))
        return rearrange(tokens, "k b s -> b k s"), total

    @torch.no_grad()
    def decode(self, tokens: Tensor) -> Tensor:
        """Sum the stage values and clip to [-1, 1].

        Args:
            tokens: (B, K, S) integer tokens; any integer dtype (int64, int32, uint16 from disk).

        Returns:
            (B, D, S) float32 codes in [-1, 1].
        """
        if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
            raise TypeError(f"tokens must be an integer tensor, got {tokens.dtype}")
        tokens = tokens.to(torch.int64)
        self.token_spec(0.0).check_tokens(tokens)  # names stage, item, frame and value; frame rate plays no part
        total = torch.zeros(tokens.shape[0], self.dim, tokens.shape[2], dtype=torch.float64, device=tokens.device)
        for k, scale in enumerate(self.scales):
            digits = (rearrange(tokens[:, k], "b s -> b 1 s") // self._basis[k]) % self._levels[k]  # (B, D, S)
            total.add_(grid_values(digits, self._levels[k]).mul_(scale))
        # Encoder-made tokens always sum inside [-1, 1], but a language model can emit any tuple: 16% of the 5x5
        # pairs reach ±1.25 and 32% of the 3^4 tuples ±1.875 (§4). The paper clips; the released code does not.
        return total.clamp(-1.0, 1.0).to(torch.float32)

    def is_exact_for(self, levels: int) -> bool:
        """Whether the stage grids sum to exactly the ``levels``-point FSQ grid on every dimension.

        Proved by enumeration, per dimension: (1) every grid value survives encode→decode bit for bit, and
        (2) every token tuple decodes (after the clip) to a grid value, so the stages reach nothing else.
        True for 17 with the 700/1000 bps presets or [(9, 1.0), (3, 0.125)]; False for 17 with 400 bps.
        """
        (levels,) = as_levels("levels", [levels])
        device = self._levels.device
        lv = torch.tensor(levels, device=device)
        grid = grid_values(torch.arange(levels, device=device), lv, torch.float32)  # (L,)
        codes = repeat(grid, "l -> 1 d l", d=self.dim)
        if not torch.equal(self.decode(self.encode(codes)), codes):
            return False
        for d in range(self.dim):
            # Same float64 operations in the same order as decode, so the reachable sums match it bit for bit.
            sums = torch.zeros(1, dtype=torch.float64, device=device)
            for k, scale in enumerate(self.scales):
                stage_levels = self._levels[k, d]
                values = grid_values(torch.arange(int(stage_levels), device=device), stage_levels).mul_(scale)
                sums = torch.unique(rearrange(sums, "n -> n 1") + values)
            decoded = sums.clamp(-1.0, 1.0).to(torch.float32)
            if not torch.equal(decoded, grid_values(grid_digits(decoded, lv), lv, torch.float32)):
                return False
        return True

    def extra_repr(self) -> str:
        stages = ", ".join(f"({list(levels)}, {scale:g})" for levels, scale in self.stages)
        return f"name={self.name!r}, stages=[{stages}]"
