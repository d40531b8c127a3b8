"""The report training job on a local Ray: Ray Train on 2 workers, checkpoints, evaluation,
reloading the model it wrote, and resuming a run killed mid-variant."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from securemed.models.report_checkpoint import load_report_checkpoint
from securemed.report_training.config import ReportDataConfig
from securemed.report_training.dataset import load_split
from tests.tensorboard_events import scalars

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.ray, pytest.mark.slow]

SMALL = {
    "data": {"image_size": 32, "train_samples": 96, "private_samples": 64, "test_samples": 8},
    "model": {"d_model": 32, "d_ff": 64, "encoder_layers": 1, "decoder_layers": 1, "heads": 2,
              "vision_width": 8, "vocab_size": 300, "max_report_tokens": 64},
    "optimisation": {"epochs": 2, "batch_size": 16, "learning_rate": 0.003, "workers": 2,
                     "cpus_per_worker": 0.5},
    "evaluation": {"pgd_steps": 2, "robust_samples": 4, "batch_size": 8},
}  # fmt: skip


def _job(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "jobs" / "train_report.py"), *args]


def _write_config(tmp_path: Path, variants: list[dict]) -> Path:
    path = tmp_path / "report.yaml"
    path.write_text(yaml.safe_dump({**SMALL, "variants": variants}))
    return path


def test_ray_train_on_two_workers_writes_a_checkpoint_that_reloads_and_writes_reports(
    tmp_path: Path,
) -> None:
    variants = [
        {"name": "standard"},
        {"name": "private", "dp": True, "adversarial": True, "init_from": "standard", "epochs": 1},
    ]
    output = tmp_path / "run"
    result = subprocess.run(
        _job("--config", str(_write_config(tmp_path, variants)), "--output", str(output)),
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((output / "metrics.json").read_text())
    results = metrics["results"]
    assert set(results) == {"baseline_most_common_report", "standard", "private"}
    assert results["standard"]["epsilon"] is None
    assert 0 < results["private"]["epsilon"] <= 8.0
    assert results["private"]["modes"] == ["adversarial", "dp"]
    assert "| standard |" in (output / "REPORT.md").read_text()
    loaded = load_report_checkpoint(output / "standard" / "model")
    assert loaded.facts.workers == 2  # Ray Train's world size where the model was trained
    assert loaded.facts.steps == 2 * (96 // 16)
    test = load_split(ReportDataConfig(**SMALL["data"]), "test")
    with torch.no_grad():
        ids = loaded.model.generate(test.images[:2])
    reports = [loaded.tokenizer.decode(row.tolist()) for row in ids]
    assert all(report.strip() for report in reports)
    dp = load_report_checkpoint(output / "private" / "model").facts
    assert dp.epsilon == results["private"]["epsilon"] and dp.dp_parameters
    # TensorBoard: a run per variant, its loss (and epsilon under DP) by epoch, and its test
    # metrics at its last epoch in a run beside it
    standard = scalars(output / "tensorboard" / "standard")
    assert [step for step, _ in standard["report/train_loss"]] == [1, 2]
    assert "report/epsilon" not in standard
    [(epoch, epsilon)] = scalars(output / "tensorboard" / "private")["report/epsilon"]
    assert epoch == 1 and epsilon == pytest.approx(results["private"]["epsilon"], rel=1e-5)
    evaluated = scalars(output / "tensorboard" / "standard" / "evaluation")
    [(epoch, f1)] = evaluated["report/test_clinical_f1"]
    assert epoch == 2 and f1 == pytest.approx(results["standard"]["clean"]["clinical_macro_f1"])
    assert "report/robust_clinical_f1" in evaluated


def test_a_run_killed_mid_variant_resumes_from_its_last_ray_train_checkpoint(
    tmp_path: Path,
) -> None:
    config = _write_config(tmp_path, [{"name": "standard", "epochs": 6}])
    output = tmp_path / "run"
    process = subprocess.Popen(
        _job("--config", str(config), "--output", str(output)),
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not list((output / "ray" / "standard").glob("checkpoint_*")):
            assert process.poll() is None, "the job ended before its first checkpoint"
            assert time.monotonic() < deadline, "no Ray Train checkpoint within 300 s"
            time.sleep(0.5)
        time.sleep(1.0)  # let the checkpoint's files land
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (output / "standard" / "model").exists()
    result = subprocess.run(
        _job("--resume", str(output)), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "[standard] resumed after epoch" in log
    resumed_after = int(log.split("[standard] resumed after epoch ")[1].split()[0])
    assert 1 <= resumed_after < 6
    facts = load_report_checkpoint(output / "standard" / "model").facts
    assert facts.epochs == 6 and facts.steps == 6 * (96 // 16)
    # a finished run resumed again keeps its model and only re-evaluates
    again = subprocess.run(
        _job("--resume", str(output)), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0 and "[standard] already trained" in again.stdout
