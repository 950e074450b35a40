"""Device-generic by construction: every tensor the codecs compute with follows the model's device.

Run on the virtual second device of tests/virtual_device.py, so that a preset built per call on the CPU, a
submodule kept outside the module tree or a stray ``.cpu()`` fails on a CPU-only machine as it would on CUDA.
"""

from __future__ import annotations

import pytest
import torch

from taae.codec import Codec
from taae.models.rvqgan import RVQGAN, RVQGANConfig
from taae.models.taae import TAAE, TAAEConfig
from tests.conftest import synth_speech
from tests.virtual_device import VirtualDevice

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: a second thread only waits (busy CI machines)

PRESETS = ["native", "1x46656_400bps", "2x15625_700bps", "4x729_1000bps", "400bps", "700bps", "1000bps", "9x3"]


def tiny_taae(backend: str = "auto") -> TAAE:
    # Window (4, 4): the chunked backend uses 64-token chunks, so 1.5 s (75 frames at 50 Hz) has two of them.
    model = TAAE(TAAEConfig(stem_width=32, widths=(64, 64), strides=(1, 2), depths=(1, 1), head_dim=32,
                            window=(4, 4), layer_scale_init=1.0, attention_backend=backend))
    model.add_preset("9x3", [(9, 1.0), (3, 0.125)])  # added before the move, as a user would
    return model.eval()


def tiny_rvqgan() -> RVQGAN:
    return RVQGAN(RVQGANConfig(encoder_dim=8, encoder_strides=(2, 4, 5, 8), latent_dim=32, decoder_dim=32,
                               decoder_strides=(8, 5, 4, 2), n_codebooks=4, codebook_size=64, codebook_dim=4)).eval()


@pytest.mark.parametrize("backend", ["auto", "chunked"])
def test_taae_encode_decode_at_every_preset_stay_on_the_device(backend):
    model, wav = tiny_taae(backend), synth_speech(1.5).unsqueeze(0)
    assert set(PRESETS) <= set(model.presets())
    for preset in PRESETS:
        tokens, audio = model.encode(wav, preset), None
        with VirtualDevice(model, wav):
            on_device = model.encode(wav, preset)
            assert VirtualDevice.is_on_virtual(on_device)
            audio = model.decode(on_device, preset)
            assert VirtualDevice.is_on_virtual(audio)
        assert torch.equal(on_device, tokens), preset
        torch.testing.assert_close(audio, model.decode(tokens, preset), rtol=0, atol=0)


def test_taae_training_step_stays_on_the_device():
    model, wav = tiny_taae().train(), synth_speech(0.5).unsqueeze(0).repeat(2, 1, 1)
    with VirtualDevice(model, wav):
        out = model(wav)
        assert all(VirtualDevice.is_on_virtual(t) for t in (out.audio, out.latent, out.codes))
        out.audio.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_rvqgan_encode_decode_and_training_step_stay_on_the_device():
    model, wav = tiny_rvqgan(), synth_speech(0.1).unsqueeze(0)
    tokens = model.encode(wav, "2q")
    with VirtualDevice(model, wav):
        on_device = model.encode(wav, "2q")
        audio = model.decode(on_device, "2q")
        model.train()
        out = model(wav.repeat(2, 1, 1))
        out.audio.square().mean().backward()
    assert torch.equal(on_device, tokens) and VirtualDevice.is_on_virtual(audio)


def test_codec_encode_decode_keep_the_model_on_the_device_and_return_cpu_tensors():
    codec, wav = Codec(tiny_taae(), chunk_seconds=0.4), synth_speech(1.0)  # three chunks with overlap
    reference = {p: codec.encode(wav, 16000, p) for p in ("native", "700bps", "9x3")}  # each kind of token path
    codec.device = torch.device("xpu")  # what Codec(model, device=...) sets; the model's tensors are tracked below
    with VirtualDevice(codec.model):
        for preset, tokens in reference.items():
            on_device = codec.encode(wav, 16000, preset)
            audio = codec.decode(on_device, preset)
            assert not VirtualDevice.is_on_virtual(on_device) and not VirtualDevice.is_on_virtual(audio)
            assert torch.equal(on_device, tokens), preset


def test_presets_are_registered_submodules_built_once():
    model = tiny_taae()
    buffers = dict(model.named_buffers())
    assert {"residual.stacks.2x15625_700bps._levels", "residual.stacks.9x3._basis"} <= set(buffers)
    assert model._residual("700bps") is model._residual("2x15625_700bps") is model.residual["700bps"]
    assert not any(k.startswith("residual.") for k in model.state_dict())  # the weights alone
    model.add_preset("5x5:1,0.25", [(5, 1.0), (5, 0.25)])  # a name that is no valid module key
    assert model.presets()["5x5:1,0.25"].vocab_sizes == (15625, 15625)
    model.to(torch.float64)
    assert buffers["residual.stacks.9x3._levels"].dtype == torch.int64  # index buffers stay integer


def test_built_in_presets_need_a_six_dim_latent():
    model = TAAE(TAAEConfig(stem_width=128, widths=(128,), strides=(2,), depths=(0,), latent_dim=4))
    assert list(model.presets()) == ["native"]
    with pytest.raises(ValueError, match="unknown preset '700bps'.*need latent_dim 6"):
        model.encode(torch.zeros(1, 1, 640), "700bps")
    model.add_preset("5x5", [(5, 1.0), (5, 0.25)])
    assert model.encode(torch.zeros(1, 1, 640), "5x5").shape == (1, 2, 1)
