"""The sweep's search space and settings refuse impossible values with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from securemed.config import load_as, validate_as
from securemed.errors import ConfigError
from securemed.tuning import ClassifierSweepConfig, Dimension, ReportSweepConfig


def _refused(raw: dict, config=ClassifierSweepConfig) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_as(config, raw, origin="sweep config")
    return str(caught.value)


@pytest.mark.parametrize(
    ("space", "field", "message"),
    [
        ({"noise_multiplier": {"low": 3, "high": 1}}, "space.noise_multiplier", "swap them"),
        ({"learning_rate": {"low": 0, "high": 0.1, "log": True}}, "space.learning_rate", "low > 0"),
        ({"sampling_rate": {"low": 0.1, "high": 1.5}}, "space.sampling_rate", "at most 1"),
        ({"max_grad_norm": {"values": [0, 1]}}, "space.max_grad_norm", "must be > 0"),
        ({"noise_multiplier": -1}, "space.noise_multiplier", ">= 0 (0 trains without DP)"),
        ({"rounds": {"low": 1.5, "high": 4}}, "space.rounds", "whole rounds"),
        ({"rounds": {"low": 0, "high": 4}}, "space.rounds", ">= 1"),
        ({"rounds": {"low": 1}}, "space.rounds", "give both low and high"),
        ({"rounds": {"low": 1, "high": 3, "values": [2]}}, "space.rounds", "not both"),
        ({"rounds": {"values": []}}, "space.rounds", "at least one value"),
        ({"learning_rate": {"low": 0.1, "high": float("inf")}}, "space.learning_rate", "finite"),
        ({"momentum": {"low": 0.1, "high": 0.9}}, "space.momentum", "Extra inputs"),
    ],
)
def test_a_bad_range_is_refused_with_the_field_and_the_reason(space, field, message) -> None:
    error = _refused({"space": space})
    assert field in error and message in error


def test_a_number_or_a_list_is_a_choice_and_a_range_is_kept() -> None:
    config = validate_as(
        ClassifierSweepConfig,
        {
            "space": {
                "noise_multiplier": [0, 1.5],
                "local_epochs": 2,
                "rounds": {"low": 1, "high": 4},
            }
        },
    )
    assert config.space.noise_multiplier == Dimension(values=(0.0, 1.5))
    assert config.space.local_epochs.values == (2.0,)
    assert config.space.max_length == 4
    assert list(config.space.dimensions()) == [
        "noise_multiplier", "max_grad_norm", "learning_rate", "sampling_rate", "rounds",
        "local_epochs",
    ]  # fmt: skip


def test_the_report_space_searches_epochs_not_rounds() -> None:
    config = ReportSweepConfig()
    assert config.space.length == "epochs" and "rounds" not in config.space.dimensions()
    assert "rounds" in _refused({"space": {"rounds": 3}}, ReportSweepConfig)


def test_asha_must_be_able_to_stop_a_trial() -> None:
    error = _refused({"space": {"rounds": {"low": 1, "high": 2}}, "asha": {"grace_period": 3}})
    assert "asha.grace_period (3) is longer than the longest trial" in error
    assert "asha.reduction_factor" in _refused({"asha": {"reduction_factor": 1}})


def test_the_audit_needs_as_many_non_members_as_members() -> None:
    error = _refused({"settings": {"test_samples": 100, "audit_samples": 200}})
    assert "audit_samples (200)" in error
    error = _refused({"settings": {"data": {"private_samples": 0}}}, ReportSweepConfig)
    assert "private_samples must be above 0" in error


def test_smoke_shrinks_a_config_and_validates_it_again() -> None:
    smoke = ClassifierSweepConfig().smoke()
    assert smoke.settings.train_samples < ClassifierSweepConfig().settings.train_samples
    assert smoke.space.max_length == 3 and smoke.asha.grace_period == 1
    report = ReportSweepConfig().smoke()
    assert report.settings.pretrain_epochs == 1 and report.space.max_length == 2


def test_a_yaml_file_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"space": {"rounds": {"low": 2, "high": 3}}}))
    assert load_as(ClassifierSweepConfig, path).space.max_length == 3
    path.write_text(yaml.safe_dump({"space": {"rounds": {"low": 3, "high": 2}}}))
    with pytest.raises(ConfigError, match=f"config file {path} is invalid"):
        load_as(ClassifierSweepConfig, path)


def test_the_readme_example_config_is_valid() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("## Privacy-utility sweeps", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = validate_as(ClassifierSweepConfig, yaml.safe_load(example), origin="README")
    assert config == ClassifierSweepConfig()  # the example spells out the defaults
