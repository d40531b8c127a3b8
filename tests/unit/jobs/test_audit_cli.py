"""The audit job's command line and config refuse bad input before starting Ray."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jobs.audit import main
from securemed.audit.notes_study import NotesAuditConfig
from securemed.config import load_as

ROOT = Path(__file__).resolve().parents[3]


def test_the_shipped_config_is_the_default_study() -> None:
    assert load_as(NotesAuditConfig, ROOT / "configs" / "audit-notes.yaml") == NotesAuditConfig()


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
