"""Session fixtures for the protocol tests: tiny random transformers folders, built once."""

from __future__ import annotations

import pytest

from tests.eval import speech_folders as F


@pytest.fixture(scope="session")
def hf_folders(tmp_path_factory):
    """{"encodec", "mimi", "dac-hf", "hubert", "wavlm"} → saved tiny random model folders."""
    root = tmp_path_factory.mktemp("hf")
    return {"encodec": F.save(F.tiny_encodec(), root / "encodec"), "mimi": F.save(F.tiny_mimi(), root / "mimi"),
            "dac-hf": F.save(F.tiny_hf_dac(), root / "dac-hf"), "hubert": F.hubert_ctc_folder(root / "hubert"),
            "wavlm": F.wavlm_xvector_folder(root / "wavlm")}
