"""The generator's loss (taae.training.objective) and its backward pass in CodecModule: the output-gradient path
equals plain backprop of Σ w·L, weight-0 terms are never computed, the balancer's logged shares follow its weights,
and validation shows phase blindness."""

import lightning as L
import pytest
import torch

from taae.losses import MultiScaleMelLoss
from taae.models.taae import TAAE, TAAEConfig
from taae.training import CodecModule
from taae.training.balancer import GradientBalancer
from taae.training.objective import sign_correlation
from tests.conftest import synth_speech


def _module(**kwargs) -> CodecModule:
    generator = TAAE(TAAEConfig(stem_width=128, widths=(128,), strides=(2,), depths=(1,), layer_scale_init=0.1,
                                attention_backend="sdpa"))
    return CodecModule(generator, None, mel_loss=MultiScaleMelLoss(window_lengths=(64, 256), n_mels=(10, 40)),
                       num_audio_samples=0, **kwargs)


def _batch() -> torch.Tensor:
    return torch.stack([synth_speech(0.16, seed=i) for i in range(2)])  # (2, 1, 2560)


def test_output_gradient_path_equals_backprop_of_the_weighted_sum():
    weights = {"mel": 2.0, "waveform": 3.0, "stft": 0.5}
    module = _module(loss_weights=weights)
    wav = _batch()

    torch.manual_seed(1)
    out = module.generator(wav)  # train mode: the dither draws random numbers, so both passes reseed
    module.objective.generator_loss(wav, out, None, adversarial_on=False, generator_steps=0).surrogate.backward()
    ours = [p.grad.clone() for p in module.generator.parameters()]

    module.generator.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    out = module.generator(wav)
    loss = (weights["mel"] * module.mel_loss(out.audio, wav) + weights["stft"] * module.stft_loss(out.audio, wav)
            + weights["waveform"] * (out.audio - wav).abs().mean())
    loss.backward()
    for mine, reference in zip(ours, (p.grad for p in module.generator.parameters()), strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-7)


def test_a_term_of_weight_zero_is_never_computed():
    class Exploding(torch.nn.Module):
        def forward(self, *args):
            raise AssertionError("a weight-0 term was computed")

    module = _module(loss_weights={"mel": 1.0, "stft": 0.0, "waveform": 0.0}, stft_loss=Exploding())
    wav = _batch()
    loss = module.objective.generator_loss(wav, module.generator(wav), None, adversarial_on=False, generator_steps=0)
    assert set(loss.terms) == {"mel"} and set(loss.combined.shares) == {"mel"}


def test_mel_at_weight_zero_is_logged_but_pushes_nothing():
    module = _module(loss_weights={"mel": 0.0, "waveform": 1.0})
    wav = _batch()
    loss = module.objective.generator_loss(wav, module.generator(wav), None, adversarial_on=False, generator_steps=0)
    assert "mel" in loss.terms and not loss.terms["mel"].requires_grad and set(loss.combined.weights) == {"waveform"}


def test_balanced_training_logs_shares_that_match_the_weights(tmp_path):
    module = _module(loss_weights={"mel": 0.25, "waveform": 0.75}, balancer=GradientBalancer(ema_decay=0.5),
                     optimizer_g=lambda p: torch.optim.AdamW(p, lr=1e-3))
    assert module.combiner.terms == ("mel", "waveform")
    loader = torch.utils.data.DataLoader(list(_batch()), batch_size=2)
    trainer = L.Trainer(accelerator="cpu", max_steps=6, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, loader)
    metrics = trainer.callback_metrics
    assert float(metrics["train/share/waveform"]) == pytest.approx(0.75, rel=0.05)
    assert float(metrics["train/share/mel"]) == pytest.approx(0.25, rel=0.05)
    # Unbalanced, the waveform term's share at these scales is tiny: the balancer is what moved it.
    assert float(metrics["train/weight/waveform"]) != pytest.approx(0.75)


def test_sign_correlation_tells_a_phase_blind_output_from_a_faithful_one():
    x = synth_speech(0.5).unsqueeze(0)
    assert float(sign_correlation(x, -x)) == pytest.approx(-1.0, abs=1e-6)  # follows the sign
    assert float(sign_correlation(x.abs(), (-x).abs())) == pytest.approx(1.0, abs=1e-6)  # blind to it
    assert float(sign_correlation(torch.zeros(1, 1, 10), torch.zeros(1, 1, 10))) == 0.0


class _Scale(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``value`` (inf or NaN: one term's gradient poisoned)."""

    @staticmethod
    def forward(ctx, x, value):
        ctx.value = value
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.value, None


class _Probe(CodecModule):
    """Poisons the waveform term's gradient at the batches of ``poison`` ({batch: factor}), or drops the batches
    of ``drop`` before touching them."""

    def __init__(self, poison=None, drop=(), **kwargs):
        super().__init__(**kwargs)
        self.poison, self.drop, self.batches = poison or {}, drop, 0
        terms = self.objective.terms

        def poisoned_terms(*args):
            out = terms(*args)
            if self.batches - 1 in self.poison:
                out["waveform"] = _Scale.apply(out["waveform"], self.poison[self.batches - 1])
            return out

        self.objective.terms = poisoned_terms

    def training_step(self, batch, batch_idx):
        self.batches += 1
        if self.batches - 1 in self.drop:  # the reference run: this batch never happened
            return None
        return super().training_step(batch, batch_idx)


POISON, AFTER = {2: float("inf"), 3: float("nan")}, 20
SKIP_WEIGHTS = {"mel": 0.2, "waveform": 0.5, "adv_feat": 0.3}


def _skip_run(tmp_path, **probe) -> tuple[_Probe, L.Trainer]:
    from taae.models.discriminators import ComplexSTFTDiscriminator

    torch.manual_seed(0)
    generator = TAAE(TAAEConfig(stem_width=64, widths=(64,), strides=(2,), depths=(1,), head_dim=32,
                                layer_scale_init=0.1, attention_backend="sdpa"))
    module = _Probe(generator=generator, discriminator=ComplexSTFTDiscriminator(fft_sizes=(256,), filters=4),
                    mel_loss=MultiScaleMelLoss(window_lengths=(64, 256), n_mels=(10, 40)), num_audio_samples=0,
                    loss_weights=SKIP_WEIGHTS, balancer=GradientBalancer(ema_decay=0.5, per_item=False),
                    ema_decay=0.9, optimizer_g=lambda p: torch.optim.AdamW(p, lr=1e-3),
                    optimizer_d=lambda p: torch.optim.AdamW(p, lr=1e-3), **probe)
    wav = torch.stack([synth_speech(0.04, seed=i) for i in range(2)])  # (2, 1, 640)
    loader = torch.utils.data.DataLoader([wav] * (max(POISON) + 1 + AFTER), batch_size=None)
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, loader)
    return module, trainer


def _run_state(module: CodecModule, trainer: L.Trainer) -> dict:
    state = {k: v for k, v in module.state_dict().items() if k != "nan_skips"}  # weights, EMA, balancer, steps
    for i, opt in enumerate(trainer.optimizers):
        for j, param_state in opt.state_dict()["state"].items():
            state.update({f"opt{i}.{j}.{k}": v for k, v in param_state.items()})
    state["rng"] = torch.get_rng_state()
    return state


def test_a_poisoned_term_gradient_skips_the_batch_and_leaves_the_run_as_if_it_never_came(tmp_path):
    # Bug (main): the balancer folded the step's norms into its averages before the finite check, so the inf
    # zeroed the waveform term's weight for good and the NaN made every later step skip; the discriminator's
    # step on a skipped batch and the batch's RNG draws also stayed in the run.
    poisoned, trainer = _skip_run(tmp_path / "poisoned", poison=POISON)
    assert int(poisoned.nan_skips) == len(POISON) and int(poisoned.generator_steps) == 2 + AFTER  # it went on
    for name, weight in SKIP_WEIGHTS.items():  # each term kept its share
        assert float(trainer.callback_metrics[f"train/share/{name}"]) == pytest.approx(weight, rel=0.05), name
    poisoned_state = _run_state(poisoned, trainer)
    reference, trainer = _skip_run(tmp_path / "reference", drop=tuple(POISON))
    reference_state = _run_state(reference, trainer)
    assert poisoned_state.keys() == reference_state.keys()
    different = [k for k in reference_state if not torch.equal(poisoned_state[k], reference_state[k])]
    assert not different
