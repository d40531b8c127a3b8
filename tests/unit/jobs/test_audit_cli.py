"""The audit job's command line and config refuse bad input before starting Ray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from jobs.audit import main, pin_model_digest, refuse_diverged
from securemed.audit.classifier_study import ClassifierAuditConfig
from securemed.audit.notes_study import NotesAuditConfig
from securemed.audit.report_study import ReportAuditConfig
from securemed.audit.study_analysis import MemberOutcome
from securemed.config import load_as
from securemed.errors import SecureMedError

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("audit-notes.yaml", NotesAuditConfig),
        ("audit-classifier.yaml", ClassifierAuditConfig),
        ("audit-report.yaml", ReportAuditConfig),
    ],
)
def test_the_shipped_configs_are_the_default_studies(name, config) -> None:
    assert load_as(config, ROOT / "configs" / name) == config()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"models": 7}, "must be even"),
        ({"models": 4}, "models"),
        ({"variants": []}, "distinct names"),
        (
            {
                "variants": [
                    {"name": "Bad Name", "epochs": 1, "learning_rate": 0.1, "batch_size": 2}
                ]
            },
            "lowercase",
        ),
        ({"population": 3}, "population"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_an_invalid_config_is_refused_with_the_field_named(
    tmp_path: Path, capsys, config, message
) -> None:
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["notes", "--config", str(path), "--output", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"canaries": 2}, "canaries"),
        ({"image_size": 16}, "image_size"),
        ({"model": "alexnet"}, "model"),
        ({"models": 5}, "models"),
    ],
)
def test_an_invalid_classifier_config_is_refused(tmp_path: Path, capsys, config, message) -> None:
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["classifier", "--config", str(path), "--output", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"init_checkpoint": "/nonexistent/start"}, "is not a folder"),
        ({"pretrain_epochs": -1}, "pretrain_epochs"),
        ({"variants": [{"name": "a", "epochs": 0, "learning_rate": 0.1, "batch_size": 2}]},
         "epochs"),
    ],
)  # fmt: skip
def test_an_invalid_report_config_is_refused(tmp_path: Path, capsys, config, message) -> None:
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["report", "--config", str(path), "--output", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_only_the_notes_study_loads_a_model_folder(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["classifier", "--model-path", str(tmp_path), "--output", str(tmp_path / "r")])
    assert stopped.value.code == 2
    assert "unrecognized arguments: --model-path" in capsys.readouterr().err


def test_a_command_line_value_obeys_the_configs_rules(tmp_path: Path, capsys) -> None:
    assert main(["notes", "--models", "9", "--output", str(tmp_path / "run")]) == 2
    assert "must be even" in capsys.readouterr().err


def test_a_missing_model_folder_is_an_error_not_a_download(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["notes", "--model-path", str(tmp_path / "absent"), "--output", str(tmp_path / "r")])
    assert stopped.value.code == 2
    assert "is not a folder" in capsys.readouterr().err


def test_resume_takes_the_studys_own_settings(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["notes", "--resume", str(tmp_path), "--models", "8"])
    assert "drop --model-path/--models" in capsys.readouterr().err
    assert main(["notes", "--resume", str(tmp_path)]) == 2
    assert "not a SecureMed run folder" in capsys.readouterr().err


def test_a_diverged_copy_stops_the_study_with_what_to_change() -> None:
    def outcome(losses: list[float]) -> MemberOutcome:
        return MemberOutcome(
            variant="baseline", index=3, audit_nll=np.asarray(losses), utility=0.5,
            epsilon=None, noise_multiplier=None, epochs_run=1, best_epoch=1, seconds=1.0, pid=1,
        )  # fmt: skip

    refuse_diverged(outcome([0.1, 2.0]))
    with pytest.raises(SecureMedError, match=r"baseline copy 3 diverged.*learning_rate"):
        refuse_diverged(outcome([0.1, float("nan")]))


def test_a_resumed_study_refuses_a_start_that_changed(tmp_path: Path) -> None:
    pin_model_digest(tmp_path, "start", "a" * 64, source="/models/start")
    pin_model_digest(tmp_path, "start", "a" * 64, source="/models/start")  # the same model: resumes
    with pytest.raises(SecureMedError, match="changed since this study began"):
        pin_model_digest(tmp_path, "start", "b" * 64, source="/models/start")
