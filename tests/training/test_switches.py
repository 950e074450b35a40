"""Every training switch of CodecModule, batch by batch: the adversarial warm-up and the discriminator start (exact
to the step), the EMA warm-up and the EMA weights at validation and export, terms at weight 0 (the perceptual and
adversarial branches; test_generator_step.py covers the spectral ones) and per-optimiser gradient clipping."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from taae.__main__ import main as taae_main
from taae.codec import Codec
from taae.io.export import weights_hash
from taae.losses import MultiScaleMelLoss
from taae.models.discriminators import ComplexSTFTDiscriminator
from taae.models.taae import TAAE, TAAEConfig
from taae.training import CodecModule
from taae.training.ema import EMA
from tests.conftest import synth_speech

pytestmark = pytest.mark.usefixtures("one_thread")

BATCHES = 4


def make_module(**kwargs) -> CodecModule:
    generator = TAAE(TAAEConfig(stem_width=128, widths=(128,), strides=(2,), depths=(1,), layer_scale_init=0.1,
                                attention_backend="sdpa"))
    kwargs.setdefault("loss_weights", {"mel": 1.0, "adv_gen": 1.0, "adv_feat": 1.0})
    kwargs.setdefault("discriminator", ComplexSTFTDiscriminator(fft_sizes=(256, 158), filters=4))
    return CodecModule(generator, mel_loss=MultiScaleMelLoss(window_lengths=(64, 256), n_mels=(10, 40)),
                       num_audio_samples=0, **kwargs)


def loader(batches: int = BATCHES):
    items = [synth_speech(1280 / 16000, 16000, seed=i) for i in range(2 * batches)]  # (1, 1280) each
    return torch.utils.data.DataLoader(items, batch_size=2)


def fit(module: CodecModule, tmp_path, batches: int = BATCHES, **kwargs) -> L.Trainer:
    trainer = L.Trainer(accelerator="cpu", max_steps=2 * batches, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        default_root_dir=tmp_path, **kwargs)
    trainer.fit(module, loader(batches))
    return trainer


class Recorder(L.Callback):
    """Per batch: discriminator calls, and whether the discriminator's and the generator's weights moved."""

    def __init__(self):
        self.calls: list[int] = []
        self.d_moved: list[bool] = []
        self.g_moved: list[bool] = []
        self._count = 0

    def setup(self, trainer, module, stage):
        module.discriminator.register_forward_hook(lambda *args: self._tick())

    def _tick(self):
        self._count += 1

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._count = 0
        self._d = [p.detach().clone() for p in module.discriminator.parameters()]
        self._g = [p.detach().clone() for p in module.generator.parameters()]

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.calls.append(self._count)
        self.d_moved.append(any(not torch.equal(a, b) for a, b in zip(self._d, module.discriminator.parameters())))
        self.g_moved.append(any(not torch.equal(a, b) for a, b in zip(self._g, module.generator.parameters())))


# -- when the discriminator and the adversarial terms switch on ----------------------------------------------------
# Per batch the discriminator runs twice for its own step (real, detached fake) and twice more when the generator's
# adversarial terms are on (fake with gradients, real without).

def test_adversarial_terms_switch_on_exactly_after_the_warmup(tmp_path):
    recorder = Recorder()
    fit(make_module(adversarial_warmup_steps=2), tmp_path, callbacks=[recorder])
    assert recorder.calls == [2, 2, 4, 4]  # generator steps 0, 1 reconstruct only; step 2 is the first adversarial
    assert recorder.d_moved == [True] * BATCHES  # the discriminator trains from the start (official "adv" mode)


def test_the_discriminator_starts_exactly_at_its_step(tmp_path):
    recorder = Recorder()
    module = make_module(discriminator_start_steps=2)
    trainer = fit(module, tmp_path, callbacks=[recorder])
    assert recorder.calls == [0, 0, 4, 4]  # not even run before its start: no discriminator compute
    assert recorder.d_moved == [False, False, True, True]
    assert recorder.g_moved == [True] * BATCHES
    assert trainer.global_step == 2 * BATCHES and int(module.generator_steps) == BATCHES  # D steps still counted


def test_the_later_of_the_two_switches_governs_the_adversarial_terms(tmp_path):
    recorder = Recorder()
    fit(make_module(discriminator_start_steps=1, adversarial_warmup_steps=3), tmp_path, callbacks=[recorder])
    assert recorder.calls == [0, 2, 2, 4]


# -- EMA --------------------------------------------------------------------------------------------------------

def test_ema_warmup_follows_the_closed_form_schedule():
    """decay_k = min(β, 1 − (1 + k)^−power): the first update copies the model, later ones average ever slower."""
    model = torch.nn.Linear(3, 1, bias=False)
    ema = EMA(model, decay=0.9, power=0.75)
    expected = ema.model.weight.detach().double().clone()
    for k in range(6):
        with torch.no_grad():
            model.weight.fill_(float(k + 1))
        decay = min(0.9, 1.0 - (1.0 + k) ** -0.75)
        assert ema.current_decay() == pytest.approx(decay, abs=0)
        ema.update(model)
        expected = decay * expected + (1 - decay) * float(k + 1)
        torch.testing.assert_close(ema.model.weight.double(), expected, rtol=1e-6, atol=0)
        if k == 0:
            assert torch.equal(ema.model.weight, model.weight)  # decay 0: the random init is not kept
    assert ema.current_decay() == pytest.approx(1 - 7**-0.75, abs=0)  # 0.768…: still warming up
    ema.step.fill_(20)
    assert ema.current_decay() == pytest.approx(1 - 21**-0.75, abs=0) and ema.current_decay() < 0.9  # last warm-up
    ema.step.fill_(21)
    assert ema.current_decay() == 0.9  # β from here on


def test_validation_and_export_use_the_ema_weights(tmp_path):
    torch.manual_seed(0)
    module = make_module(ema_decay=0.5, loss_weights={"mel": 1.0}, discriminator=None,
                         optimizer_g=lambda p: torch.optim.AdamW(p, lr=1e-2))
    trainer = fit(module, tmp_path)
    assert int(module.ema.step) == BATCHES
    ema_hash, raw_hash = weights_hash(module.ema.model.state_dict()), weights_hash(module.generator.state_dict())
    assert ema_hash != raw_hash  # β = 0.5 after four steps: the average lags the raw weights

    # Validation reconstructs with the average: its mel distance is the EMA model's.
    wav = next(iter(loader(1)))  # (2, 1, 1280)
    module.ema.model.eval()
    with torch.no_grad():
        expected = module.mel_loss(module.ema.model(wav).audio, wav)
    metrics = trainer.validate(module, torch.utils.data.DataLoader([wav[0], wav[1]], batch_size=2), verbose=False)
    assert metrics[0]["val/mel"] == pytest.approx(float(expected), rel=1e-5)

    ckpt = tmp_path / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    assert taae_main(["export", "--checkpoint", str(ckpt), str(tmp_path / "ema")]) == 0
    assert taae_main(["export", "--checkpoint", str(ckpt), str(tmp_path / "raw"), "--no-ema"]) == 0
    exported = Codec.load(tmp_path / "ema")
    assert exported.model_hash == ema_hash and Codec.load(tmp_path / "raw").model_hash == raw_hash
    assert Codec.load(ckpt).weights == "ema"


# -- weight 0 ---------------------------------------------------------------------------------------------------

class Exploding(torch.nn.Module):
    def forward(self, *args):
        raise AssertionError("a weight-0 term was computed")


def test_perceptual_and_adversarial_terms_at_weight_zero_are_not_computed():
    module = make_module(perceptual_loss=Exploding(),
                         loss_weights={"mel": 1.0, "perceptual": 0.0, "adv_gen": 0.0, "adv_feat": 0.0})
    wav = next(iter(loader(1)))  # (2, 1, 1280)
    # The generator step must not even run the discriminator.
    loss = module.objective.generator_loss(wav, module.generator(wav), Exploding(), adversarial_on=True,
                                           generator_steps=0)
    assert set(loss.terms) == {"mel"} and set(loss.combined.weights) == {"mel"}


def test_adversarial_feature_matching_alone_skips_the_generator_adversarial_term():
    module = make_module(loss_weights={"mel": 1.0, "adv_gen": 0.0, "adv_feat": 1.0})
    wav = next(iter(loader(1)))  # (2, 1, 1280)
    loss = module.objective.generator_loss(wav, module.generator(wav), module.discriminator, adversarial_on=True,
                                           generator_steps=0)
    assert set(loss.terms) == {"mel", "adv_feat"}


# -- gradient clipping, per optimiser ---------------------------------------------------------------------------
# With plain SGD at lr 1 a step moves the weights by exactly the clipped gradient, so ‖Δθ‖ is the clip norm.

def _step_norms(tmp_path, grad_clip_g, grad_clip_d) -> tuple[float, float, dict]:
    torch.manual_seed(0)
    module = make_module(optimizer_g=lambda p: torch.optim.SGD(p, lr=1.0),
                         optimizer_d=lambda p: torch.optim.SGD(p, lr=1.0),
                         grad_clip_g=grad_clip_g, grad_clip_d=grad_clip_d)
    g0 = [p.detach().clone() for p in module.generator.parameters()]
    d0 = [p.detach().clone() for p in module.discriminator.parameters()]
    trainer = fit(module, tmp_path, batches=1)

    def moved(before, params):
        return float(torch.cat([(p.detach() - b).flatten() for b, p in zip(before, params)]).norm())

    return (moved(g0, module.generator.parameters()), moved(d0, module.discriminator.parameters()),
            trainer.callback_metrics)


def test_each_optimiser_is_clipped_to_its_own_norm(tmp_path):
    step_g, step_d, metrics = _step_norms(tmp_path, grad_clip_g=2e-3, grad_clip_d=5e-4)
    assert float(metrics["train/grad_norm_d"]) > 5e-4 and float(metrics["train/grad_norm_g"]) > 2e-3
    assert step_d == pytest.approx(5e-4, rel=1e-3)
    assert step_g == pytest.approx(2e-3, rel=1e-3)


def test_clipping_off_steps_by_the_whole_gradient(tmp_path):
    step_g, step_d, metrics = _step_norms(tmp_path, grad_clip_g=None, grad_clip_d=None)
    assert step_d == pytest.approx(float(metrics["train/grad_norm_d"]), rel=1e-3)
    assert step_g == pytest.approx(float(metrics["train/grad_norm_g"]), rel=1e-3)
