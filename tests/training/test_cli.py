"""train.py's LightningCLI: config errors stop the run before training and name the key."""

import pytest
import soundfile as sf

from taae.training import CodecModule
from taae.training.cli import TaaeCLI
from tests.conftest import synth_speech

TINY = ["--config", "configs/taae/tiny.yaml"]


def _data_args(folder, segment=3200):
    folder.mkdir(exist_ok=True)
    for i in range(3):
        sf.write(folder / f"u{i}.wav", synth_speech(0.3, 16000, seed=i)[0].numpy(), 16000)
    return ["--data.class_path", "taae.data.AudioDataModule", "--data.init_args.train", str(folder),
            "--data.init_args.segment_length", str(segment), "--data.init_args.batch_size", "2",
            "--data.init_args.val", "null", "--data.init_args.test", "null", "--data.init_args.num_workers", "0"]


def _trainer_args(tmp_path):
    return ["--trainer.max_steps", "2", "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
            "--trainer.callbacks", "[]", "--trainer.max_time", "null",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path),
            "--trainer.accelerator", "cpu"]


def test_unknown_key_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        TaaeCLI(args=["fit", *TINY, *_data_args(tmp_path / "d"), "--model.init_args.loss_weightz", "{mel: 1}"])
    assert "loss_weightz" in capsys.readouterr().err


def test_wrong_type_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        TaaeCLI(args=["fit", *TINY, *_data_args(tmp_path / "d"), "--data.init_args.batch_size", "many"])
    err = capsys.readouterr().err
    assert "batch_size" in err and "many" in err


def test_unknown_model_config_key_is_named(tmp_path, capsys):
    with pytest.raises((SystemExit, ValueError)) as info:
        TaaeCLI(args=["fit", *TINY, *_data_args(tmp_path / "d"), *_trainer_args(tmp_path),
                      "--model.init_args.generator.init_args.config.widthz", "[128]"])
    assert "unknown TAAEConfig keys ['widthz']" in capsys.readouterr().err + str(info.value)


def test_segment_length_must_be_a_multiple_of_the_hop(tmp_path):
    with pytest.raises(ValueError, match=r"data.segment_length=3201 is not a multiple of the model's hop length 640"):
        TaaeCLI(args=["fit", *TINY, *_data_args(tmp_path / "d", segment=3201), *_trainer_args(tmp_path)])
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize("config", ["configs/taae/tiny.yaml", "configs/rvqgan/tiny.yaml"])
def test_one_module_class_trains_both_families(tmp_path, config):
    cli = TaaeCLI(args=["fit", "--config", config, *_data_args(tmp_path / "d"), *_trainer_args(tmp_path)])
    assert type(cli.model) is CodecModule  # no subclass per family
    assert int(cli.model.generator_steps) == 1  # max_steps counts G and D steps
    assert int(cli.model.nan_skips) == 0


def test_resume_from_the_command_line(tmp_path):
    ckpt = tmp_path / "checkpoints"
    callbacks = ["--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
                 f"--trainer.callbacks.dirpath={ckpt}", "--trainer.callbacks.filename=last",
                 "--trainer.callbacks.every_n_train_steps=4"]
    trainer_args = _trainer_args(tmp_path)
    i = trainer_args.index("--trainer.enable_checkpointing")
    base = ["fit", *TINY, *_data_args(tmp_path / "d"), *trainer_args[:i], *trainer_args[i + 2:]]
    first = TaaeCLI(args=[*base, "--trainer.max_steps", "4", *callbacks])
    assert int(first.model.generator_steps) == 2 and (ckpt / "last.ckpt").is_file()
    resumed = TaaeCLI(args=[*base, "--trainer.max_steps", "8", "--ckpt_path", str(ckpt / "last.ckpt")])
    assert int(resumed.model.generator_steps) == 4  # continued from 2, not restarted


def test_a_checkpoint_from_training_loads_without_the_trust_flag(tmp_path):
    import torch

    from taae.codec import Codec
    from taae.io.checkpoints import load_checkpoint, unsafe_entries

    ckpt = tmp_path / "checkpoints"
    # What configs/trainer/cpu.yaml records: loggers, a monitored checkpoint, the LR monitor, a scheduler.
    trainer_args = ["--trainer.max_steps", "4", "--trainer.enable_progress_bar", "false", "--trainer.max_time",
                    "null", "--trainer.default_root_dir", str(tmp_path), "--trainer.accelerator", "cpu",
                    "--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.save_dir={tmp_path}",
                    "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
                    f"--trainer.callbacks.dirpath={ckpt}", "--trainer.callbacks.monitor=train/mel",
                    "--trainer.callbacks.filename=best", "--trainer.callbacks.every_n_train_steps=2",
                    "--trainer.callbacks+=lightning.pytorch.callbacks.LearningRateMonitor"]
    TaaeCLI(args=["fit", "--config", "configs/rvqgan/tiny.yaml", *_data_args(tmp_path / "d"), *trainer_args])
    path = ckpt / "best.ckpt"
    raw = torch.load(path, map_location="cpu", weights_only=True)  # raises if anything needs unpickling
    assert unsafe_entries(raw) == []
    assert {"hyper_parameters", "datamodule_hyper_parameters", "loops", "callbacks", "lr_schedulers"} <= set(raw)
    assert load_checkpoint(path)["global_step"] == 4
    assert Codec.load(path).weights == "generator"
    module = CodecModule(Codec.load(path).model, init_weights_from=str(path), loss_weights={"mel": 1.0})
    assert int(module.generator_steps) == 0


def test_resuming_from_an_unsafe_checkpoint_is_a_one_line_refusal(tmp_path, capsys):
    # Bug on main: Lightning's weights_only load raised UnpicklingError with torch's paragraph (a traceback).
    from taae.training.cli import main
    from tests.io.test_safety import _evil_checkpoint

    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.ckpt", marker)
    code = main(["fit", *TINY, *_data_args(tmp_path / "d"), *_trainer_args(tmp_path), "--ckpt_path", str(evil)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not marker.exists()
    assert "--ckpt_path" in err[-1] and "evil.ckpt holds pickled objects" in err[-1] and "system" in err[-1]
