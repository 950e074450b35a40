"""A model's named post-hoc residual FSQ presets: built once, registered as submodules, kept in the model's config.

Every preset is a :class:`~taae.quantizers.residual_fsq.PostHocResidualFSQ` held in an ``nn.ModuleDict``, so its
``_levels``/``_basis`` buffers follow ``model.to(device)`` like any other buffer and no tensor of the token path is
built per call (a preset built per call lands on the CPU whatever the model's device, and a CUDA latent then
meets CPU grids). User presets are described by :class:`ResidualPreset` entries of the model's config, so an export
or checkpoint that carries the config rebuilds them. The buffers are non-persistent: the state dict stays the
model's weights alone.

Shape legend: B batch, D latent dim, S frames, K stages (tokens per frame).

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields

import torch
from torch import nn

from taae.quantizers.residual_fsq import PRESET_ALIASES, PRESETS, PostHocResidualFSQ

__all__ = ["ResidualPreset", "ResidualPresets", "as_preset"]


@dataclass
class ResidualPreset:
    """One user preset: the stages of a post-hoc residual FSQ (no retraining, Parker et al. 2024 §5)."""

    stages: list[tuple[int | list[int], float]]
    """``[(levels, scale), …]``: levels per dimension (one int for all) and the stage's range s_k."""
    allow_lossy: bool = False
    """Accept stages that cannot cover the previous stage's residual (see ``PostHocResidualFSQ``)."""

    def __post_init__(self):
        if isinstance(self.stages, (str, bytes)) or not isinstance(self.stages, Sequence):
            raise ValueError(f"stages must be a list of (levels, scale) pairs, got {self.stages!r}")
        # JSON and YAML give lists: one canonical form keeps configs comparable. PostHocResidualFSQ validates.
        self.stages = [_stage(s) for s in self.stages]
        self.allow_lossy = bool(self.allow_lossy)


def _stage(stage):
    if isinstance(stage, Sequence) and not isinstance(stage, (str, bytes)) and len(stage) == 2:
        levels, scale = stage
        return (levels if isinstance(levels, int) else list(levels), scale)
    return stage  # PostHocResidualFSQ names the stage that is not a (levels, scale) pair


def as_preset(name: str, value: ResidualPreset | Mapping) -> ResidualPreset:
    """A :class:`ResidualPreset` from itself or a mapping (as read from JSON/YAML); ValueError names the key."""
    if isinstance(value, ResidualPreset):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"presets.{name}: expected a mapping with 'stages' (and 'allow_lossy'), got {value!r}")
    known = {f.name for f in fields(ResidualPreset)}
    unknown = sorted(set(value) - known)
    if unknown or "stages" not in value:
        raise ValueError(f"presets.{name}: expected keys {sorted(known)} ('stages' required), got {sorted(value)}")
    return ResidualPreset(**value)


class ResidualPresets(nn.Module):
    """The built-in presets (when the latent has their dimension) and a model's user presets, by name.

    Args:
        dim: the model's latent dimension D; the built-in presets exist only for D = 6, the dimension they name.
        user: user presets by name, as in the model's config.
    """

    def __init__(self, dim: int, user: Mapping[str, ResidualPreset] | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.stacks = nn.ModuleDict()
        self._keys: dict[str, str] = {}  # preset name → ModuleDict key (a name such as "5x5:1,0.25" holds a '.')
        for name, stages in PRESETS.items():
            if len(stages[0][0]) == dim:
                self._register(name, PostHocResidualFSQ.from_preset(name))
        for name, preset in (user or {}).items():
            self.add(name, preset)

    def _register(self, name: str, stack: PostHocResidualFSQ) -> None:
        key = base = re.sub(r"\W", "_", name)
        suffix = 1
        while key in self.stacks:
            suffix += 1
            key = f"{base}_{suffix}"
        self.stacks[key] = stack
        self._keys[name] = key

    def add(self, name: str, preset: ResidualPreset, device: torch.device | None = None) -> PostHocResidualFSQ:
        """Build and register a user preset (on ``device``: where the model's buffers are now)."""
        if name in PRESETS or name in PRESET_ALIASES or name == "native":
            raise ValueError(f"preset name {name!r} is taken by a built-in preset")
        if not isinstance(name, str) or not name:
            raise ValueError(f"a preset name must be a non-empty string, got {name!r}")
        preset = as_preset(name, preset)
        try:
            stack = PostHocResidualFSQ(preset.stages, dim=self.dim, allow_lossy=preset.allow_lossy, name=name)
        except (ValueError, TypeError) as err:
            raise type(err)(f"preset {name!r}: {err}") from err
        if name in self._keys:
            del self.stacks[self._keys.pop(name)]
        self._register(name, stack.to(device) if device is not None else stack)
        return stack

    def canonical(self, name: str) -> str | None:
        """The registered name for ``name`` or its alias (``700bps`` → ``2x15625_700bps``); None if unknown."""
        name = PRESET_ALIASES.get(name, name)
        return name if name in self._keys else None

    def __getitem__(self, name: str) -> PostHocResidualFSQ:
        canonical = self.canonical(name)
        if canonical is None:
            raise KeyError(name)
        return self.stacks[self._keys[canonical]]

    def names(self) -> list[str]:
        """Registered names, built-in first, then their aliases, then user presets in the order added."""
        builtin = [n for n in PRESETS if n in self._keys]
        aliases = [a for a, n in PRESET_ALIASES.items() if n in self._keys]
        return [*builtin, *aliases, *(n for n in self._keys if n not in PRESETS)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def extra_repr(self) -> str:
        return f"dim={self.dim}, names={list(self._keys)}"
