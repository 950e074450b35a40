"""The ladder runner end to end on two tiny rungs (one per family): budget → batches, training through the CLI,
evaluation through taae.eval, one table; a finished rung is skipped, an interrupted one resumes from its last
checkpoint, and a changed recipe is refused (or set aside on request)."""

from __future__ import annotations

import json
import textwrap

import pytest
import soundfile as sf
import torch

from taae.scaling import run as runner
from taae.scaling import table
from taae.scaling.ladder import Budget, load_ladder
from tests.conftest import synth_speech

SEGMENT = 1280  # two 25 Hz frames
BATCH = 2
BATCHES = 2

TAAE = """
seed_everything: 0
model:
  class_path: taae.training.CodecModule
  init_args:
    generator:
      class_path: taae.models.taae.TAAE
      init_args:
        config: {stem_width: 128, widths: [128], strides: [2], depths: [1], attention_backend: sdpa}
    discriminator: null
    mel_loss: {class_path: taae.losses.MultiScaleMelLoss, init_args: {window_lengths: [64, 256], n_mels: [10, 40]}}
    loss_weights: {mel: 1.0, waveform: 1.0}
    num_audio_samples: 0
"""
RECIPE_FOLDERS = """
trainer:
  logger: [{{class_path: lightning.pytorch.loggers.CSVLogger, init_args: {{save_dir: {run}}}}}]
  callbacks:
    - {{class_path: lightning.pytorch.callbacks.ModelCheckpoint, init_args: {{dirpath: {run}/checkpoints}}}}
"""
"""A recipe naming its own run folders, as configs/taae/quickstart.yaml once did (runs/quickstart)."""
RVQGAN = """
seed_everything: 0
model:
  class_path: taae.training.CodecModule
  init_args:
    generator:
      class_path: taae.models.rvqgan.RVQGAN
      init_args:
        config: {encoder_dim: 4, encoder_strides: [2, 4, 8, 10], hop_length: 640, decoder_dim: 32,
                 decoder_strides: [10, 8, 4, 2], n_codebooks: 10, codebook_size: 16}
    discriminator: null
    mel_loss: {class_path: taae.losses.MultiScaleMelLoss, init_args: {window_lengths: [64, 256], n_mels: [10, 40]}}
    loss_weights: {mel: 1.0, vq/commitment: 0.25, vq/codebook: 1.0}
    num_audio_samples: 0
"""
SIZE = """
model:
  init_args:
    generator:
      init_args:
        config: {{{key}: {value}}}
"""
COMMON = """
data:
  class_path: taae.data.AudioDataModule
  init_args: {{train: {data}/train, val: {data}/val, segment_length: 1280, val_segment_length: 3840,
               batch_size: 2, max_val_items: 1, num_workers: 0}}
trainer:
  accelerator: cpu
  max_epochs: -1
  val_check_interval: 1
  check_val_every_n_epoch: null
  num_sanity_val_steps: 0
  enable_progress_bar: false
  enable_model_summary: false
  logger: [{{class_path: taae.training.rundir.CSVLogger}}]
  callbacks:
    - {{class_path: lightning.pytorch.callbacks.ModelCheckpoint, init_args: {{filename: last}}}}
"""


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def make_ladder(root, taae_width=128):
    data = root / "data"
    for split, count in (("train", 4), ("val", 1), ("test", 2)):
        (data / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            sf.write(data / split / f"{split}{i}.wav", synth_speech(0.3, 16000, seed=i)[0].numpy(), 16000)
    cfg = root / "configs"
    _write(cfg / "taae.yaml", TAAE)
    _write(cfg / "rvqgan.yaml", RVQGAN)
    _write(cfg / "taae_s.yaml", SIZE.format(key="stem_width", value=taae_width))
    _write(cfg / "rvqgan_s.yaml", SIZE.format(key="decoder_dim", value=32))
    _write(cfg / "common.yaml", COMMON.format(data=data))
    ladder = f"""
    name: tiny
    out: {root / "study"}
    budget: audio_seconds={BATCHES * BATCH * SEGMENT / 16000}
    common: [{cfg / "common.yaml"}]
    evaluation: {{data: {data / "test"}, presets: [700bps], workers: 0, examples: 0, mos: false}}
    families:
      taae: {{configs: [{cfg / "taae.yaml"}], rungs: {{s: {cfg / "taae_s.yaml"}}}}}
      rvqgan: {{configs: [{cfg / "rvqgan.yaml"}], rungs: {{s: {cfg / "rvqgan_s.yaml"}}}}}
    """
    return _write(root / "ladder.yaml", ladder)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("ladder")
    ladder = load_ladder(make_ladder(root))
    results, paths = runner.run_ladder(ladder)
    return root, ladder, results, paths


def test_every_rung_trains_its_budget_and_lands_in_one_table(study):
    root, ladder, results, paths = study
    rows = table.read(paths["csv"])
    assert [(r["family"], r["rung"], r["preset"]) for r in rows] == [("taae", "s", "700bps"), ("rvqgan", "s", "700bps")]
    for result, row in zip(results, rows):
        folder = root / "study" / result["family"] / "s"
        plan = runner.plan(next(r for r in ladder.rungs if r.family == result["family"]), ladder.budget, ladder,
                           root / "study")
        assert result["budget"]["batches"] == BATCHES and result["budget"]["max_steps"] == 2 * BATCHES
        assert row["batches"] == BATCHES and row["audio_seconds"] == pytest.approx(BATCHES * BATCH * SEGMENT / 16000)
        assert row["train_flops"] == pytest.approx(BATCHES * BATCH * plan.train_flops_per_item)
        assert row["parameters"] == plan.parameters and row["budget_met"] == "True"
        assert row["bitrate"] == 700 and row["mel_count"] == 2 and row["mel_mean"] > 0
        assert (folder / "checkpoints" / "final.ckpt").is_file() and (folder / "csv" / "metrics.csv").is_file()
        assert (folder / "checkpoints" / "last.ckpt").is_file()
        report = json.loads((folder / "eval" / "report.json").read_text())
        assert report["settings"]["checkpoint"].endswith("final.ckpt")
        state = torch.load(folder / "checkpoints" / "final.ckpt", map_location="cpu", weights_only=False)
        assert int(state["state_dict"]["generator_steps"]) == BATCHES


def test_a_finished_rung_is_skipped(study, monkeypatch):
    root, ladder, results, _ = study

    def no_training(plan):
        raise AssertionError(f"{plan.rung.key} was retrained")

    monkeypatch.setattr(runner, "train", no_training)
    again, _ = runner.run_ladder(ladder)
    assert again == results


def test_an_interrupted_rung_resumes_from_its_last_checkpoint(study):
    root, ladder, _, _ = study
    folder = root / "study" / "taae" / "s"
    (folder / "result.json").unlink()
    (folder / "checkpoints" / "final.ckpt").unlink()  # as if stopped after the last validation checkpoint
    last = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    results, _ = runner.run_ladder(ladder, only=["taae"])
    sessions = results[0]["sessions"]
    assert len(sessions) == 2 and sessions[-1]["generator_steps"] == BATCHES
    final = torch.load(folder / "checkpoints" / "final.ckpt", map_location="cpu", weights_only=False)
    for key, value in last["state_dict"].items():
        assert torch.equal(final["state_dict"][key], value), key  # continued from last.ckpt, not retrained


def test_a_changed_recipe_is_refused_then_set_aside_on_request(study):
    root, _, _, _ = study
    changed = load_ladder(make_ladder(root, taae_width=256))
    with pytest.raises(ValueError, match=r"rung taae/s .* another configuration"):
        runner.run_ladder(changed, only=["taae/s"])
    results, _ = runner.run_ladder(changed, only=["taae/s"], retrain_changed=True)
    assert results[0]["parameters"] > 0 and list((root / "study" / "taae").glob("s.stale-*"))


def test_a_rung_whose_configs_name_a_run_folder_is_refused_before_training(tmp_path):
    # Such a folder collects every rung's logs and last.ckpt, so a rung would resume from another rung's checkpoint
    # (the ladder used to clear it with a CLI subclass; now trainer.default_root_dir is the only way).
    path = make_ladder(tmp_path)
    _write(tmp_path / "configs" / "taae.yaml", TAAE + RECIPE_FOLDERS.format(run=tmp_path / "recipe_run"))
    ladder = load_ladder(path)
    with pytest.raises(ValueError, match=r"rung taae/s: its configs name a run folder \(trainer\.logger\[0\]\.save_dir="
                                         r".*recipe_run, trainer\.callbacks\[0\]\.dirpath=.*recipe_run/checkpoints\)"):
        runner.run_ladder(ladder)
    assert not (tmp_path / "study").exists() and not (tmp_path / "recipe_run").exists()


def test_budget_kinds_and_errors():
    assert Budget.parse("audio_seconds=4800").batches(8.0, 1e12) == 600
    assert Budget.parse("flops=2.5e12").batches(8.0, 1e12) == 3
    assert Budget.parse("wall_seconds=90").batches(8.0, 1e12) is None
    assert runner._seconds_to_max_time(90061) == "01:01:01:01"
    with pytest.raises(ValueError, match="KIND=VALUE"):
        Budget.parse("4800")
    with pytest.raises(ValueError, match="not one of"):
        Budget.parse("steps=10")
    with pytest.raises(ValueError, match="positive"):
        Budget.parse("flops=-1")
