"""The jobs' TensorBoard scalars, read back with TensorBoard's own event reader."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from securemed.evaluation.tensorboard_log import ScalarLog
from tests.tensorboard_events import scalars as _scalars


def test_each_step_is_readable_as_soon_as_it_is_written(tmp_path: Path) -> None:
    log = ScalarLog(tmp_path / "run")
    log.write(1, {"federation/test_macro_auroc": 0.5, "privacy/epsilon/hospital-1": 0.25})
    # not closed: what a crash would leave
    assert _scalars(tmp_path / "run") == {
        "federation/test_macro_auroc": [(1, 0.5)],
        "privacy/epsilon/hospital-1": [(1, 0.25)],
    }
    log.write(2, {"federation/test_macro_auroc": 0.75, "privacy/epsilon/hospital-1": 0.5})
    log.close()
    assert _scalars(tmp_path / "run")["federation/test_macro_auroc"] == [(1, 0.5), (2, 0.75)]


def test_undefined_metrics_are_left_out_not_drawn_as_values(tmp_path: Path) -> None:
    with ScalarLog(tmp_path) as log:
        log.write(3, {"a/defined": 1.5, "a/none": None, "a/nan": math.nan, "a/inf": math.inf})
    assert _scalars(tmp_path) == {"a/defined": [(3, 1.5)], "a/inf": [(3, math.inf)]}


def test_a_resumed_log_replaces_the_steps_it_redoes(tmp_path: Path) -> None:
    with ScalarLog(tmp_path) as crashed:
        for step in (1, 2, 3):
            crashed.write(step, {"report/train_loss": float(step)})
    # resumed from the checkpoint after step 1; a second writer in the same second and folder
    with ScalarLog(tmp_path, purge_step=2) as resumed:
        for step in (2, 3, 4):
            resumed.write(step, {"report/train_loss": step / 10})
    steps = _scalars(tmp_path)["report/train_loss"]
    assert steps == [(1, 1.0), (2, pytest.approx(0.2)), (3, pytest.approx(0.3)),
                     (4, pytest.approx(0.4))]  # fmt: skip
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2
