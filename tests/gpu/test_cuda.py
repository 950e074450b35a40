"""CUDA against the CPU: every preset's tokens and audio, bf16-mixed training steps, FlexAttention recompiles.

Run by ``pytest -m gpu`` (skipped without CUDA) and by benchmarks/gpu_suite.sh. The attention backends against
the naive reference in fp32 and bf16 are tests/nn/test_attention.py's GPU tests.
"""

from __future__ import annotations

import copy
import math

import lightning as L
import pytest
import torch

from taae.codec import Codec
from taae.models.rvqgan import RVQGAN, RVQGANConfig
from taae.models.taae import TAAE, TAAEConfig
from taae.quantizers.stages import parse_stages
from tests.conftest import synth_speech
from tests.training.test_module import make_module

pytestmark = pytest.mark.gpu

USER_PRESET = "9x3"  # a user preset: it must follow .to() like the built-in ones


def tiny_taae() -> TAAE:
    torch.manual_seed(0)
    model = TAAE(TAAEConfig(stem_width=64, widths=(64, 64), strides=(1, 2), depths=(1, 1), head_dim=32,
                            layer_scale_init=1.0))
    model.add_preset(USER_PRESET, parse_stages(USER_PRESET))
    return model.eval()


def tiny_rvqgan() -> RVQGAN:
    torch.manual_seed(0)
    return RVQGAN(RVQGANConfig(encoder_dim=8, encoder_strides=(2, 4, 5, 8), latent_dim=32, decoder_dim=32,
                               decoder_strides=(8, 5, 4, 2), n_codebooks=4, codebook_size=64, codebook_dim=4)).eval()


@pytest.mark.parametrize("build", [tiny_taae, tiny_rvqgan], ids=["taae", "rvqgan"])
def test_every_preset_on_the_device_equals_the_cpu(build, gpu_device, tmp_path):
    model = build()
    cpu = Codec(copy.deepcopy(model), device="cpu")
    dev = Codec(model, device=gpu_device)
    wav = synth_speech(1.3)
    for preset in cpu.presets():
        tokens = cpu.encode(wav, 16000, preset)
        assert torch.equal(dev.encode(wav, 16000, preset), tokens), preset  # fp32: bit-exact tokens
        torch.testing.assert_close(dev.decode(tokens, preset), cpu.decode(tokens, preset), rtol=1e-4, atol=1e-4,
                                   msg=lambda m, p=preset: f"{p}: {m}")
    # An export keeps the user preset, and it loads straight onto the device.
    loaded = Codec.load(cpu.export(tmp_path / "e"), device=gpu_device)
    assert set(loaded.presets()) == set(cpu.presets())
    if isinstance(model, TAAE):
        assert torch.equal(loaded.encode(wav, 16000, USER_PRESET), cpu.encode(wav, 16000, USER_PRESET))


def test_bf16_mixed_training_steps_are_finite(gpu_device, tmp_path):
    module = make_module()
    before = {k: v.detach().clone() for k, v in module.generator.state_dict().items()}
    losses = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.extend(float(v) for k, v in trainer.callback_metrics.items() if "loss" in k)

    batches = [0.3 * synth_speech(0.08, seed=i).unsqueeze(0).repeat(2, 1, 1) for i in range(3)]  # (2, 1, 1280)
    trainer = L.Trainer(accelerator="gpu" if gpu_device.type == "cuda" else "cpu", devices=1,
                        precision="bf16-mixed", max_steps=6, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        callbacks=[Record()])
    trainer.fit(module, batches)
    assert losses and all(math.isfinite(x) for x in losses), losses
    after = module.generator.state_dict()
    assert any(not torch.equal(before[k], after[k].cpu()) for k in before if after[k].is_floating_point())


def test_flex_attention_does_not_recompile_after_warm_up():
    from torch._dynamo.utils import counters

    from taae.nn.attention import available_backends, windowed_attention

    if "flex" not in available_backends("cuda", torch.bfloat16, head_dim=128):
        pytest.fail("FlexAttention does not compile on this CUDA device")

    def call(n):
        q, k, v = (torch.randn(2, 4, n, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                   for _ in range(3))
        windowed_attention(q, k, v, (63, 64), backend="flex").sum().backward()

    for n in (1000, 1500):  # warm-up: the second length makes dynamo mark the length dynamic
        call(n)
    compiled = counters["stats"]["unique_graphs"]
    for n in range(2000, 12000, 1000):  # 10 new lengths
        call(n)
    torch.cuda.synchronize()
    assert counters["stats"]["unique_graphs"] == compiled, "FlexAttention recompiled for a new input length"
