"""Both codec families implement taae.models.interface.CodecModel, in members, signatures and behaviour; Codec and
CodecModule refuse anything else with a TypeError naming what is missing."""

from __future__ import annotations

import inspect

import pytest
import torch

from taae.codec import Codec
from taae.models.base import GeneratorOutput
from taae.models.interface import CodecModel, SupportsUserPresets, check_codec_model, protocol_members
from taae.models.rvqgan import RVQGAN, RVQGANConfig
from taae.models.taae import TAAE, TAAEConfig
from taae.training import CodecModule

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_taae() -> TAAE:
    return TAAE(TAAEConfig(stem_width=128, widths=(128,), strides=(2,), depths=(1,), attention_backend="sdpa"))


def tiny_rvqgan() -> RVQGAN:
    return RVQGAN(RVQGANConfig(encoder_dim=4, decoder_dim=32, n_codebooks=3, codebook_size=16, codebook_dim=4))


MODELS = {"taae": tiny_taae, "rvqgan": tiny_rvqgan}


def _parameters(fn) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values() if p.name != "self"]


@pytest.mark.parametrize("family", sorted(MODELS))
def test_each_family_implements_the_protocol_with_its_signatures(family):
    model = MODELS[family]()
    assert isinstance(model, CodecModel)
    for name in ("encode", "decode"):
        protocol, implemented = _parameters(getattr(CodecModel, name)), _parameters(getattr(type(model), name))
        assert implemented[: len(protocol)] == protocol, (family, name)
    assert isinstance(model, SupportsUserPresets) == (family == "taae")


@pytest.mark.parametrize("family", sorted(MODELS))
def test_each_family_keeps_the_contract(family):
    """What the training module, Codec and evaluate.py rely on, checked on each family the same way."""
    model = MODELS[family]().eval()
    assert model.frame_rate == model.sample_rate / model.hop_length
    wav = torch.randn(2, 1, 3 * model.hop_length - 7) * 0.1
    out = model(wav)
    assert isinstance(out, GeneratorOutput) and out.audio.shape == wav.shape
    assert set(out.losses) == set(model.loss_terms)  # declared = produced
    presets = model.presets()
    assert "native" in presets
    for name, spec in presets.items():
        tokens = model.encode(wav, name)
        assert tokens.dtype == torch.int64 and tokens.shape == (2, spec.tokens_per_frame, 3), name
        spec.check_tokens(tokens)
        assert model.decode(tokens, name).shape == (2, 1, 3 * model.hop_length), name
    model.train()  # encode is the inference path whatever the mode
    torch.manual_seed(1)
    assert torch.equal(model.encode(wav), model.eval().encode(wav))


def test_a_module_that_is_not_a_codec_is_refused_naming_what_it_lacks():
    linear = torch.nn.Linear(1, 1)
    with pytest.raises(TypeError, match=r"Codec\(model\): Linear is not a codec model.*'encode'"):
        Codec(linear)
    with pytest.raises(TypeError, match=r"model.generator: Linear is not a codec model.*'presets'"):
        CodecModule(linear)
    check_codec_model(tiny_taae(), "here")  # no error


def test_protocol_members_lists_what_the_protocol_declares():
    assert protocol_members(CodecModel) == ["config", "loss_terms", "sample_rate", "hop_length", "frame_rate",
                                            "forward", "encode", "decode", "presets", "aliases", "resolve_preset",
                                            "num_parameters"]
    assert protocol_members(SupportsUserPresets) == ["add_preset"]


def test_user_presets_are_offered_only_by_models_that_take_them():
    rvq = Codec(tiny_rvqgan())
    with pytest.raises(ValueError, match="RVQGAN has no user presets"):
        rvq.add_preset("5x5", "5x5")
    with pytest.raises(ValueError, match="unknown preset '5x5'"):
        rvq.resolve_preset("5x5")
    assert Codec(tiny_taae()).resolve_preset("5x5") == "5x5"
