"""A small privacy-utility sweep under a local Ray Tune: the frontier it writes is the
non-dominated set of everything the trials reported, and ASHA stops trials early."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from securemed.tuning import SweepPoint, pareto_frontier
from tests.tensorboard_events import scalars

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.ray, pytest.mark.slow]
TRIALS = 8


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _point(row: dict[str, str]) -> SweepPoint:
    return SweepPoint(
        trial=row["trial"],
        step=int(row["round"]),
        utility=float(row["auroc"]),
        epsilon=float(row["epsilon"]),
        tpr_at_1pct_fpr=float(row["tpr_at_1pct_fpr"]),
    )


def test_a_smoke_sweep_writes_a_frontier_consistent_with_every_reported_point(
    tmp_path: Path,
) -> None:
    output = tmp_path / "sweep"
    command = [
        sys.executable, str(ROOT / "jobs" / "sweep.py"), "classifier", "--smoke",
        "--output", str(output), "--trials", str(TRIALS), "--max-concurrent", "2",
        "--time-budget-s", "150", "--budgets", "0.5", "2", "100",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "round 1/" in result.stdout  # a progress line per report
    for name in ("trials.csv", "frontier.csv", "frontier.md", "frontier.png",
                 "recommendation.json", "metadata.json"):  # fmt: skip
        assert (output / name).is_file(), name

    rows = _read(output / "trials.csv")
    assert len({row["trial"] for row in rows}) == TRIALS
    points = [_point(row) for row in rows]
    frontier_rows = _read(output / "frontier.csv")
    frontier = {(row["trial"], int(row["round"])) for row in frontier_rows}
    # the frontier file is what the rule gives on trials.csv, and trials.csv marks the same
    assert frontier == {(p.trial, p.step) for p in pareto_frontier(points)}
    assert frontier == {(r["trial"], int(r["round"])) for r in rows if r["on_frontier"] == "True"}
    on = [p for p in points if (p.trial, p.step) in frontier]
    for point in on:  # nothing any trial reported beats a frontier point on both axes
        assert not any(
            other.epsilon <= point.epsilon
            and other.utility >= point.utility
            and (other.epsilon < point.epsilon or other.utility > point.utility)
            for other in points
        )
    for row in frontier_rows:  # frontier rows carry the same numbers as trials.csv
        match = next(r for r in rows if (r["trial"], r["round"]) == (row["trial"], row["round"]))
        assert math.isclose(float(match["auroc"]), float(row["auroc"]))
        assert math.isclose(float(match["epsilon"]), float(row["epsilon"]))

    # ASHA (grace 1, reduction factor 2) stops a trial whose AUROC at a rung is below the
    # median of the trials recorded there before it; with 8 random settings that happens
    # unless every trial arrives at each rung better than all before it. The order of arrival
    # depends on timing, so this is not strictly deterministic, but it has not failed here.
    stopped = {row["trial"] for row in rows if row["stopped_early"] == "True"}
    assert stopped, "ASHA stopped no trial early"
    metadata = json.loads((output / "metadata.json").read_text())
    assert metadata["trials"]["stopped_early"] == len(stopped)
    assert metadata["trials"]["reported"] == TRIALS and metadata["trials"]["failed"] == 0
    assert metadata["reported_points"] == len(rows)
    assert metadata["versions"]["ray"] and metadata["smoke"] is True
    assert metadata["epsilon_is_guarantee"] is False  # seeded trials say so

    advice = json.loads((output / "recommendation.json").read_text())["recommendations"]
    assert [r["budget"] for r in advice] == [0.5, 2.0, 100.0]
    generous = advice[-1]
    assert generous["fits"]
    best_private = max(p.utility for p in points if p.epsilon <= 100)
    assert math.isclose(generous["auroc"], best_private)
    assert generous["setting"]["rounds"] == generous["round"]
    for entry in advice:
        assert entry["fits"] or "no reported model" in entry["reason"]
    assert "| epsilon | auroc |" in (output / "frontier.md").read_text()

    # TensorBoard: Ray Tune's own logger (on by default) writes each trial's reports into that
    # trial's folder, so the job adds none of its own
    folders = {
        event.parent
        for event in (output / "tune" / "sweep-classifier").glob("*/events.out.tfevents.*")
    }
    assert len(folders) == TRIALS
    for trial in {row["trial"] for row in rows}:
        [folder] = [folder for folder in folders if f"_{trial}_" in folder.name]
        board = scalars(folder)
        reported = sorted(int(row["round"]) for row in rows if row["trial"] == trial)
        assert sorted(int(value) for _, value in board["ray/tune/round"]) == reported
        assert {"ray/tune/epsilon", "ray/tune/seconds"} <= board.keys()
        if any(math.isfinite(float(row["auroc"])) for row in rows if row["trial"] == trial):
            assert "ray/tune/auroc" in board


def test_a_report_model_sweep_runs_under_tune_and_recommends_per_budget(tmp_path: Path) -> None:
    output = tmp_path / "report-sweep"
    command = [
        sys.executable, str(ROOT / "jobs" / "sweep.py"), "report", "--smoke",
        "--output", str(output), "--trials", "4", "--max-concurrent", "2",
        "--time-budget-s", "150", "--budgets", "1", "8",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "pretraining the starting report model" in result.stdout
    assert (output / "start-model" / "manifest.json").is_file()
    rows = _read(output / "trials.csv")
    (start,) = [row for row in rows if row["trial"] == "start"]  # the model trials fine-tune
    assert (start["epoch"], float(start["epsilon"])) == ("0", 0.0)
    rows = [row for row in rows if row["trial"] != "start"]
    assert len({row["trial"] for row in rows}) == 4
    for row in rows:
        assert 0.0 <= float(row["clinical_f1"]) <= 1.0
        assert 0.0 < float(row["epsilon"]) < math.inf
        assert int(row["epoch"]) <= int(row["param_epochs"])
    by_trial: dict[str, list[float]] = {}
    for row in sorted(rows, key=lambda r: int(r["epoch"])):
        by_trial.setdefault(row["trial"], []).append(float(row["epsilon"]))
    assert all(spent == sorted(spent) for spent in by_trial.values())  # epsilon only grows
    advice = json.loads((output / "recommendation.json").read_text())
    assert advice["utility"] == "clinical_f1"
    assert [r["budget"] for r in advice["recommendations"]] == [1.0, 8.0]
    assert all(r["fits"] for r in advice["recommendations"])  # the start fits every budget
    assert (output / "frontier.png").is_file()
