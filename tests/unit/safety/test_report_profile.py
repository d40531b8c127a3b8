"""The report profile: in-distribution reports look normal, anything else does not."""

from __future__ import annotations

import random

import numpy as np
import pytest

from securemed.data.reports import ReportWriter
from securemed.data.synthetic import SyntheticChestXRays
from securemed.errors import DataError
from securemed.safety import Code, ReportProfile, SafetyPolicy
from securemed.safety.output_checks import anomaly

POLICY = SafetyPolicy()


def training_texts(count: int, seed: int) -> list[str]:
    """The synthetic train split's reports, as ``report_training.dataset.load_texts`` reads
    them (films 0..count-1 of the seed), without importing torch for it."""
    return [r.text for r in ReportWriter(SyntheticChestXRays(seed=seed)).reports(range(count))]


@pytest.fixture(scope="module")
def profile() -> ReportProfile:
    return ReportProfile.fit(training_texts(2000, seed=0))


@pytest.fixture(scope="module")
def unseen_reports() -> list[str]:
    # another seed: reports of the training distribution the profile never saw
    return [r.text for r in ReportWriter(SyntheticChestXRays(seed=11)).reports(range(1000))]


def decision(text: str, profile: ReportProfile) -> str:
    issue = anomaly(text, profile, POLICY)
    return "pass" if issue is None else POLICY.action(issue.code)


def test_in_distribution_reports_are_at_most_one_percent_flagged(
    profile: ReportProfile, unseen_reports: list[str]
) -> None:
    decisions = [decision(text, profile) for text in unseen_reports]
    assert decisions.count("block") == 0
    assert decisions.count("flag") / len(decisions) <= 0.01


def test_shuffled_words_are_blocked(profile: ReportProfile, unseen_reports: list[str]) -> None:
    rng = random.Random(0)
    for text in unseen_reports[:50]:
        words = text.split()
        rng.shuffle(words)
        assert decision(" ".join(words), profile) == "block"


def test_random_text_and_another_style_are_not_passed(profile: ReportProfile) -> None:
    rng = random.Random(1)
    letters = "abcdefghijklmnopqrstuvwxyz"
    gibberish = " ".join(
        "".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(30)
    )
    assert decision(gibberish, profile) == "block"
    other_style = (
        "FINDINGS: The lungs are hyperexpanded with flattening of the hemidiaphragms. "
        "Degenerative changes of the thoracic spine. IMPRESSION: COPD without acute process."
    )
    assert decision(other_style, profile) == "block"
    terse = "FINDINGS: Heart normal. Lungs clear. IMPRESSION: Normal."
    assert decision(terse, profile) in ("flag", "block")


def test_unknown_words_are_counted(profile: ReportProfile) -> None:
    score = profile.score("FINDINGS: There is no pneumothorax. IMPRESSION: Zebra giraffe.")
    assert score.oov_rate == pytest.approx(2 / 12)  # 12 tokens, punctuation included
    issue = anomaly("FINDINGS: quux IMPRESSION: zorp", profile, POLICY)
    assert issue is not None and issue.code == Code.REPORT_OUT_OF_DISTRIBUTION


def test_json_round_trip_keeps_the_scores(profile: ReportProfile) -> None:
    restored = ReportProfile.from_json(profile.to_json())
    text = training_texts(8, seed=4)[0]
    assert restored.score(text) == profile.score(text)
    assert restored.heldout_nll == profile.heldout_nll


def test_thresholds_are_ordered_quantiles_of_the_heldout_scores(profile: ReportProfile) -> None:
    scores = np.array(profile.heldout_nll)
    assert len(scores) == 400  # a fifth of 2,000
    assert np.median(scores) < profile.flag_threshold(0.995) <= scores.max()
    assert profile.block_threshold(1.0) > scores.max()


def test_fitting_needs_enough_reports_and_loading_needs_a_profile() -> None:
    with pytest.raises(DataError, match="at least"):
        ReportProfile.fit(["FINDINGS: a IMPRESSION: b"] * 3)
    with pytest.raises(DataError, match="refit"):
        ReportProfile.from_json('{"format": "something else"}')
    with pytest.raises(DataError, match="malformed"):
        ReportProfile.from_json("not json")
