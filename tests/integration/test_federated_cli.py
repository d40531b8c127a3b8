"""The job's command line: bad input gets a clear message and exit code, before Ray starts."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # each case starts a Python that imports Ray and torch


def _run(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "federated.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_invalid_config_value_is_named_and_exits_2(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("federation:\n  hospitals: 0\nprivacy:\n  delta: 3\n")
    result = _run("--config", str(config), "--output", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "federation.hospitals" in result.stderr and "privacy.delta" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_file_exits_2(tmp_path):
    result = _run("--config", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_resume_of_a_folder_that_is_not_a_run_exits_2(tmp_path):
    result = _run("--resume", str(tmp_path))
    assert result.returncode == 2 and "not a SecureMed run folder" in result.stderr


def test_output_folder_of_an_existing_run_is_not_overwritten(tmp_path):
    (tmp_path / "config.yaml").write_text("{}\n")
    result = _run("--output", str(tmp_path))
    assert result.returncode == 2 and "--resume" in result.stderr
    assert (tmp_path / "config.yaml").read_text() == "{}\n"
