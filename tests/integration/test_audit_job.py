"""`jobs/audit.py` end to end on a local Ray, at sizes that run in about a minute each.

Notes: a deliberately overfit non-DP fine-tuning (many epochs on a few notes) must be found
vulnerable, a DP one at epsilon 1 must not, the canary audit must not claim more than the
accountant, and the fine-tuned copies must have been trained by Ray workers. Then a copy's
result is deleted and ``--resume`` trains only that one again. Classifier: the same attacks
and audit on the chest X-ray classifier, overfit against DP.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.tensorboard_events import scalars

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


CLASSIFIER_STUDY = {
    "population": 64,
    "canaries": 16,
    "validation_films": 16,
    "test_films": 64,
    "models": 6,
    "variants": [
        {"name": "overfit", "epochs": 60, "learning_rate": 0.003, "batch_size": 8},
        {"name": "dp", "epochs": 3, "learning_rate": 0.003, "batch_size": 8,
         "target_epsilon": 1.0},
    ],
}  # fmt: skip


def _audit(*args: str, study: str = "notes") -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "jobs/audit.py", study, *args],
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
    # three audited copies' coins on 16 canaries; the other three copies are the references
    assert private["audited_copies"] == 3 and private["coins"] == 48
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
    # the reference column is the base model's NLL per token: positive, as the nll column
    rows = list(csv.DictReader(scores.splitlines()))
    assert all(float(row["reference_nll"]) > 0 and float(row["nll"]) > 0 for row in rows)
    for text in (report, scores, (output / "metadata.json").read_text()):
        assert "Portal PIN" not in text and "MRN" not in text
    # TensorBoard: a run per variant, a step per copy as it landed, then the results
    overfit = scalars(output / "tensorboard" / "overfit")
    train, heldout = overfit["audit/copy_train_loss"], overfit["audit/copy_heldout_loss"]
    assert sorted(step for step, _ in train) == list(range(6))
    assert all(a < b for (_, a), (_, b) in zip(train, heldout, strict=True))  # overfit
    comparison = json.loads((output / "comparison.json").read_text())["variants"]
    [(step, auc)] = overfit["audit/lira_online/roc_auc"]
    assert step == 6
    assert auc == pytest.approx(comparison["overfit"]["attacks"]["lira_online"]["roc_auc"])
    dp = scalars(output / "tensorboard" / "dp")
    assert all(0 < epsilon <= 1.0 for _, epsilon in dp["audit/copy_epsilon"])
    assert "audit/canary_epsilon_lower_bound" in dp


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


def test_the_classifier_study_finds_the_overfit_classifier_and_not_the_dp_one(tmp_path) -> None:
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(CLASSIFIER_STUDY))
    output = tmp_path / "run"
    finished = _audit("--config", str(config), "--output", str(output), study="classifier")
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads((output / "comparison.json").read_text())
    overfit, dp = result["variants"]["overfit"], result["variants"]["dp"]
    assert overfit["attacks"]["lira_online"]["roc_auc"] > 0.7
    assert dp["attacks"]["lira_online"]["roc_auc"] < 0.65
    assert "nll_gap" not in overfit["attacks"]  # no reference model for a classifier
    assert 0.0 <= dp["utility"]["macro_auroc"] <= 1.0
    audit = dp["canary_audit"]
    assert audit["epsilon_lower_bound"] <= audit["accountant_epsilon"] <= 1.0 + 1e-6
    report = (output / "REPORT.md").read_text()
    assert "chest X-ray classifier" in report and "| macro-AUROC |" in report
    assert "NLL gap" not in report
    scores = (output / "scores-overfit.csv").read_text().splitlines()
    assert len(scores) == 1 + 6 * 80 and scores[1].split(",")[2] == "film"
    workers = {
        copy["pid"]
        for copy in json.loads((output / "metadata.json").read_text())["copies"].values()
    }
    assert len(workers) >= 2


def test_the_report_study_fine_tunes_copies_of_one_start_and_resumes_without_retraining_it(
    tmp_path,
) -> None:
    output = tmp_path / "run"
    finished = _audit("--smoke-test", "--output", str(output), study="report")
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "training the start on 300 public films" in finished.stdout
    result = json.loads((output / "comparison.json").read_text())
    assert set(result["variants"]) == {"baseline", "regularized", "dp"}
    # the start never saw a private film: it is the NLL-gap attack's reference
    assert "nll_gap" in result["variants"]["baseline"]["attacks"]
    assert result["reference_model"]["name"] == "start (not fine-tuned)"
    audit = result["variants"]["dp"]["canary_audit"]
    assert audit["epsilon_lower_bound"] <= audit["accountant_epsilon"] <= 8.0 + 1e-6
    assert "| clinical F1 |" in (output / "REPORT.md").read_text()
    (output / "models" / "baseline-0.npz").unlink()
    resumed = _audit("--resume", str(output), study="report")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "training the start" not in resumed.stdout
    assert "[audit] 1/1 baseline copy 0" in resumed.stdout
    # the kept start and the same seeds: the retrained copy reproduces the lost one
    again = json.loads((output / "comparison.json").read_text())
    for attack, metrics in result["variants"]["baseline"]["attacks"].items():
        assert again["variants"]["baseline"]["attacks"][attack] == pytest.approx(metrics), attack
