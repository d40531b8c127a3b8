import dataclasses
import math

import pytest

from securemed.detection import NormHistoryDetector, detect_norm_anomalies
from securemed.errors import ConfigError, StaleRound


def test_one_large_norm_is_flagged_with_its_hand_computed_z_score():
    report = detect_norm_anomalies({"a": 1.0, "b": 1.2, "c": 0.8, "d": 1.1, "e": 10.0})
    # median 1.1; |deviations| 0.1 0.1 0.3 0 8.9 -> MAD 0.1 -> scale 1.4826 * 0.1.
    assert report.median == pytest.approx(1.1)
    assert report.scale == pytest.approx(0.14826)
    assert report.z_scores["e"] == pytest.approx(8.9 / 0.14826)
    assert report.z_scores["a"] == pytest.approx(-0.1 / 0.14826)
    assert report.flagged == ("e",)
    assert report.skipped_reason is None


def test_a_uniform_set_flags_nobody():
    report = detect_norm_anomalies({"a": 1.0, "b": 1.1, "c": 0.9, "d": 1.05, "e": 0.95})
    # median 1.0, MAD 0.05: the largest |z| is 0.1 / (1.4826 * 0.05) = 1.35.
    assert max(abs(z) for z in report.z_scores.values()) == pytest.approx(1.349, abs=1e-3)
    assert report.flagged == ()


def test_a_huge_outlier_cannot_mask_itself_among_four_hospitals():
    norms = {"a": 1.0, "b": 1.1, "c": 0.9, "d": 1000.0}
    # With mean and standard deviation no point among n can exceed z = (n - 1) / sqrt(n),
    # which is 1.5 for n = 4: the outlier inflates the spread that should expose it.
    mean = sum(norms.values()) / 4
    std = math.sqrt(sum((v - mean) ** 2 for v in norms.values()) / 4)
    assert (norms["d"] - mean) / std < 3.0
    assert detect_norm_anomalies(norms).flagged == ("d",)


def test_when_the_mad_is_zero_the_mean_absolute_deviation_takes_over():
    report = detect_norm_anomalies({"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 5.0})
    # MAD = 0; mean absolute deviation = 4 / 5 = 0.8, times sqrt(pi / 2) = 1.00265.
    assert report.scale == pytest.approx(1.0026513)
    assert report.z_scores["e"] == pytest.approx(3.9894228)
    assert report.z_scores["a"] == 0.0
    assert report.flagged == ("e",)


def test_identical_norms_and_float_rounding_flag_nobody():
    assert detect_norm_anomalies({"a": 2.0, "b": 2.0, "c": 2.0}).flagged == ()
    nearly = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0 + 1e-12}
    assert detect_norm_anomalies(nearly).flagged == ()


def test_fewer_than_three_hospitals_scores_nobody_and_says_why():
    report = detect_norm_anomalies({"a": 1.0, "b": 50.0})
    assert report.flagged == ()
    assert report.z_scores == {}
    assert report.median is None
    assert "at least 3" in report.skipped_reason


def test_low_norms_are_flagged_only_when_two_sided():
    norms = {"a": 1.0, "b": 1.1, "c": 0.9, "d": 1.05, "e": 0.01}
    assert detect_norm_anomalies(norms).flagged == ()
    report = detect_norm_anomalies(norms, two_sided=True)
    assert report.flagged == ("e",)
    assert report.z_scores["e"] == pytest.approx(-0.99 / 0.14826)


def test_invalid_norms_are_flagged_and_kept_out_of_the_statistics():
    norms = {"a": 1.0, "b": 1.1, "c": 0.9, "nan": math.nan, "inf": math.inf, "neg": -1.0}
    report = detect_norm_anomalies(norms)
    assert report.invalid == ("inf", "nan", "neg")
    assert report.flagged == ("inf", "nan", "neg")
    assert report.median == pytest.approx(1.0)
    assert report.z_scores["nan"] == math.inf


def test_the_threshold_decides():
    norms = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0, "e": 5.0}  # z(e) = 3.99
    assert detect_norm_anomalies(norms, threshold=4.0).flagged == ()
    assert detect_norm_anomalies(norms, threshold=3.9).flagged == ("e",)
    for bad in (0.0, -1.0, math.nan, "3"):
        with pytest.raises(ConfigError, match="threshold"):
            detect_norm_anomalies(norms, threshold=bad)


def test_the_report_cannot_be_altered():
    report = detect_norm_anomalies({"a": 1.0, "b": 1.1, "c": 0.9})
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.flagged = ("a",)
    with pytest.raises(TypeError):
        report.z_scores["a"] = 0.0


def test_history_lets_a_small_round_be_scored():
    detector = NormHistoryDetector(window=5)
    first = detector.observe({"a": 1.0, "b": 1.1}, round=1)
    assert first.skipped_reason is not None
    detector.observe({"a": 0.9, "b": 1.05}, round=2)
    report = detector.observe({"a": 1.0, "b": 9.0}, round=3)
    assert report.skipped_reason is None
    assert report.flagged == ("b",)
    assert detect_norm_anomalies({"a": 1.0, "b": 9.0}).flagged == ()


def test_flagged_norms_never_enter_the_history():
    detector = NormHistoryDetector(window=1)
    assert detector.observe({"a": 1.0, "b": 1.1, "c": 0.9, "d": 50.0}, round=1).flagged == ("d",)
    report = detector.observe({"a": 2.0, "b": 2.0}, round=2)
    # Reference 0.9 1.0 1.1 2.0 2.0 -> median 1.1; had 50 been kept it would be 1.55.
    assert report.median == pytest.approx(1.1)


def test_rounds_older_than_the_window_are_forgotten():
    detector = NormHistoryDetector(window=1)
    detector.observe({"a": 10.0, "b": 10.0, "c": 10.0}, round=1)
    detector.observe({"a": 1.0, "b": 1.0, "c": 1.0}, round=2)
    report = detector.observe({"a": 1.0, "b": 1.0, "c": 1.0}, round=3)
    assert report.median == pytest.approx(1.0)
    assert [stats.round for stats in detector.history] == [1, 2, 3]
    assert detector.history[0].median == pytest.approx(10.0)


def test_history_refuses_a_round_seen_before():
    detector = NormHistoryDetector()
    detector.observe({"a": 1.0, "b": 1.0, "c": 1.0}, round=4)
    with pytest.raises(StaleRound, match="round 4"):
        detector.observe({"a": 1.0, "b": 1.0, "c": 1.0}, round=4)
    with pytest.raises(ConfigError, match="window"):
        NormHistoryDetector(window=-1)
