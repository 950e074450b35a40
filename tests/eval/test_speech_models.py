"""WER / dWER / SIM from local transformers folders: scoring rules, determinism, one-line errors."""

from __future__ import annotations

import math

import pytest
import torch

from taae.eval.speech_models import AsrModel, SpeakerModel, SpeechScorer
from tests.conftest import synth_speech
from tests.eval.test_wer import TEN

HEARD = TEN.replace("THERE", "THEIR")
"""What the planted ASR hears in the reference: one word off the transcript."""


class PlantedAsr:
    """Transcribes the reference as ``HEARD`` and anything else with one more word substituted."""

    def __init__(self, ref: torch.Tensor, folder=None):
        self.ref, self.model, self.folder = ref, self, folder

    def transcribe(self, wav: torch.Tensor, sample_rate: int) -> str:
        return HEARD if torch.equal(wav, self.ref) else HEARD.replace("STEW", "STOW")


def test_wer_against_transcript_and_dwer_against_reference_transcription():
    ref = synth_speech(0.3)
    scorer = SpeechScorer(PlantedAsr(ref), None, {0: TEN}, 16000)
    assert scorer.metrics == ["wer", "dwer"]
    scorer.prepare(0, ref)
    same, other = scorer.score(0, ref.clone()), scorer.score(0, ref * 0.5)
    # The reference row, by the same code: WER is the ASR's own error on the transcript, dWER zero.
    assert same.values["wer"] == 0.1 and same.values["dwer"] == 0.0
    assert other.values["wer"] == 0.2 and other.values["dwer"] == 0.1
    assert other.values["wer_edits"] == 2 and other.values["wer_words"] == 10
    assert other.texts["transcript"] == TEN and other.texts["hypothesis"].endswith("STOW FOR DINNER TURNIPS AND")


def test_without_transcripts_only_dwer_and_failed_output_is_nan(tmp_path):
    ref = synth_speech(0.3)
    scorer = SpeechScorer(PlantedAsr(ref, tmp_path), None, {}, 16000)
    assert scorer.metrics == ["dwer"]
    scorer.prepare(0, ref)
    assert math.isnan(scorer.score(0, None).values["dwer"])
    assert any("WER absent: the data has no transcripts" in line for line in scorer.describe())


@torch.inference_mode()
def test_tiny_models_are_deterministic_and_identity_scores_perfectly(hf_folders):
    asr, speaker = AsrModel(hf_folders["hubert"]), SpeakerModel(hf_folders["wavlm"])
    ref = synth_speech(0.5, seed=4)
    text = asr.transcribe(ref, 16000)
    assert text.strip() and text == asr.transcribe(ref.clone(), 16000)
    scorer = SpeechScorer(asr, speaker, {}, 16000)
    scorer.prepare(0, ref)
    same = scorer.score(0, ref.clone())
    assert same.values["dwer"] == 0.0 and same.values["sim"] == pytest.approx(1.0, abs=1e-6)
    noisy = scorer.score(0, ref + 0.3 * torch.randn_like(ref))
    assert -1.0 <= noisy.values["sim"] < 1.0 - 1e-6 and math.isfinite(noisy.values["dwer"])


def test_wrong_or_missing_folders_are_one_line_naming_them(hf_folders, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--asr /no/such: not found"):
        AsrModel("/no/such")
    with pytest.raises(ValueError, match=rf"--asr {tmp_path}: not a transformers model folder"):
        AsrModel(tmp_path)
    with pytest.raises(ValueError, match=rf"--asr {hf_folders['wavlm']}: cannot load an ASR model") as e:
        AsrModel(hf_folders["wavlm"])
    with pytest.raises(ValueError, match=rf"--speaker {hf_folders['hubert']}: cannot load an x-vector model") as f:
        SpeakerModel(hf_folders["hubert"])
    assert "\n" not in str(e.value) + str(f.value)


class FailingAsr(PlantedAsr):
    def transcribe(self, wav: torch.Tensor, sample_rate: int) -> str:
        raise RuntimeError("out of memory\nsecond line")


def test_a_failing_reference_transcription_is_that_files_error_only(tmp_path):
    ref = synth_speech(0.3)
    scorer = SpeechScorer(FailingAsr(ref, tmp_path), None, {0: TEN}, 16000)
    scorer.prepare(0, ref)  # does not raise: the file's signal metrics must survive
    res = scorer.score(0, ref)
    assert math.isnan(res.values["wer"]) and res.errors == {"speech": "reference: RuntimeError: out of memory"}


@torch.inference_mode()
def test_whisper_folder_transcribes_through_generate(tmp_path):
    from tests.eval.speech_folders import whisper_folder

    asr = AsrModel(whisper_folder(tmp_path / "whisper"))
    assert asr.seq2seq and type(asr.model).__name__ == "WhisperForConditionalGeneration"
    ref = synth_speech(0.5, seed=5)
    text = asr.transcribe(ref, 16000)
    assert text.strip() and "<|" not in text and text == asr.transcribe(ref.clone(), 16000)
    scorer = SpeechScorer(asr, None, {0: "A B"}, 16000)
    scorer.prepare(0, ref)
    res = scorer.score(0, ref.clone())
    assert res.values["dwer"] == 0.0 and math.isfinite(res.values["wer"])
