"""taae.training.objective: the waveform weight's decay, and a logged key set that never grows mid-run."""

import math

import pytest
import torch

from taae.losses import MultiScaleMelLoss
from taae.models.discriminators import ComplexSTFTDiscriminator
from taae.models.taae import TAAE, TAAEConfig
from taae.training.balancer import GradientBalancer
from taae.training.objective import Objective
from tests.conftest import synth_speech

WEIGHTS = {"mel": 1.0, "waveform": 2.0, "adv_gen": 0.5, "adv_feat": 1.0}


def _objective(generator, **kwargs) -> Objective:
    return Objective(generator, True, mel_loss=MultiScaleMelLoss(window_lengths=(64, 256), n_mels=(10, 40)),
                     loss_weights=WEIGHTS, **kwargs)


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return TAAE(TAAEConfig(stem_width=64, widths=(64,), strides=(2,), depths=(1,), head_dim=32,
                           attention_backend="sdpa"))


def test_the_waveform_weight_decays_per_generator_step_and_nothing_else_does(generator):
    objective = _objective(generator, waveform_decay=0.5)
    assert [objective.weight("waveform", k) for k in (0, 1, 3)] == [2.0, 1.0, 0.25]
    assert [objective.weight(name, 3) for name in ("mel", "adv_gen", "adv_feat")] == [1.0, 0.5, 1.0]
    assert objective.weight("stft", 3) == 0.0  # unweighted: never computed


def test_a_step_logs_the_same_keys_before_and_after_the_adversarial_terms_switch_on(generator):
    # Lightning's CSVLogger rewrites metrics.csv's header when a key appears mid-run, which corrupts the file: the
    # warm-up steps must already log every key, NaN where a term is off.
    objective = _objective(generator, balancer=GradientBalancer(ema_decay=0.5))
    discriminator = ComplexSTFTDiscriminator(fft_sizes=(256,), filters=4)
    wav = torch.stack([synth_speech(0.08, seed=i) for i in range(2)])  # (2, 1, 1280)
    d_keys = {"train/disc", "train/grad_norm_d"}  # the module fills these from its discriminator step
    logs = {}
    for adversarial_on in (False, True):
        loss = objective.generator_loss(wav, generator(wav), discriminator, adversarial_on, generator_steps=0)
        logs[adversarial_on] = objective.step_logs(loss, has_discriminator=True)
    assert set(logs[False]) == set(logs[True]) and d_keys <= set(logs[False])
    off = {key for key, value in logs[False].items() if math.isnan(float(value))}
    assert off == d_keys | {"train/adv_gen", "train/adv_feat", "train/share/adv_gen", "train/share/adv_feat",
                            "train/weight/adv_gen", "train/weight/adv_feat"}
    assert not any(math.isnan(float(logs[True][key])) for key in set(logs[True]) - d_keys)
