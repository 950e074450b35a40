"""Post-hoc residual FSQ stages written as text (``5x5:1,0.25``): the parser behind presets given by name.

Shape legend: none (strings and ``[(levels, scale), …]`` lists).

Section signs (§) cite the project's ``docs/decisions.md``; the paper is cited as arXiv 2411.19842.
"""

from __future__ import annotations

import re

__all__ = ["STAGES_PATTERN", "parse_stages"]

STAGES_PATTERN = re.compile(r"(\d+(?:x\d+)*)(?::([0-9.eE+-]+(?:,[0-9.eE+-]+)*))?")


def parse_stages(text: str) -> list[tuple[int, float]]:
    """Parse post-hoc residual FSQ stages written as ``LEVELSxLEVELS…[:SCALE,SCALE,…]``.

    Levels are per stage (the same on every latent dimension); scales default to the exact-nesting rule
    s_0 = 1, s_{k+1} = s_k / (L_k − 1) (§4). Examples: ``"5x5:1,0.25"`` or ``"5x5"`` is the 700 bps preset,
    ``"3x3x3x3"`` the 1000 bps one, ``"6"`` the 400 bps one.

    Returns:
        ``[(levels, scale), …]``, one pair per stage.
    """
    match = STAGES_PATTERN.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"cannot parse stages {text!r}; expected e.g. '5x5:1,0.25' (levels per stage joined by "
                         "'x', optionally ':' and one scale per stage)")
    levels = [int(v) for v in match.group(1).split("x")]
    if match.group(2) is None:
        scales = [1.0]
        for lv in levels[:-1]:
            scales.append(scales[-1] / max(lv - 1, 1))
    else:
        scales = [float(v) for v in match.group(2).split(",")]
    if len(scales) != len(levels):
        raise ValueError(f"stages {text!r}: {len(levels)} stages but {len(scales)} scales")
    return list(zip(levels, scales))
