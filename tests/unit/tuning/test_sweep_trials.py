"""The sweep's trial bodies in-process, without Ray, at toy size: one report per round or
epoch, with sane utility, epsilon and attack numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from securemed.errors import ConfigError
from securemed.tuning import (
    CLASSIFIER,
    REPORT,
    ClassifierSweepConfig,
    ReportSweepConfig,
    measure_report_start,
    prepare_classifier_data,
    prepare_report_start,
    run_classifier_trial,
    run_report_trial,
)
from securemed.tuning.trials import expected_batch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def classifier():
    settings = ClassifierSweepConfig().smoke().settings
    return settings, prepare_classifier_data(settings)


def _params(noise: float, **overrides):
    return {
        "noise_multiplier": noise,
        "max_grad_norm": 1.0,
        "learning_rate": 0.01,
        "sampling_rate": 0.1,
        **overrides,
    }


def _in_unit_interval(value: float) -> bool:
    return 0.0 <= value <= 1.0


def test_a_classifier_trial_reports_every_round_with_growing_epsilon(classifier) -> None:
    settings, data = classifier
    reports: list[dict] = []
    run_classifier_trial(_params(1.0, rounds=3), reports.append, settings=settings, data=data)
    assert [r["round"] for r in reports] == [1, 2, 3]
    assert all(set(r) == set(CLASSIFIER.reports) for r in reports)
    epsilons = [r["epsilon"] for r in reports]
    assert 0 < epsilons[0] < epsilons[1] < epsilons[2] < math.inf
    for r in reports:
        assert _in_unit_interval(r["auroc"])
        assert _in_unit_interval(r["tpr_at_1pct_fpr"]) and _in_unit_interval(r["attack_auc"])
    assert reports[0]["batch_size"] == expected_batch(0.1, len(data.hospitals[0][0]))


def test_huge_noise_spends_almost_no_privacy_and_learns_nothing(classifier) -> None:
    settings, data = classifier
    reports: list[dict] = []
    run_classifier_trial(_params(200.0, rounds=2), reports.append, settings=settings, data=data)
    assert reports[-1]["epsilon"] < 0.05
    assert abs(reports[-1]["auroc"] - 0.5) < 0.15


def test_without_noise_epsilon_is_infinite(classifier) -> None:
    settings, data = classifier
    reports: list[dict] = []
    run_classifier_trial(
        _params(0.0, rounds=2, local_epochs=2), reports.append, settings=settings, data=data
    )
    assert [r["epsilon"] for r in reports] == [math.inf, math.inf]
    assert all(_in_unit_interval(r["auroc"]) for r in reports)


def test_a_trial_renders_its_own_data_when_given_none() -> None:
    settings = ClassifierSweepConfig().smoke().settings
    reports: list[dict] = []
    run_classifier_trial(_params(1.0, rounds=1), reports.append, settings=settings)
    assert len(reports) == 1


def test_a_diverging_model_reports_nan_once_and_stops(classifier) -> None:
    settings, data = classifier
    reports: list[dict] = []
    run_classifier_trial(
        _params(0.0, rounds=3, learning_rate=1e30), reports.append, settings=settings, data=data
    )
    assert len(reports) == 1 and math.isnan(reports[0]["auroc"])


def test_bad_trial_parameters_are_refused_with_the_field_named(classifier) -> None:
    settings, data = classifier
    with pytest.raises(ConfigError, match="sampling_rate"):
        run_classifier_trial(
            _params(1.0, rounds=1, sampling_rate=2.0), print, settings=settings, data=data
        )
    with pytest.raises(ConfigError, match="rounds"):
        run_classifier_trial(_params(1.0), print, settings=settings, data=data)


def test_the_expected_batch_follows_the_sampling_rate() -> None:
    assert expected_batch(0.1, 120) == 12
    assert expected_batch(0.001, 120) == 1
    assert expected_batch(0.001, 120, minimum=2) == 2
    assert expected_batch(1.0, 120) == 120


def test_a_report_trial_reports_every_epoch(tmp_path: Path) -> None:
    settings = ReportSweepConfig().smoke().settings
    start = prepare_report_start(settings, tmp_path / "start")
    private: list[dict] = []
    run_report_trial(
        _params(1.0, epochs=2, sampling_rate=0.25, learning_rate=0.003),
        private.append,
        settings=settings,
        start=start,
    )
    assert [r["epoch"] for r in private] == [1, 2]
    assert all(set(r) == set(REPORT.reports) for r in private)
    assert 0 < private[0]["epsilon"] < private[1]["epsilon"] < math.inf
    for r in private:
        assert _in_unit_interval(r["clinical_f1"]) and _in_unit_interval(r["bleu4"])
        assert _in_unit_interval(r["tpr_at_1pct_fpr"]) and _in_unit_interval(r["attack_auc"])
    plain: list[dict] = []
    run_report_trial(_params(0.0, epochs=1), plain.append, settings=settings, start=start)
    assert plain[0]["epsilon"] == math.inf
    reference = measure_report_start(settings, start)
    assert (reference["epoch"], reference["epsilon"]) == (0, 0.0)
    assert _in_unit_interval(reference["clinical_f1"])


def test_a_starting_checkpoint_for_other_films_is_refused(tmp_path: Path) -> None:
    settings = ReportSweepConfig().smoke().settings
    start = prepare_report_start(settings, tmp_path / "start")
    other = settings.model_copy(
        update={
            "init_checkpoint": start,
            "data": settings.data.model_copy(update={"image_size": 64}),
        }
    )
    with pytest.raises(ConfigError, match="takes 32 px films"):
        prepare_report_start(other, tmp_path / "unused")
    same = settings.model_copy(update={"init_checkpoint": start})
    assert prepare_report_start(same, tmp_path / "unused") == start


def test_the_attack_finds_a_classifier_trained_long_without_noise(classifier) -> None:
    # members are training films: a model fitted hard to them gives them lower losses. With
    # members and non-members swapped the AUC would fall below 0.5 instead.
    settings, data = classifier
    reports: list[dict] = []
    run_classifier_trial(
        _params(0.0, rounds=6, local_epochs=8, learning_rate=0.003),
        reports.append,
        settings=settings,
        data=data,
    )
    assert reports[-1]["attack_auc"] > 0.58
