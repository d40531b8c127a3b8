"""`jobs/audit.py notes` end to end on a local Ray, at a size that runs in about a minute.

A deliberately overfit non-DP fine-tuning (many epochs on a few notes) must be found
vulnerable, a DP one at epsilon 1 must not, the canary audit must not claim more than the
accountant, and the fine-tuned copies must have been trained by Ray workers. Then a copy's
result is deleted and ``--resume`` trains only that one again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STUDY = {
    "population": 40,
    "canaries": 16,
    "public_notes": 150,
    "validation_notes": 20,
    "test_notes": 20,
    "models": 6,
    "model": {"vocab_size": 500, "hidden_size": 32, "layers": 1, "heads": 2,
              "intermediate_size": 128, "max_length": 160},
    "base": {"epochs": 2, "learning_rate": 0.005, "batch_size": 16},
    "variants": [
        {"name": "overfit", "epochs": 25, "learning_rate": 0.005, "batch_size": 4},
        {"name": "dp", "epochs": 4, "learning_rate": 0.002, "batch_size": 10,
         "target_epsilon": 1.0},
    ],
}  # fmt: skip


def _audit(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "jobs/audit.py", "notes", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    folder = tmp_path_factory.mktemp("audit")
    config = folder / "study.yaml"
    config.write_text(yaml.safe_dump(STUDY))
    finished = _audit("--config", str(config), "--output", str(folder / "run"))
    assert finished.returncode == 0, finished.stderr[-3000:]
    return folder / "run", finished


def test_an_overfit_model_is_vulnerable_and_a_dp_model_is_not(study) -> None:
    output, _ = study
    result = json.loads((output / "comparison.json").read_text())
    overfit, private = result["variants"]["overfit"], result["variants"]["dp"]
    assert overfit["attacks"]["lira_online"]["roc_auc"] > 0.8
    assert overfit["attacks"]["loss"]["roc_auc"] > 0.7
    assert private["attacks"]["lira_online"]["roc_auc"] < 0.62
    assert private["accountant_epsilon"] <= 1.0
    assert overfit["accountant_epsilon"] is None


def test_the_canary_audit_never_claims_more_than_the_accountant(study) -> None:
    output, _ = study
    result = json.loads((output / "comparison.json").read_text())
    private = result["variants"]["dp"]["canary_audit"]
    assert private["epsilon_lower_bound"] <= private["accountant_epsilon"] <= 1.0
    # and it is not a bound that is always zero: the overfit model's canaries are found
    assert result["variants"]["overfit"]["canary_audit"]["epsilon_lower_bound"] > 0.5


def test_the_copies_were_trained_by_ray_workers_in_parallel(study) -> None:
    output, finished = study
    metadata = json.loads((output / "metadata.json").read_text())
    copies = metadata["copies"]
    assert len(copies) == 12
    workers = {copy["pid"] for copy in copies.values()}
    assert len(workers) >= 2, "two CPUs: at least two worker processes trained copies"
    assert "[audit] 12/12" in finished.stdout


def test_every_output_is_written_and_no_note_text_is(study) -> None:
    output, _ = study
    names = ("REPORT.md", "comparison.json", "metadata.json", "roc-comparison.png",
             "scores-overfit.csv", "scores-dp.csv", "roc-overfit.png", "roc-dp.png")  # fmt: skip
    for name in names:
        assert (output / name).stat().st_size > 0, name
    report = (output / "REPORT.md").read_text()
    assert "| overfit |" in report and "TPR @ 1% FPR" in report
    scores = (output / "scores-overfit.csv").read_text()
    assert scores.count("\n") == 1 + 6 * 56
    for text in (report, scores, (output / "metadata.json").read_text()):
        assert "Portal PIN" not in text and "MRN" not in text


def test_resume_trains_only_the_missing_copy(study) -> None:
    output, _ = study
    before = json.loads((output / "comparison.json").read_text())
    (output / "models" / "dp-3.npz").unlink()
    finished = _audit("--resume", str(output))
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "resuming: 11 copies already trained" in finished.stdout
    assert "[audit] 1/1 dp copy 3" in finished.stdout
    after = json.loads((output / "comparison.json").read_text())
    # the same seeds: the re-trained copy reproduces the lost one
    attacks_before = before["variants"]["dp"]["attacks"]
    attacks_after = after["variants"]["dp"]["attacks"]
    assert attacks_after.keys() == attacks_before.keys()
    for attack, metrics in attacks_before.items():
        assert attacks_after[attack] == pytest.approx(metrics), attack
