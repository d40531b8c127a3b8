"""The sweep's command line refuses bad input before starting Ray, with a clear message, and
maps the validated space onto Tune's distributions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray import tune

from jobs.sweep import main, param_space, tune_distribution
from securemed.tuning import ClassifierSweepConfig, Dimension


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["classifier"], "--output"),
        (["federated", "--output", "x"], "invalid choice"),
        (["classifier", "--output", "x", "--trials", "0"], "must be at least 1"),
        (["classifier", "--output", "x", "--budgets", "2", "-1"], "positive finite"),
        (["classifier", "--output", "x", "--budgets", "inf"], "positive finite"),
        (["classifier", "--output", "x", "--time-budget-s", "soon"], "expected a number"),
        (["classifier", "--output", "x", "--max-concurrent", "1.5"], "whole number"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_an_invalid_config_is_refused_before_anything_runs(tmp_path: Path, capsys) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"space": {"sampling_rate": {"low": 0.5, "high": 2}}}))
    output = tmp_path / "sweep"
    assert main(["classifier", "--config", str(path), "--output", str(output)]) == 2
    assert "space.sampling_rate" in capsys.readouterr().err
    assert not output.exists()


def test_a_folder_that_holds_a_sweep_is_not_overwritten(tmp_path: Path, capsys) -> None:
    (tmp_path / "trials.csv").write_text("trial\n")
    assert main(["classifier", "--output", str(tmp_path)]) == 2
    assert "already holds a sweep" in capsys.readouterr().err


def test_dimensions_become_the_matching_tune_distributions() -> None:
    rounds = tune_distribution(Dimension(low=2, high=5), integer=True)
    assert isinstance(rounds, tune.search.sample.Integer)
    assert (rounds.lower, rounds.upper) == (2, 6)  # Tune's upper bound is exclusive
    rate = tune_distribution(Dimension(low=0.01, high=0.1, log=True), integer=False)
    assert isinstance(rate, tune.search.sample.Float)
    assert isinstance(rate.get_sampler(), tune.search.sample.LogUniform)
    fixed = tune_distribution(Dimension(values=(1.0,)), integer=True)
    assert fixed.categories == [1] and isinstance(fixed.categories[0], int)
    space = param_space(ClassifierSweepConfig())
    assert set(space) == set(ClassifierSweepConfig().space.dimensions())
