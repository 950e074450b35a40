"""taae export's model card (taae.io.model_card): presets, bitrates, rates, parameters, training config, evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

from taae.__main__ import main
from taae.codec import Codec
from tests.codec.test_codec import tiny_model

ROOT = Path(__file__).resolve().parents[2]
EVALUATION = """| system | bps | PESQ | STOI |
|---|---|---|---|
| taae 700bps | 700 | 2.51 | 0.88 |

![bitrate vs quality](bitrate_quality.png)
"""


def test_export_writes_a_card_with_presets_rates_parameters_training_and_evaluation(tmp_path, capsys):
    codec = Codec(tiny_model())
    codec.add_preset("fine", "9x3")
    (tmp_path / "report.md").write_text(EVALUATION)
    folder = codec.export(tmp_path / "export", ROOT / "configs/taae/tiny.yaml", tmp_path / "report.md")
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: taae\n")
    assert f"| parameters | {codec.num_parameters:,} |" in card
    assert "| frame rate | 25 Hz (hop 640 samples) |" in card and "| sample rate | 16000 Hz |" in card
    assert "| `2x15625_700bps` | 700bps | 2 | 15625 | 28 | 700 |" in card  # preset, alias, K, vocab, bits, bps
    assert "| `fine` |" in card and "| `native` |" in card  # user presets too
    assert "| `window` | `[63, 64]` |" in card  # the architecture
    assert "| `model.init_args.discriminator.class_path` |" in card  # the training YAML, flattened
    assert "| taae 700bps | 700 | 2.51 | 0.88 |" in card and "![" not in card  # the table, not its figure
    assert Codec.load(folder).model_hash == codec.model_hash


def test_cli_export_card_and_bad_inputs_are_one_line(tmp_path, capsys):
    Codec(tiny_model()).export(tmp_path / "model")
    assert main(["export", "-c", str(tmp_path / "model"), str(tmp_path / "out")]) == 0
    assert "model card" in capsys.readouterr().out
    card = (tmp_path / "out" / "README.md").read_text()
    assert "## Presets" in card and "## Training config" not in card and "## Evaluation" not in card
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    for flag, value, message in (("--evaluation", "missing.md", "evaluation table not found"),
                                 ("--training-config", str(tmp_path / "bad.yaml"), "is not valid YAML")):
        assert main(["export", "-c", str(tmp_path / "model"), str(tmp_path / "out2"), flag, value]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
        assert not (tmp_path / "out2").exists()  # nothing written


@pytest.mark.parametrize("text", ["- a list\n- not a mapping\n"])
def test_training_config_must_be_a_mapping(tmp_path, text):
    from taae.io.model_card import training_summary

    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ValueError, match=r"c.yaml: expected a mapping at the top, got list"):
        training_summary(tmp_path / "c.yaml")
