"""The papers' model-based metrics from local transformers folders: WER / dWER with an ASR model, speaker similarity
with a WavLM x-vector model.

Shape legend: T samples, D embedding size.

- ``wer``: word error rate of the ASR transcription of a system's output against the data's transcript
  (LibriSpeech ``*.trans.txt``); the reference row (``identity``) is scored by the same code, so its WER is the ASR
  model's own floor on this data.
- ``dwer``: the same against the ASR transcription of the reference itself, for data without transcripts.
- ``sim``: cosine similarity of the speaker embeddings (``WavLMForXVector(...).embeddings``) of the reference and
  the system's output.

The ASR folder holds a CTC model (HuBERT, wav2vec 2.0, WavLM ``*ForCTC``) or an encoder-decoder (Whisper), plus its
processor (feature extractor + tokenizer); the speaker folder an ``*ForXVector`` model and its feature extractor.
Both run in the main process, in eval mode, greedy decoding: deterministic for a given machine. Whisper's feature
extractor keeps at most its window (30 s for the released models): longer utterances are cut, not transcribed in
pieces (LibriSpeech test-clean holds a few of up to ~35 s; HuBERT-CTC has no such limit). Audio is resampled
to each model's own rate. Each is optional; a folder that does not load is one report line naming it, and only
its column is lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from taae.eval.inputs import content_hash, read_transcripts
from taae.eval.wer import word_errors

SPEECH_METRICS = ("wer", "dwer", "sim")


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _check_folder(folder: str | Path, flag: str) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{flag} {folder}: not found or not a folder")
    if not (folder / "config.json").is_file():
        raise ValueError(f"{flag} {folder}: not a transformers model folder (no config.json)")
    return folder


def _resample(wav: Tensor, source: int, target: int) -> Tensor:
    import torchaudio.functional as AF

    return wav if source == target else AF.resample(wav, source, target)


class AsrModel:
    """Greedy transcription with a CTC or an encoder-decoder (Whisper) transformers model."""

    def __init__(self, folder: str | Path, device: str = "cpu"):
        import transformers as tf

        self.folder = _check_folder(folder, "--asr")
        try:
            config = tf.AutoConfig.from_pretrained(self.folder)
            self.seq2seq = bool(getattr(config, "is_encoder_decoder", False))
            cls = tf.AutoModelForSpeechSeq2Seq if self.seq2seq else tf.AutoModelForCTC
            self.model = cls.from_pretrained(self.folder).to(device).eval()
            self.processor = tf.AutoProcessor.from_pretrained(self.folder)
        except Exception as err:  # noqa: BLE001 - any loading failure is one line naming the folder
            raise ValueError(f"--asr {self.folder}: cannot load an ASR model and processor: {_first_line(err)}") \
                from None
        self.device = device
        self.sample_rate = int(self.processor.feature_extractor.sampling_rate)

    @torch.inference_mode()
    def transcribe(self, wav: Tensor, sample_rate: int) -> str:
        """Text of (1, T) audio at ``sample_rate``."""
        x = _resample(wav.reshape(1, -1).float(), sample_rate, self.sample_rate).reshape(-1).numpy()
        inputs = self.processor(audio=x, sampling_rate=self.sample_rate, return_tensors="pt").to(self.device)
        if self.seq2seq:
            ids = self.model.generate(**inputs)
            return self.processor.batch_decode(ids, skip_special_tokens=True)[0]
        ids = self.model(**inputs).logits.argmax(dim=-1)
        return self.processor.batch_decode(ids)[0]


class SpeakerModel:
    """Speaker embeddings of an x-vector transformers model (``WavLMForXVector``)."""

    def __init__(self, folder: str | Path, device: str = "cpu"):
        import transformers as tf

        self.folder = _check_folder(folder, "--speaker")
        try:
            self.model = tf.AutoModelForAudioXVector.from_pretrained(self.folder).to(device).eval()
            self.extractor = tf.AutoFeatureExtractor.from_pretrained(self.folder)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"--speaker {self.folder}: cannot load an x-vector model and feature extractor: "
                             f"{_first_line(err)}") from None
        self.device = device
        self.sample_rate = int(self.extractor.sampling_rate)

    @torch.inference_mode()
    def embed(self, wav: Tensor, sample_rate: int) -> Tensor:
        """(D,) embedding of (1, T) audio at ``sample_rate``."""
        x = _resample(wav.reshape(1, -1).float(), sample_rate, self.sample_rate).reshape(-1).numpy()
        inputs = self.extractor(x, sampling_rate=self.sample_rate, return_tensors="pt").to(self.device)
        return self.model(**inputs).embeddings.reshape(-1).float().cpu()


@dataclass
class SpeechScore:
    values: dict[str, float]
    errors: dict[str, str]
    texts: dict[str, str]


class SpeechScorer:
    """Computes ``wer`` / ``dwer`` / ``sim`` for each (file, system) pair, from the reference's transcript,
    transcription and embedding prepared once per file."""

    def __init__(self, asr: AsrModel | None, speaker: SpeakerModel | None, transcripts: dict[int, str],
                 sample_rate: int):
        self.asr, self.speaker, self.transcripts, self.sample_rate = asr, speaker, transcripts, sample_rate
        self.metrics = ([*(["wer"] if transcripts else []), "dwer"] if asr else []) + (["sim"] if speaker else [])
        self._ref_text: dict[int, str] = {}
        self._ref_emb: dict[int, Tensor] = {}
        self._ref_error: dict[int, str] = {}

    def prepare(self, index: int, ref: Tensor) -> None:
        """Transcribe and embed the reference of file ``index``; a failure here becomes that file's error in
        ``score`` (the signal metrics of the file are kept)."""
        self._ref_error.pop(index, None)
        try:
            if self.asr is not None:
                self._ref_text[index] = self.asr.transcribe(ref, self.sample_rate)
            if self.speaker is not None:
                self._ref_emb[index] = self.speaker.embed(ref, self.sample_rate)
        except Exception as err:  # noqa: BLE001
            self._ref_error[index] = f"reference: {type(err).__name__}: {_first_line(err)}"

    def score(self, index: int, out: Tensor | None) -> SpeechScore:
        """Metrics of one system's output ``out`` (1, T) for file ``index``; NaN plus an error where one fails."""
        res = SpeechScore({m: math.nan for m in self.metrics}, {}, {})
        if out is None:
            return res
        if index in self._ref_error:
            res.errors["speech"] = self._ref_error[index]
            return res
        if self.asr is not None:
            try:
                hyp = self.asr.transcribe(out, self.sample_rate)
                res.texts["hypothesis"] = hyp
                targets = {"dwer": self._ref_text[index]}
                if "wer" in self.metrics:
                    targets["wer"] = self.transcripts.get(index)
                for key, target in targets.items():
                    if target is None:
                        res.errors[key] = "no transcript for this file"
                        continue
                    errs = word_errors(target, hyp)
                    res.values[key] = errs.rate
                    res.values[f"{key}_edits"], res.values[f"{key}_words"] = float(errs.edits), float(errs.words)
                    if not errs.words:
                        res.errors[key] = "empty reference text"
                res.texts["reference_transcription"] = self._ref_text[index]
                if index in self.transcripts:
                    res.texts["transcript"] = self.transcripts[index]
            except Exception as err:  # noqa: BLE001 - one file's failure is counted, not fatal
                res.errors["asr"] = f"{type(err).__name__}: {_first_line(err)}"
        if self.speaker is not None:
            try:
                emb = self.speaker.embed(out, self.sample_rate)
                res.values["sim"] = float(torch.nn.functional.cosine_similarity(emb, self._ref_emb[index], dim=0))
            except Exception as err:  # noqa: BLE001
                res.errors["sim"] = f"{type(err).__name__}: {_first_line(err)}"
        return res

    def describe(self) -> list[str]:
        """Report lines: which model computed each column, or why a column is absent."""
        lines = []
        if self.asr is None:
            lines.append("WER/dWER absent: no --asr model folder given")
        else:
            lines.append(f"WER/dWER: ASR {type(self.asr.model).__name__} from {self.asr.folder} (sha256 "
                         f"{content_hash(self.asr.folder)}), greedy; column = mean per-utterance WER, corpus WER "
                         "(Σ edits / Σ words) in report.json")
            if not self.transcripts:
                lines.append("WER absent: the data has no transcripts; dWER is against the ASR transcription of "
                             "each reference")
        if self.speaker is None:
            lines.append("SIM absent: no --speaker model folder given")
        else:
            lines.append(f"SIM: cosine of {type(self.speaker.model).__name__} embeddings, reference vs output, "
                         f"from {self.speaker.folder} (sha256 {content_hash(self.speaker.folder)})")
        return lines


def speech_scorer(asr: str | None, speaker: str | None, files: list[Path], sample_rate: int,
                  device: str = "cpu") -> tuple[SpeechScorer | None, list[str]]:
    """The WER/dWER/SIM scorer for the folders given (None without any) and the report's lines about it."""
    if not asr and not speaker:
        return None, ["WER/dWER and SIM absent: no --asr / --speaker model folder given"]
    notes, transcripts = [], {}
    # A folder that does not load loses its column only: one line in the report, every other column kept.
    asr_model = speaker_model = None
    try:
        asr_model = AsrModel(asr, device) if asr else None
    except (ValueError, FileNotFoundError) as err:
        notes.append(f"WER/dWER absent: {err}")
    try:
        speaker_model = SpeakerModel(speaker, device) if speaker else None
    except (ValueError, FileNotFoundError) as err:
        notes.append(f"SIM absent: {err}")
    if asr_model is None and speaker_model is None:
        return None, notes + ([] if asr else ["WER/dWER absent: no --asr model folder given"]) \
            + ([] if speaker else ["SIM absent: no --speaker model folder given"])
    if asr_model is not None:
        by_path = read_transcripts(files)
        transcripts = {i: by_path[f] for i, f in enumerate(files) if f in by_path}
        if transcripts and len(transcripts) < len(files):
            notes.append(f"WER: {len(files) - len(transcripts)} of {len(files)} files have no line in a "
                         "*.trans.txt beside them (their WER is empty, their dWER is computed)")
    scorer = SpeechScorer(asr_model, speaker_model, transcripts, sample_rate)
    lines = scorer.describe()
    # A folder given but not loaded already has its line in ``notes``: drop the "no folder given" one.
    if asr:
        lines = [x for x in lines if not x.startswith("WER/dWER absent: no --asr")]
    if speaker:
        lines = [x for x in lines if not x.startswith("SIM absent: no --speaker")]
    return scorer, notes + lines
