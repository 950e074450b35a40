"""DAC 1.0.0's weights through taae: codes equal, audio ≤ 1e-5, DAC's length rule, strict loading and errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from taae.codec import Codec
from taae.interop.dac import load_dac
from taae.models.rvqgan import RVQGAN
from tests.interop.common import DAC_FILE, DAC_PACKAGE_FILE, STABLE_CODEC_DIR, checked_speech, outputs

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return load_dac(DAC_FILE).model


@torch.no_grad()
def test_codes_and_audio_equal_dac(model):
    out, meta = outputs("dac_outputs")
    x = checked_speech(1.0, meta["input"]["sha256_16"])
    codes = model.encode(x)
    assert torch.equal(codes, out["codes"])
    audio = model.decode(codes)
    n = meta["audio_samples"]
    assert n == 15992 and audio.shape[-1] == 16000  # DAC's 8-samples-short output, padded back to S·hop
    torch.testing.assert_close(audio[..., :n], out["audio"], rtol=0, atol=1e-5)
    assert not audio[..., n:].any()


@torch.no_grad()
def test_taae_exact_length_fix_would_change_the_last_samples(model):
    """Why the import keeps DAC's length rule: output_padding feeds one more frame into the later convs."""
    out, meta = outputs("dac_outputs")
    exact = RVQGAN(dataclasses.replace(model.config, exact_length=True)).eval()
    exact.load_state_dict(model.state_dict())  # no parameter differs between the two rules
    audio = exact.decode(out["codes"])[..., : meta["audio_samples"]]
    torch.testing.assert_close(audio[..., :15000], out["audio"][..., :15000], rtol=0, atol=1e-5)
    assert (audio - out["audio"]).abs().max() > 1e-3  # measured 0.04, all in the last ~350 samples


def test_weight_norm_gain_of_transposed_convs_keeps_its_input_channel_shape(model):
    conv = model.decoder.block[1].block[1].conv
    assert conv.parametrizations.weight.original0.shape == (32, 1, 1)  # (in_ch, 1, 1), as DAC's weight_g


def _error(path) -> str:
    with pytest.raises(ValueError) as info:
        load_dac(path)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_errors_name_the_problem(tmp_path):
    data = torch.load(DAC_FILE, weights_only=True)
    del data["state_dict"]["quantizer.quantizers.3.codebook.weight"]
    torch.save(data, tmp_path / "missing.pth")
    assert "1 missing ['quantizer.quantizers.3.codebook.weight']" in _error(tmp_path / "missing.pth")
    data = torch.load(DAC_FILE, weights_only=True)
    data["metadata"]["kwargs"]["use_magic"] = True
    torch.save(data, tmp_path / "kwarg.pth")
    assert "unknown key 'use_magic'" in _error(tmp_path / "kwarg.pth")
    assert "not a DAC weights file" in _error(STABLE_CODEC_DIR / "model.safetensors")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    assert "not a readable torch file" in _error(tmp_path / "junk.pth")


def test_code_is_never_unpickled(tmp_path):
    from pathlib import PurePosixPath  # any class that is not plain data: its global must be refused

    torch.save({"state_dict": {}, "metadata": {"kwargs": {}}, "evil": PurePosixPath("x")}, tmp_path / "pickled.pth")
    assert "refused to unpickle" in _error(tmp_path / "pickled.pth")


@torch.no_grad()
def test_codec_load_and_cli_import(tmp_path, capsys):
    from taae.__main__ import main

    out, meta = outputs("dac_outputs")
    x = checked_speech(1.0, meta["input"]["sha256_16"])[0]
    codec = Codec.load(DAC_FILE)
    assert torch.equal(codec.encode(x, 16000, normalize=False), out["codes"])
    assert main(["import", "dac", str(DAC_FILE), str(tmp_path / "export")]) == 0
    assert "length rule kept" in capsys.readouterr().out
    exported = Codec.load(tmp_path / "export")
    assert exported.model.config.exact_length is False
    assert torch.equal(exported.encode(x, 16000, normalize=False), out["codes"])
    decoded = exported.decode(out["codes"], num_samples=meta["audio_samples"])
    torch.testing.assert_close(decoded, out["audio"][0], rtol=0, atol=1e-5)


def test_dac_save_default_package_archive_is_refused_in_one_line(tmp_path, capsys):
    """``DAC.save(path)`` defaults to package=True: a torch.package archive of pickled code, not weights."""
    from taae.__main__ import main

    message = _error(DAC_PACKAGE_FILE)
    assert "torch.package archive" in message and "package=False" in message
    assert main(["import", "dac", str(DAC_PACKAGE_FILE), str(tmp_path / "export")]) == 2
    err = capsys.readouterr().err.strip()
    assert "package=False" in err and len(err.splitlines()) == 1


def _kwargs(**change):
    data = torch.load(DAC_FILE, weights_only=True)
    data["metadata"]["kwargs"].update(change)
    return data


@pytest.mark.parametrize("name, content, expected", [
    ("empty", b"", "not a readable torch file"),
    ("zip_junk", b"PK\x03\x04junk", "not a readable torch file"),
    ("rates_text", lambda: _kwargs(encoder_rates="2458"), "metadata.kwargs.encoder_rates='2458'"),
    ("rates_none", lambda: _kwargs(decoder_rates=None), "metadata.kwargs.decoder_rates=None"),
    ("dim_text", lambda: _kwargs(encoder_dim="64"), "metadata.kwargs.encoder_dim='64'"),
    ("no_codebooks", lambda: _kwargs(n_codebooks=0), "n_codebooks must be a positive integer"),
    ("not_tensors", lambda: {"state_dict": {"encoder.block.0.bias": 1.0}, "metadata": {"kwargs": {}}},
     "metadata.kwargs lacks"),
    ("values_not_tensors", lambda: {**_kwargs(), "state_dict": dict.fromkeys(_kwargs()["state_dict"], 0)},
     "entries are not tensors"),
])
def test_malformed_dac_files_give_one_line_errors(tmp_path, name, content, expected):
    path = tmp_path / f"{name}.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content(), path)
    assert expected in _error(path)
