"""Hub ids: Codec.load("org/name") through a Hugging Face cache laid out as huggingface_hub writes it, offline."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

from taae.codec import Codec
from tests.codec.test_codec import tiny_model
from tests.conftest import synth_speech
from tests.interop.common import STABLE_CODEC_DIR

REVISION = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(hub: Path, repo: str, files: Path, revision: str = REVISION) -> Path:
    """Lay ``files`` out as huggingface_hub's cache does: blobs named by hash, a snapshot of relative links, and
    refs/main naming the snapshot's commit."""
    root = hub / f"models--{repo.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(revision)
    snapshot = root / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for f in sorted(files.iterdir()):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copy(f, root / "blobs" / digest)
        os.symlink(Path("..", "..", "blobs", digest), snapshot / f.name)
    return snapshot


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never download in tests
    return tmp_path / "hf" / "hub"


def test_taae_export_resolves_from_the_cache(hf_home, tmp_path, monkeypatch):
    source = Codec(tiny_model())
    source.export(tmp_path / "export")
    cache_repo(hf_home, "someone/taae-tiny", tmp_path / "export")
    monkeypatch.chdir(tmp_path)  # "someone/taae-tiny" is no local path here
    codec = Codec.load("someone/taae-tiny")
    assert codec.model_hash == source.model_hash
    wav = synth_speech(0.5)
    assert torch.equal(codec.encode(wav, 16000, "700bps"), source.encode(wav, 16000, "700bps"))
    assert Codec.load(f"someone/taae-tiny@{REVISION}").model_hash == source.model_hash


def test_stable_codec_release_resolves_from_the_cache(hf_home, tmp_path, monkeypatch):
    cache_repo(hf_home, "stabilityai/stable-codec-speech-16k", STABLE_CODEC_DIR)
    monkeypatch.chdir(tmp_path)
    codec = Codec.load("stabilityai/stable-codec-speech-16k")
    assert codec.model_hash == Codec.load(STABLE_CODEC_DIR).model_hash
    assert codec.weights == "stable-codec official"


def test_missing_id_offline_is_one_line_naming_the_id_and_the_cache(hf_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        Codec.load("nobody/no-such-codec")
    message = str(err.value)
    assert "\n" not in message and "'nobody/no-such-codec'" in message and str(hf_home) in message
    assert "HF_HUB_OFFLINE=1" in message


def test_hub_id_that_is_not_a_codec_is_one_line(hf_home, tmp_path, monkeypatch):
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "bert"}')
    (other / "model.safetensors").write_bytes(b"0")
    cache_repo(hf_home, "google/bert-tiny", other)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"hub id 'google/bert-tiny' .* is not a codec taae loads") as err:
        Codec.load("google/bert-tiny")
    assert "\n" not in str(err.value)


def test_a_local_path_wins_over_a_hub_id(hf_home, tmp_path, monkeypatch):
    Codec(tiny_model(seed=1)).export(tmp_path / "org" / "name")
    monkeypatch.chdir(tmp_path)
    assert Codec.load("org/name").weights == "export"
