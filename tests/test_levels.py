"""Decoding gives the audio back at the level it came in: the token file records the loudness gain (version 2)."""

from __future__ import annotations

import pytest
import soundfile as sf
import torch
from torch import nn

from taae.__main__ import main
from taae.codec import Codec
from taae.io.audio import AudioError, load_audio, loudness, save_audio
from taae.io.tokens import TokenFile
from taae.quantizers.token_spec import TokenSpec
from tests.codec.test_codec import tiny_model, write_checkpoint
from tests.conftest import demo_speech

PCM_STEPS = 32767.5


class PassThrough(nn.Module):
    """A lossless stand-in codec (16-bit PCM as tokens, one frame per sample): whatever level the decoded audio
    has comes from the Codec's own pre- and post-processing, which is what these tests measure."""

    sample_rate, hop_length, frame_rate, loss_terms, config = 16000, 1, 16000.0, (), None

    def num_parameters(self):
        return 0

    def presets(self):
        return {"native": TokenSpec("native", (65536,), self.frame_rate)}

    def aliases(self):
        return {}

    def resolve_preset(self, preset=None):
        if preset not in (None, "native"):
            raise ValueError(f"unknown preset {preset!r}")
        return "native"

    def encode(self, wav, preset=None):  # (B, 1, T) -> (B, 1, T)
        return ((wav.double().clamp(-1, 1) + 1) * PCM_STEPS).round().long()

    def decode(self, tokens, preset=None):  # (B, 1, T) -> (B, 1, T)
        return (tokens.double() / PCM_STEPS - 1).float()


def _at(wav: torch.Tensor, lufs: float) -> torch.Tensor:
    return wav * 10 ** ((lufs - loudness(wav, 16000)) / 20)


def test_a_file_at_minus_35_lufs_decodes_back_at_minus_35(tmp_path):
    codec = Codec(PassThrough())
    save_audio(tmp_path / "quiet.wav", _at(demo_speech(), -35.0), 16000, "FLOAT")
    tokens = codec.encode_file(tmp_path / "quiet.wav")
    assert tokens.gain_db == pytest.approx(15.0, abs=0.01)
    tokens.save(tmp_path / "quiet.npz")
    save_audio(tmp_path / "back.wav", codec.decode_file(tmp_path / "quiet.npz"), 16000)
    assert loudness(load_audio(tmp_path / "back.wav")[0], 16000) == pytest.approx(-35.0, abs=0.5)
    kept = codec.decode_file(tmp_path / "quiet.npz", keep_level=True)
    assert loudness(kept, 16000) == pytest.approx(-20.0, abs=0.05)
    assert torch.equal(codec.decode(TokenFile.load(tmp_path / "quiet.npz")), codec.decode_file(tmp_path / "quiet.npz"))


def test_the_gain_is_undone_exactly_for_a_real_model(tmp_path):
    codec = Codec(tiny_model())
    wav = _at(demo_speech()[:, :16000], -35.0)
    tokens = codec.encode_item(wav, 16000, "700bps")
    assert tokens.gain_db == pytest.approx(-20.0 - loudness(wav, 16000), abs=1e-4)
    coded = codec.decode_file(tokens, keep_level=True)
    torch.testing.assert_close(codec.decode_file(tokens), coded * 10 ** (-tokens.gain_db / 20), rtol=0, atol=0)
    assert torch.equal(codec.encode_item(wav, 16000, "700bps", normalize=False).tokens,
                       codec.encode(wav, 16000, "700bps", normalize=False))
    assert codec.encode_item(wav, 16000, normalize=False).gain_db == 0.0


def test_the_cli_restores_the_level_unless_told_to_keep_it(tmp_path):
    checkpoint = write_checkpoint(tmp_path / "c.ckpt", tiny_model())
    save_audio(tmp_path / "in.wav", _at(demo_speech()[:, :16000], -35.0), 16000, "FLOAT")
    assert main(["encode", str(tmp_path / "in.wav"), str(tmp_path / "in.npz"), "-c", str(checkpoint)]) == 0
    for flags, name in (([], "restored.wav"), (["--keep-level"], "kept.wav")):
        assert main(["decode", str(tmp_path / "in.npz"), str(tmp_path / name), "-c", str(checkpoint),
                     "--subtype", "FLOAT", *flags]) == 0
    restored, kept = (torch.from_numpy(sf.read(tmp_path / n, dtype="float32")[0]) for n in ("restored.wav",
                                                                                              "kept.wav"))
    gain = TokenFile.load(tmp_path / "in.npz").gain_db
    assert gain == pytest.approx(15.0, abs=0.01)
    torch.testing.assert_close(restored, kept * 10 ** (-gain / 20), rtol=1e-6, atol=1e-7)


def test_input_beyond_unit_without_normalisation_is_refused():
    codec = Codec(PassThrough())
    wav = demo_speech()[:, :8000] * 32768
    with pytest.raises(AudioError, match=r"tensor input: peak .* is beyond ±1 and loudness normalisation is off"):
        codec.encode(wav, 16000, normalize=False)
    with pytest.warns(UserWarning, match="beyond ±1"):
        tokens = codec.encode_item(wav, 16000)
    assert loudness(codec.decode_file(tokens, keep_level=True), 16000) == pytest.approx(-20.0, abs=0.05)
