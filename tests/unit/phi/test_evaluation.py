"""Metrics on constructed cases whose answers are known by hand."""

from __future__ import annotations

import pytest

from securemed.phi.corpus import AnnotatedNote
from securemed.phi.entities import PhiEntity
from securemed.phi.evaluation import EntityScore, evaluate, format_table, score_notes

TEXT = "Jane Doe seen 03/04/2021 for cough."
NOTE = AnnotatedNote(TEXT, (("PERSON", 0, 8), ("DATE", 14, 24)))


def test_perfect_detection_scores_one() -> None:
    scores = score_notes([NOTE], [[PhiEntity("PERSON", 0, 8, 1), PhiEntity("DATE", 14, 24, 1)]])
    assert scores["overall"].recall == scores["overall"].precision == scores["overall"].f2 == 1


def test_a_span_missing_one_character_is_not_recalled() -> None:
    scores = score_notes([NOTE], [[PhiEntity("PERSON", 0, 7, 1), PhiEntity("DATE", 14, 24, 1)]])
    assert scores["PERSON"].recall == 0.0 and scores["DATE"].recall == 1.0
    assert scores["overall"].recall == 0.5


def test_punctuation_and_spaces_do_not_count() -> None:
    # the date without its slashes still removes every digit
    predicted = [PhiEntity("PERSON", 0, 8, 1), PhiEntity("DATE", 14, 16, 1),
                 PhiEntity("DATE", 17, 19, 1), PhiEntity("DATE", 20, 24, 1)]  # fmt: skip
    assert score_notes([NOTE], [predicted])["DATE"].recall == 1.0


def test_precision_counts_characters_outside_any_true_span() -> None:
    # "Jane Doe seen" as PERSON: 7 PHI letters + 4 letters of "seen" -> 7/11
    scores = score_notes([NOTE], [[PhiEntity("PERSON", 0, 13, 1)]])
    assert scores["PERSON"].precision == pytest.approx(7 / 11)
    assert scores["PERSON"].recall == 1.0 and scores["DATE"].recall == 0.0


def test_mislabelled_but_removed_phi_counts_for_recall_not_typed_precision() -> None:
    scores = score_notes([NOTE], [[PhiEntity("LOCATION", 0, 8, 1)]])
    assert scores["PERSON"].recall == 1.0
    assert scores["LOCATION"].precision == 1.0 and scores["LOCATION"].typed_precision == 0.0


def test_f2_weighs_recall_four_times_precision() -> None:
    score = EntityScore("X", true_spans=10, recalled_spans=5, predicted_chars=10,
                        correct_chars=10, typed_correct_chars=10)  # fmt: skip
    assert score.f2 == pytest.approx(5 * 1.0 * 0.5 / (4 * 1.0 + 0.5))
    assert not score.meets_targets()
    empty = EntityScore("X", 0, 0, 0, 0, 0)
    assert empty.recall == empty.precision == 1.0 and empty.meets_targets()


def test_evaluate_reports_counts_and_scores_without_text() -> None:
    report = evaluate(lambda text: [PhiEntity("PERSON", 0, 8, 1)], [NOTE])
    assert report["meets_targets"] is False
    assert report["entities"]["DATE"]["recall"] == 0.0
    table = format_table(report)
    assert "Jane" not in table and "Jane" not in str(report)
    assert "DATE" in table and "NO" in table


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="1 notes but 0"):
        score_notes([NOTE], [])
