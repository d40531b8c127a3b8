"""A federated run killed mid-way (SIGKILL, no clean-up) continues with --resume.

Nothing is lost: rounds already checkpointed are kept, the next round starts from the last
checkpointed global model, and every hospital's epsilon continues from what it had spent.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.ray, pytest.mark.slow]

CONFIG = {
    "data": {"train_samples": 600, "test_samples": 200},
    "partition": {"scheme": "iid", "min_samples": 32},
    "training": {"batch_size": 32},
    "privacy": {"target_epsilon": 6.0},
    "federation": {"hospitals": 2, "rounds": 4},
    "baseline": {"enabled": False},
}


def _job(*args):
    return [sys.executable, str(ROOT / "jobs" / "federated.py"), *args]


def test_killed_run_resumes_without_losing_rounds_or_privacy_spent(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    output = tmp_path / "run"
    process = subprocess.Popen(
        _job("--config", str(config), "--output", str(output)),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    checkpoint = output / "checkpoints" / "round-0002.pt"
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    assert checkpoint.exists(), "the run never reached round 2"
    before = json.loads((output / "metrics.json").read_text())["rounds"]
    assert not (output / "checkpoints" / "round-0004.pt").exists()

    resumed = subprocess.run(
        _job("--resume", str(output)), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after round" in resumed.stdout

    rounds = json.loads((output / "metrics.json").read_text())["rounds"]
    assert [entry["round"] for entry in rounds] == [1, 2, 3, 4]
    assert rounds[: len(before)] == before
    for hospital in ("hospital-1", "hospital-2"):
        spent = [entry["epsilon"][hospital] for entry in rounds]
        assert spent == sorted(spent) and len(set(spent)) == 4, spent
        assert spent[-1] <= 6.0
