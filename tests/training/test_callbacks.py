import math

import lightning as L
import pytest
import soundfile as sf
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from taae.training.callbacks import AudioSamples
from tests.training.test_module import make_data, make_module, write_speech


def test_audio_samples_are_written_and_logged(tmp_path):
    data = make_data(write_speech(tmp_path / "data", 3), val=str(tmp_path / "data"))
    module = make_module()
    module.num_audio_samples = 2
    logger = TensorBoardLogger(tmp_path, name="tb", version="")
    trainer = L.Trainer(accelerator="cpu", logger=logger, callbacks=[AudioSamples(n_fft=256, hop_length=64, n_mels=32)],
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.validate(module, data)
    samples = tmp_path / "samples"
    assert sorted(p.name for p in (samples / "reference").iterdir()) == ["clip_0.wav", "clip_1.wav"]
    recon = samples / "step_0000000" / "clip_0.wav"
    wav, rate = sf.read(recon)
    assert rate == 16000 and len(wav) == 1280 and abs(wav).max() > 0
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_mel_image_is_normalised_with_low_frequencies_at_the_bottom():
    image = AudioSamples(n_fft=256, hop_length=64, n_mels=32)._mel_image(
        torch.sin(torch.arange(4000) * 2 * torch.pi * 200 / 16000).unsqueeze(0), 16000)
    assert image.shape[0] == 1 and image.min() >= 0 and image.max() == 1
    energy = image[0].mean(dim=1)
    assert energy[-8:].mean() > energy[:8].mean()  # a 200 Hz tone lights up the bottom rows


def test_torch_threads_leaves_one_core_per_loader_worker(monkeypatch):
    from types import SimpleNamespace

    from taae.training.callbacks import TorchThreads

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert [TorchThreads().resolve(w) for w in (0, 1, 3, 8)] == [4, 3, 1, 1]
    assert TorchThreads(2).resolve(3) == 2
    before = torch.get_num_threads()
    try:
        TorchThreads().setup(SimpleNamespace(datamodule=SimpleNamespace(num_workers=1)), None, "fit")
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    for bad in (0, -1, 1.5, True, "many"):
        with pytest.raises(ValueError, match="num_threads"):
            TorchThreads(bad)


def test_non_finite_sample_clips_are_skipped_so_the_divergence_is_what_is_reported(tmp_path):
    # Bug on main: with validation on, an lr-1e9 run stopped with save_audio's error about a NaN sample clip instead
    # of SkipGuard's TrainingDiverged.
    from types import SimpleNamespace

    callback = AudioSamples(n_fft=256, hop_length=64, n_mels=32)
    callback._batch = {"reference": torch.zeros(1, 1, 1600), "reconstruction": torch.full((1, 1, 1600), math.nan)}
    trainer = SimpleNamespace(sanity_checking=False, is_global_zero=True, default_root_dir=str(tmp_path), loggers=[])
    module = SimpleNamespace(generator=SimpleNamespace(sample_rate=16000), generator_steps=torch.tensor(3))
    with pytest.warns(UserWarning, match="reconstruction clip_0 at generator step 3 is not finite"):
        callback.on_validation_epoch_end(trainer, module)
    assert (tmp_path / "samples" / "reference" / "clip_0.wav").is_file()
