"""ResidualPresets: names, aliases, user presets from config mappings, and errors that name the preset."""

from __future__ import annotations

import pytest
import torch

from taae.models.taae import TAAE, TAAEConfig
from taae.quantizers.presets import ResidualPreset, ResidualPresets
from taae.quantizers.residual_fsq import PostHocResidualFSQ


def test_names_aliases_and_built_ins_match_the_standalone_presets():
    presets = ResidualPresets(6, {"9x3": {"stages": [[9, 1.0], [3, 0.125]]}})
    assert presets.names() == ["1x46656_400bps", "2x15625_700bps", "4x729_1000bps", "400bps", "700bps", "1000bps",
                               "9x3"]
    assert presets.canonical("700bps") == "2x15625_700bps" and presets.canonical("9x3") == "9x3"
    assert presets.canonical("123bps") is None
    codes = torch.rand(2, 6, 9) * 2 - 1
    for name in ("400bps", "1000bps"):
        assert torch.equal(presets[name].encode(codes), PostHocResidualFSQ.from_preset(name).encode(codes))
    assert presets["9x3"].is_exact_for(17)


def test_config_mappings_are_validated_with_the_preset_named():
    config = TAAEConfig(stem_width=128, widths=(128,), strides=(2,), depths=(0,),
                        presets={"9x3": {"stages": [[9, 1.0], [3, 0.125]], "allow_lossy": False}})
    assert config.presets["9x3"] == ResidualPreset([(9, 1.0), (3, 0.125)])
    assert "9x3" in TAAE(config).presets()
    with pytest.raises(ValueError, match=r"presets.bad: expected keys \['allow_lossy', 'stages'\]"):
        TAAEConfig(presets={"bad": {"levels": [5, 5]}})
    with pytest.raises(ValueError, match="preset 'lossy': stage 1 .* cannot cover"):
        TAAE(TAAEConfig(stem_width=128, widths=(128,), strides=(2,), depths=(0,),
                        presets={"lossy": {"stages": [[5, 1.0], [5, 0.1]]}}))
    with pytest.raises(ValueError, match="taken by a built-in preset"):
        ResidualPresets(6).add("700bps", ResidualPreset([(5, 1.0), (5, 0.25)]))


def test_replacing_a_user_preset_keeps_one_module():
    presets = ResidualPresets(6)
    presets.add("mine", ResidualPreset([(5, 1.0), (5, 0.25)]))
    presets.add("mine", ResidualPreset([(3, 1.0), (3, 0.5)]))
    assert presets["mine"].vocab_sizes == (729, 729) and len(presets.stacks) == 4
