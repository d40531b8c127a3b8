"""A federated run killed mid-round (SIGKILL, no clean-up) continues with --resume.

Nothing is lost and nothing is overspent: rounds already checkpointed are kept, the next round
starts from the last checkpointed global model, every hospital rebuilds its accountant from its
own ledger, and a hospital that had reserved the interrupted round sits its rerun out, so no
round is charged twice or skipped and no hospital ever passes its budget.
"""

import json
import os
import signal
import sqlite3
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
    "secure_aggregation": {"min_participants": 2},
    "baseline": {"enabled": False},
}


def _job(*args):
    return [sys.executable, str(ROOT / "jobs" / "federated.py"), *args]


def _ledger_rows(folder: Path) -> list[tuple[str, int, float]]:
    """Every counted row of every hospital's own ledger in the run folder."""
    rows = []
    for path in sorted(folder.glob("*.sqlite")):
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
                rows += conn.execute(
                    "SELECT hospital, round, cumulative_epsilon FROM privacy_ledger "
                    "WHERE status IN ('reserved', 'released')"
                ).fetchall()
        except sqlite3.Error:  # a hospital is still creating it
            continue
    return rows


def test_killed_run_resumes_without_losing_rounds_or_overspending(tmp_path):
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
    ledger = output / "privacy"

    def in_round_three() -> bool:  # a hospital has reserved round 3's spend, mid-round
        return checkpoint.exists() and any(r == 3 for _, r, _ in _ledger_rows(ledger))

    deadline = time.monotonic() + 300
    while not in_round_three() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    assert in_round_three(), "the run never reached round 3"
    reserved = _ledger_rows(ledger)
    before = json.loads((output / "metrics.json").read_text())["rounds"]
    assert not (output / "checkpoints" / "round-0004.pt").exists()

    resumed = subprocess.run(
        _job("--resume", str(output)), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after round" in resumed.stdout

    metrics = json.loads((output / "metrics.json").read_text())
    rounds = metrics["rounds"]
    assert [entry["round"] for entry in rounds] == [1, 2, 3, 4]
    assert rounds[: len(before)] == before
    rows = _ledger_rows(ledger)
    reserved_before_kill = {h for h, r, _ in reserved if r == 3}
    # a hospital that had reserved round 3 sits its rerun out: never released twice
    assert reserved_before_kill <= set(rounds[2]["declined"])
    for hospital in ("hospital-1", "hospital-2"):
        ledger_rounds = sorted(r for h, r, _ in rows if h == hospital)
        assert ledger_rounds == [1, 2, 3, 4]  # each round charged exactly once
        ledger_spent = max(eps for h, _, eps in rows if h == hospital)
        assert ledger_spent <= 6.0 + 1e-9
        final = metrics["privacy"]["epsilon"][hospital]
        assert abs(final - ledger_spent) < 1e-9  # the accountant knows every charged round
        spent = [entry["epsilon"][hospital] for entry in rounds if hospital in entry["epsilon"]]
        assert spent == sorted(spent) and len(set(spent)) == len(spent), spent
