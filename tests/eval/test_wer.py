"""Our word error rate: edit distance on normalised words."""

from __future__ import annotations

import math

from taae.eval.wer import edit_distance, normalize_text, word_error_rate, word_errors

TEN = "HE HOPED THERE WOULD BE STEW FOR DINNER TURNIPS AND"


def test_one_substitution_in_ten_words_is_exactly_ten_percent():
    planted = TEN.replace("STEW", "STOW")
    assert word_error_rate(TEN, planted) == 0.1
    assert word_errors(TEN, planted).edits == 1 and word_errors(TEN, planted).words == 10


def test_insertions_deletions_and_empty():
    ref = "A B C D".split()
    assert edit_distance(ref, "A C D".split()) == 1  # deletion
    assert edit_distance(ref, "A B X C D".split()) == 1  # insertion
    assert edit_distance(ref, "D C B A".split()) == 4  # reversed: four substitutions, no shorter path
    assert edit_distance([], "A B".split()) == 2
    assert word_error_rate("A B", "") == 1.0
    assert math.isnan(word_error_rate("", "A"))


def test_normalisation_ignores_case_and_punctuation_not_apostrophes():
    assert normalize_text("He hoped, there'd be stew!") == ["HE", "HOPED", "THERE'D", "BE", "STEW"]
    assert word_error_rate("HE HOPED THERE'D BE STEW", "He hoped, there'd be stew!") == 0.0
