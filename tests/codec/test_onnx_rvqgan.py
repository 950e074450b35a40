"""The RVQGAN baseline in ONNX Runtime (taae.codec.onnx_rvqgan): tokens equal the eager ones, audio within 1e-4."""

from __future__ import annotations

import pytest
import torch

from taae.codec import Codec
from taae.codec.onnx_rvqgan import RVQGANOnnxRunner
from taae.models.rvqgan import RVQGAN, RVQGANConfig
from tests.conftest import synth_speech

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")  # torch.onnx's exporter


def tiny_rvqgan(seed: int = 0) -> RVQGAN:
    """DAC's 16 kHz strides (the odd 5 included), four codebooks."""
    torch.manual_seed(seed)
    return RVQGAN(RVQGANConfig(encoder_dim=8, encoder_strides=(2, 4, 5, 8), latent_dim=32, decoder_dim=32,
                               decoder_strides=(8, 5, 4, 2), n_codebooks=4, codebook_size=256, codebook_dim=4))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx_rvqgan") / "export"
    eager = Codec(tiny_rvqgan())
    eager.export(folder, onnx=True)
    return eager, folder


@pytest.mark.parametrize("seconds", [0.3, 2.0, 6.1])
def test_rvqgan_onnx_tokens_equal_eager_and_audio_within_1e_4(exported, seconds):
    eager, folder = exported
    onnx = Codec.load(folder, runtime="onnx")
    assert isinstance(onnx._runner, RVQGANOnnxRunner)  # the ONNX trunks really run
    wav = synth_speech(seconds, seed=4)
    for preset in ("native", "2q"):
        tokens = onnx.encode(wav, 16000, preset)
        assert torch.equal(tokens, eager.encode(wav, 16000, preset)), preset
        torch.testing.assert_close(onnx.decode(tokens, preset), eager.decode(tokens, preset), atol=1e-4, rtol=0)


def test_rvqgan_onnx_list_encode_equals_eager(exported):
    eager, folder = exported
    onnx = Codec.load(folder, runtime="onnx")
    wavs = [synth_speech(s, seed=i) for i, s in enumerate((0.3, 1.0, 2.5))]
    for a, b in zip(onnx.encode(wavs, 16000), eager.encode(wavs, 16000)):
        assert torch.equal(a, b)


def test_a_taae_onnx_folder_is_refused_by_an_rvqgan_codec(exported, tmp_path):
    from tests.codec.test_codec import tiny_model

    eager, _ = exported
    taae = Codec(tiny_model())
    taae.export(tmp_path / "taae", onnx=True)
    with pytest.raises(ValueError, match=r"was exported from model \w+ but this codec's model is") as err:
        eager.use_onnx(tmp_path / "taae" / "onnx")
    assert "\n" not in str(err.value)
