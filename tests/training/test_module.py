"""CodecModule end to end on tiny models: exact resume, the NaN guard, bad data, losses falling, config errors."""

import math
import warnings

import lightning as L
import pytest
import soundfile as sf
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from taae.data import AudioDataModule
from taae.losses import MultiScaleMelLoss
from taae.models.discriminators import ComplexSTFTDiscriminator
from taae.models.taae import TAAE, TAAEConfig
from taae.training import CodecModule
from taae.training.objective import SHARED_TERMS
from tests.conftest import synth_speech

SEGMENT = 1280  # two latent frames


def make_module(**kwargs) -> CodecModule:
    generator = TAAE(TAAEConfig(stem_width=128, widths=(128,), strides=(2,), depths=(1,), layer_scale_init=0.1,
                                attention_backend="sdpa"))
    kwargs.setdefault("loss_weights", {"mel": 1.0, "waveform": 1.0, "adv_gen": 1.0, "adv_feat": 1.0})
    return CodecModule(
        generator,
        ComplexSTFTDiscriminator(fft_sizes=(256, 158), filters=4),
        mel_loss=MultiScaleMelLoss(window_lengths=(64, 256), n_mels=(10, 40)),
        waveform_decay=0.99,
        optimizer_g=lambda p: torch.optim.AdamW(p, lr=1e-3, betas=(0.8, 0.99)),
        optimizer_d=lambda p: torch.optim.AdamW(p, lr=1e-3, betas=(0.8, 0.99)),
        scheduler_g=lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.99),
        num_audio_samples=0,
        **kwargs,
    )


def write_speech(folder, count, seconds=0.3):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sf.write(folder / f"utt{i}.wav", synth_speech(seconds, 16000, seed=i)[0].numpy(), 16000)
    return folder


def make_data(folder, **kwargs):
    kwargs.setdefault("batch_size", 2)
    return AudioDataModule(str(folder), segment_length=SEGMENT, max_val_items=2, **kwargs)


def trainer(tmp_path, max_steps, **kwargs):
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    return L.Trainer(accelerator="cpu", max_steps=max_steps, enable_progress_bar=False, enable_model_summary=False,
                     num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=tmp_path, **kwargs)


def test_resume_is_bit_identical(tmp_path):
    data_dir = write_speech(tmp_path / "data", 7)  # 3 batches an epoch: the resume lands mid-epoch
    L.seed_everything(0)
    straight = make_module()
    trainer(tmp_path / "a", 40).fit(straight, make_data(data_dir))  # 20 batches: 40 G+D optimiser steps

    L.seed_everything(0)
    first = make_module()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=20, save_top_k=-1)
    trainer(tmp_path / "b", 20, callbacks=[ckpt], enable_checkpointing=True).fit(first, make_data(data_dir))
    L.seed_everything(123)  # whatever the global state, the checkpoint restores it
    resumed = make_module()
    path = next((tmp_path / "ckpt").glob("*.ckpt"))
    trainer(tmp_path / "c", 40).fit(resumed, make_data(data_dir), ckpt_path=str(path))

    assert int(straight.generator_steps) == int(resumed.generator_steps) == 20
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    for opt_a, opt_b in zip(straight.trainer.optimizers, resumed.trainer.optimizers):
        for state_a, state_b in zip(opt_a.state.values(), opt_b.state.values()):
            for key in state_a:
                assert torch.equal(state_a[key], state_b[key]), key


class _NaNOnce(torch.utils.data.Dataset):
    def __init__(self, bad_index: int):
        self.bad_index = bad_index

    def __len__(self):
        return 6

    def __getitem__(self, i):
        wav = synth_speech(SEGMENT / 16000, 16000, seed=i)
        return torch.full_like(wav, float("nan")) if i == self.bad_index else wav


class _Watch(L.Callback):
    def __init__(self):
        self.before, self.after = {}, {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.before[batch_idx] = [p.detach().clone() for p in module.parameters()]

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.after[batch_idx] = [p.detach().clone() for p in module.parameters()]


def test_nan_batch_is_skipped_and_training_goes_on(tmp_path):
    module, watch = make_module(), _Watch()
    loader = torch.utils.data.DataLoader(_NaNOnce(bad_index=2), batch_size=1)
    trainer(tmp_path, 10, callbacks=[watch]).fit(module, loader)
    assert int(module.nan_skips) == 1
    assert all(torch.equal(a, b) for a, b in zip(watch.before[2], watch.after[2]))  # the NaN batch
    assert not all(torch.equal(a, b) for a, b in zip(watch.before[3], watch.after[3]))  # the next one trains
    assert int(module.generator_steps) == 5  # six batches, one skipped
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_bad_files_are_skipped_or_converted_and_losses_stay_finite(tmp_path):
    folder = write_speech(tmp_path / "bad", 2)
    (folder / "empty.wav").write_bytes(b"")
    good = (folder / "utt0.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(good[:30])
    stereo = torch.stack([synth_speech(0.5, 44100, 5)[0], synth_speech(0.5, 44100, 6)[0]], dim=1)
    sf.write(folder / "stereo44k.wav", stereo.numpy(), 44100)
    sf.write(folder / "short.wav", synth_speech(0.1, 16000, 7)[0].numpy(), 16000)
    sf.write(folder / "silent.wav", torch.zeros(8000).numpy(), 16000)

    module = make_module()
    losses = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(trainer.callback_metrics["train/mel"]))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = make_data(folder, batch_size=2, phase_inversion_prob=0.5)
        trainer(tmp_path, 12, callbacks=[Record()]).fit(module, data)
    text = " ".join(str(w.message) for w in caught)
    assert "empty.wav" in text and "truncated.wav" in text
    assert {p.rsplit("/", 1)[-1] for p, _ in data.skipped} == {"empty.wav", "truncated.wav"}
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    assert int(module.nan_skips) == 0


def test_training_lowers_the_mel_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    module = make_module(loss_weights={"mel": 1.0})
    module.discriminator = None
    wav = torch.cat([synth_speech(SEGMENT / 16000, 16000, seed=i) for i in range(2)]).unsqueeze(1)
    opt = torch.optim.AdamW(module.generator.parameters(), lr=2e-3)
    module.generator.config.dither_prob = 1.0
    module.generator.quantizer.dither_prob = 1.0  # unquantised: a smooth problem for a short test
    first = None
    for _ in range(40):
        loss = module.mel_loss(module.generator(wav).audio, wav)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.7 * first


def test_loss_weight_validation():
    with pytest.raises(ValueError, match=r"loss_weights has unknown terms \['mell'\]; TAAE training produces "
                                         r"\['mel', 'stft', 'waveform', 'adv_gen', 'adv_feat', 'perceptual'\]"):
        make_module(loss_weights={"mell": 1.0})
    # A '/' used to let any name through: a misspelt model term trained nothing, silently.
    with pytest.raises(ValueError, match=r"unknown terms \['vq/commitment'\]; TAAE"):
        make_module(loss_weights={"mel": 1.0, "vq/commitment": 0.25})
    with pytest.raises(ValueError, match="adversarial_loss"):
        make_module(adversarial_loss="wgan")
    with pytest.raises(ValueError, match="perceptual"):
        make_module(loss_weights={"mel": 1.0, "perceptual": 1.0})


def test_loss_weights_are_checked_against_the_terms_the_generator_declares():
    from taae.models.rvqgan import RVQGAN, RVQGANConfig

    rvqgan = RVQGAN(RVQGANConfig(encoder_dim=4, decoder_dim=32, n_codebooks=2, codebook_size=16, codebook_dim=4))
    module = CodecModule(rvqgan, loss_weights={"mel": 1.0, "vq/commitment": 0.25, "vq/codebook": 1.0})
    assert set(module.objective.loss_weights) <= {*SHARED_TERMS, *rvqgan.loss_terms}
    with pytest.raises(ValueError, match=r"unknown terms \['vq/comitment'\]; RVQGAN training produces \[.*"
                                         r"'vq/commitment', 'vq/codebook'\]"):
        CodecModule(rvqgan, loss_weights={"mel": 1.0, "vq/comitment": 0.25})


def test_init_weights_from_copies_the_generator_and_starts_fresh(tmp_path):
    data_dir = write_speech(tmp_path / "data", 4)
    trained = make_module()
    run = trainer(tmp_path / "a", 4)
    run.fit(trained, make_data(data_dir))
    run.save_checkpoint(tmp_path / "trained.ckpt")

    fresh = make_module(init_weights_from=str(tmp_path / "trained.ckpt"))
    for (name, a), (_, b) in zip(trained.generator.state_dict().items(), fresh.generator.state_dict().items()):
        assert torch.equal(a, b), name
    for a, b in zip(trained.discriminator.parameters(), fresh.discriminator.parameters()):
        assert torch.equal(a, b)
    assert int(fresh.generator_steps) == 0  # counters and optimisers start over
    with pytest.raises(FileNotFoundError, match="init_weights_from"):
        make_module(init_weights_from=str(tmp_path / "missing.ckpt"))


def test_a_module_built_in_python_writes_a_safe_checkpoint(tmp_path):
    import functools

    from taae.io.checkpoints import load_checkpoint

    generator = TAAE(TAAEConfig(stem_width=128, widths=(128,), strides=(2,), depths=(1,), attention_backend="sdpa"))
    # Lightning keeps picklable hyper-parameters as given: a partial would need full unpickling to read back.
    module = CodecModule(generator, loss_weights={"mel": 1.0}, num_audio_samples=0,
                         mel_loss=MultiScaleMelLoss(window_lengths=(64, 256), n_mels=(10, 40)),
                         optimizer_g=functools.partial(torch.optim.AdamW, lr=1e-3))
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="last")
    trainer(tmp_path, 2, callbacks=[ckpt], enable_checkpointing=True).fit(
        module, make_data(write_speech(tmp_path / "data", 2)))
    loaded = load_checkpoint(tmp_path / "ckpt" / "last.ckpt")  # weights_only=True
    assert loaded["hyper_parameters"]["optimizer_g"] == {"class_path": "torch.optim.adamw.AdamW",
                                                         "init_args": {"lr": 1e-3}}
