"""Word error rate by our own edit distance: WER against a transcript, dWER against the reference's transcription.

WER = (substitutions + deletions + insertions) / words in the reference transcript (Levenshtein distance on words).
Text is normalised before counting (:func:`normalize_text`): case folded, punctuation other than apostrophes
removed, whitespace collapsed, so that LibriSpeech's upper-case transcripts, a CTC model's upper-case output and
Whisper's cased, punctuated output compare on words alone. Whisper's own English normaliser (number and spelling
rewrites) is not applied; papers that use it read a little lower.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PUNCTUATION = re.compile(r"[^\w\s']+")


def normalize_text(text: str) -> list[str]:
    """Words of ``text``: upper-cased, punctuation (but apostrophes) dropped, split on whitespace."""
    return _PUNCTUATION.sub(" ", text.upper()).split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance between two word sequences (unit cost for substitution, deletion, insertion)."""
    prev = list(range(len(hyp) + 1))  # distance of ref[:0] to hyp[:j]
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


@dataclass
class WordErrors:
    """Errors of one hypothesis against one reference; ``rate`` is NaN-free only when ``words`` > 0."""

    edits: int
    words: int

    @property
    def rate(self) -> float:
        return self.edits / self.words if self.words else float("nan")


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """Word edits of ``hypothesis`` against ``reference`` and the reference's word count, after normalisation."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    return WordErrors(edits=edit_distance(ref, hyp), words=len(ref))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of one utterance (a fraction: 0.1 is 10 %); NaN when the reference has no words."""
    return word_errors(reference, hypothesis).rate
