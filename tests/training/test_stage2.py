"""Stage 2 end to end through train.py's CLI: one stage-1 step, then stage-2 steps composed from the saved stage-1
config, configs/taae/finetune_wavlm.yaml and a randomly initialised WavLM saved with save_pretrained."""

import pytest
import torch

from taae.losses.perceptual import save_random_wavlm
from taae.training.cli import TaaeCLI, main
from tests.training.test_cli import _data_args

pytest.importorskip("transformers")

STAGE2 = "configs/taae/finetune_wavlm.yaml"


def _trainer(root, steps):
    return ["--trainer.max_steps", str(steps), "--trainer.max_time", "null", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(root), "--trainer.val_check_interval", "1",
            "--trainer.num_sanity_val_steps", "0", "--trainer.log_every_n_steps", "1"]


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stage2")
    data = [*_data_args(tmp / "data"), "--data.init_args.val", str(tmp / "data"), "--data.init_args.max_val_items", "1"]
    stage1 = TaaeCLI(args=["fit", "--config", "configs/taae/tiny.yaml", "--config", "configs/trainer/cpu.yaml", *data,
                           "--model.init_args.num_audio_samples", "0", *_trainer(tmp / "stage1", 2)])
    wavlm = save_random_wavlm(tmp / "wavlm")
    before = {k: v.clone() for k, v in stage2_loss_weights(wavlm).items()}
    stage2 = TaaeCLI(args=["fit", "--config", str(tmp / "stage1" / "tb" / "config.yaml"), "--config", STAGE2,
                           "--model.init_args.init_weights_from", str(tmp / "stage1" / "checkpoints" / "last.ckpt"),
                           "--model.init_args.perceptual_loss.init_args.model_path", str(wavlm),
                           *_trainer(tmp / "stage2", 4)])
    return tmp, stage1, stage2, before


def stage2_loss_weights(folder):
    from transformers import WavLMModel

    return WavLMModel.from_pretrained(str(folder)).state_dict()


def test_stage2_trains_from_the_stage1_weights_with_the_perceptual_term(stages):
    tmp, stage1, stage2, _ = stages
    assert int(stage1.model.generator_steps) == 1 and int(stage2.model.generator_steps) == 2
    assert stage2.model.perceptual_loss is not None and stage2.model.objective.loss_weights["perceptual"] > 0
    assert (tmp / "stage2" / "checkpoints" / "last.ckpt").is_file()
    logged = (tmp / "stage2" / "csv" / "metrics.csv").read_text().splitlines()
    column = logged[0].split(",").index("train/perceptual")
    values = [float(row.split(",")[column]) for row in logged[1:] if row.split(",")[column]]
    assert values and all(torch.isfinite(torch.tensor(values)))


def test_the_perceptual_term_reaches_the_decoder_and_not_the_wavlm(stages):
    _, _, stage2, before = stages
    module = stage2.model
    wav = 0.1 * torch.randn(2, 1, 3200)
    module.generator.zero_grad(set_to_none=True)
    loss = module.perceptual_loss(module.generator(wav).audio, wav)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    decoder = [p.grad for p in module.generator.decoder.parameters()]
    assert all(g is not None for g in decoder) and sum(g.abs().sum() for g in decoder) > 0
    teacher = module.perceptual_loss.wavlm
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    assert not any(k.startswith("perceptual_loss.") for k in module.state_dict())  # the teacher is not saved
    for key, value in teacher.state_dict().items():  # two stage-2 steps left the teacher as it was saved
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_a_missing_wavlm_folder_fails_with_one_line_saying_how_to_get_wavlm_large(stages, tmp_path, capsys):
    tmp, _, _, _ = stages
    code = main(["fit", "--config", str(tmp / "stage1" / "tb" / "config.yaml"), "--config", STAGE2,
              "--model.init_args.perceptual_loss.init_args.model_path", str(tmp_path / "wavlm-large"),
              *_trainer(tmp_path / "run", 2)])
    # train.py's main: one line with the root cause, not jsonargparse's wrapping (Lightning may warn before it)
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert message.startswith("train.py: error: WavLM folder not found")
    assert str(tmp_path / "wavlm-large") in message and "microsoft/wavlm-large" in message
    assert not (tmp_path / "run").exists()
