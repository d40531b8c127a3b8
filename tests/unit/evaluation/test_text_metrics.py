"""BLEU and ROUGE-L on pairs whose values are worked out by hand."""

from __future__ import annotations

import math

import pytest

from securemed.evaluation.text_metrics import corpus_bleu, rouge_l, tokenize


def test_tokenize_splits_words_numbers_and_punctuation() -> None:
    assert tokenize("A 3.1 cm nodule, left.") == ["a", "3.1", "cm", "nodule", ",", "left", "."]


def test_identical_reports_score_one() -> None:
    text = "There is a small left pleural effusion."
    assert corpus_bleu([text], [text]) == pytest.approx({f"bleu{n}": 1.0 for n in range(1, 5)})
    assert rouge_l([text], [text]) == pytest.approx(1.0)


def test_bleu_on_a_hand_computed_pair() -> None:
    # hyp: "no pleural effusion ." (4 tokens); ref: "no effusion ." (3 tokens)
    # unigrams: no, effusion, . match (3/4); bigrams: "effusion ." matches (1/3)
    # trigrams: none -> BLEU-3 = BLEU-4 = 0; hyp longer than ref: no brevity penalty
    scores = corpus_bleu(["no pleural effusion."], ["no effusion."])
    assert scores["bleu1"] == pytest.approx(3 / 4)
    assert scores["bleu2"] == pytest.approx(math.sqrt(3 / 4 * 1 / 3))
    assert scores["bleu3"] == 0.0 and scores["bleu4"] == 0.0


def test_brevity_penalty_applies_to_short_output() -> None:
    # hyp "no effusion" (2) vs ref "no effusion seen" (3): p1 = 1, BP = exp(1 - 3/2)
    assert corpus_bleu(["no effusion"], ["no effusion seen"])["bleu1"] == pytest.approx(
        math.exp(-0.5)
    )


def test_rouge_l_on_a_hand_computed_pair() -> None:
    # hyp: "the heart is enlarged" (4); ref: "the heart is normal" (4); LCS = 3
    assert rouge_l(["the heart is enlarged"], ["the heart is normal"]) == pytest.approx(0.75)


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="references"):
        corpus_bleu(["a"], [])
    with pytest.raises(ValueError):
        rouge_l([], [])
