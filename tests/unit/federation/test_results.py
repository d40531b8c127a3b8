"""Run artefacts: atomic JSON, round checkpoints that --resume can trust, the progress plot."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from securemed.errors import ConfigError
from securemed.federation.results import (
    latest_checkpoint,
    plot_progress,
    round_scalars,
    save_checkpoint,
    write_json,
)


def test_write_json_replaces_atomically_and_refuses_nan(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    write_json(path, {"rounds": [1]})
    with pytest.raises(ValueError):
        write_json(path, {"rounds": [math.nan]})
    assert path.read_text().startswith("{") and '"rounds"' in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "metrics.json"
    ]


def test_latest_checkpoint_is_the_highest_round(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    for number in (1, 10, 2):
        save_checkpoint(tmp_path, number, {"global_state": {"w": torch.full((2,), number)}})
    found = latest_checkpoint(tmp_path)
    assert found is not None
    number, payload = found
    assert number == 10 and torch.equal(payload["global_state"]["w"], torch.full((2,), 10))


def test_damaged_checkpoint_names_the_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 3, {"global_state": {}})
    path.write_bytes(b"truncated")
    with pytest.raises(ConfigError, match=r"round-0003\.pt"):
        latest_checkpoint(tmp_path)


def test_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    """Checkpoints load with weights_only: a pickled object is not executed."""
    path = save_checkpoint(tmp_path, 1, {"global_state": {}})
    torch.save({"payload": Path("/etc/passwd")}, path)
    with pytest.raises(ConfigError, match="cannot be read"):
        latest_checkpoint(tmp_path)


def test_progress_plot_tolerates_undefined_auroc_and_missing_epsilon(tmp_path: Path) -> None:
    rounds = [
        {"round": 1, "test": {"macro_auroc": None}, "epsilon": {"hospital-1": None}},
        {"round": 2, "test": {"macro_auroc": 0.8}, "epsilon": {"hospital-1": 2.0}},
    ]
    plot_progress(rounds, 0.9, tmp_path / "progress.png")
    assert (tmp_path / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_round_scalars_hold_what_the_aggregator_saw_and_no_hospital_loss() -> None:
    record = {
        "round": 2,
        "participants": ["hospital-1", "hospital-2"],
        "declined": ["hospital-3"],
        "missed_deadline": [],
        "test": {"macro_auroc": None, "accuracy": 0.75, "per_class_auroc": {"a": None}},
        "epsilon": {"hospital-1": 1.5, "hospital-2": None},
        "seconds": 4.0,
    }
    assert round_scalars(record) == {
        "federation/test_macro_auroc": None,  # undefined: ScalarLog leaves it out
        "federation/test_accuracy": 0.75,
        "federation/round_seconds": 4.0,
        "federation/participants": 2,
        "federation/declined": 1,
        "federation/missed_deadline": 0,
        "privacy/epsilon/hospital-1": 1.5,
        "privacy/epsilon/hospital-2": None,
    }
