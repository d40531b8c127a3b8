"""The privacy ledger: write-ahead reservations, spend, durability across crashes, bad files."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from securemed.errors import BudgetExhausted, LedgerError
from securemed.privacy.ledger import SCHEMA_VERSION, LedgerEntry, PrivacyLedger

ROOT = Path(__file__).resolve().parents[3]
KEY = {"run_id": "run-1", "hospital": "h1", "mechanism": "dp-sgd"}
TERMS = {"delta": 1e-5, "privacy_unit": "record", "accountant": "rdp"}


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with PrivacyLedger(tmp_path / "ledger.sqlite") as opened:
        yield opened


def reserve(ledger: PrivacyLedger, round_number: int, cumulative: float, **overrides: Any) -> Any:
    values: dict[str, Any] = {**KEY, **TERMS, "round_number": round_number}
    values["cumulative_epsilon"] = cumulative
    values.update(overrides)
    return ledger.reserve(**values)


def spent(ledger: PrivacyLedger, hospital: str = "h1") -> float:
    return ledger.spent(run_id="run-1", hospital=hospital, mechanism="dp-sgd")


def child_script(body: str) -> str:
    """A child process that loads only the ledger module (no torch: it starts in a blink)."""
    prelude = f"""
        import importlib.util, sys
        sys.path.insert(0, {str(ROOT)!r})
        spec = importlib.util.spec_from_file_location(
            "ledger_child", {str(ROOT / "securemed" / "privacy" / "ledger.py")!r})
        ledger_module = importlib.util.module_from_spec(spec)
        sys.modules["ledger_child"] = ledger_module
        spec.loader.exec_module(ledger_module)
    """
    return textwrap.dedent(prelude) + textwrap.dedent(body)


# ------------------------------------------------------------------- reserve/commit/abort


def test_reserved_round_counts_as_spent_before_it_is_committed(ledger: PrivacyLedger) -> None:
    entry = reserve(ledger, 0, 0.5)
    assert entry.status == "reserved" and entry.counted
    assert spent(ledger) == 0.5
    released = ledger.commit(**KEY, round_number=0)
    assert released.status == "released"
    assert spent(ledger) == 0.5


def test_commit_twice_is_a_no_op(ledger: PrivacyLedger) -> None:
    reserve(ledger, 0, 0.5)
    first = ledger.commit(**KEY, round_number=0)
    assert ledger.commit(**KEY, round_number=0) == first


def test_commit_without_reservation_is_refused(ledger: PrivacyLedger) -> None:
    with pytest.raises(LedgerError, match="no reservation"):
        ledger.commit(**KEY, round_number=3)


def test_aborted_round_stops_counting_and_stays_closed(ledger: PrivacyLedger) -> None:
    reserve(ledger, 0, 0.5)
    ledger.commit(**KEY, round_number=0)
    reserve(ledger, 1, 0.9)
    assert spent(ledger) == 0.9
    aborted = ledger.abort(**KEY, round_number=1, reason="training failed before noise")
    assert aborted.status == "aborted" and not aborted.counted
    assert aborted.abort_reason == "training failed before noise"
    assert spent(ledger) == 0.5
    with pytest.raises(LedgerError, match="aborted"):
        reserve(ledger, 1, 0.9)
    with pytest.raises(LedgerError, match="aborted"):
        ledger.commit(**KEY, round_number=1)
    # the next round composes on the counted rows only
    assert reserve(ledger, 2, 0.9).epsilon == pytest.approx(0.4)


def test_released_round_cannot_be_aborted(ledger: PrivacyLedger) -> None:
    reserve(ledger, 0, 0.5)
    ledger.commit(**KEY, round_number=0)
    with pytest.raises(LedgerError, match="released"):
        ledger.abort(**KEY, round_number=0, reason="changed my mind")
    assert spent(ledger) == 0.5


def test_abort_needs_a_reason(ledger: PrivacyLedger) -> None:
    reserve(ledger, 0, 0.5)
    with pytest.raises(LedgerError, match="reason"):
        ledger.abort(**KEY, round_number=0, reason=" ")


# ---------------------------------------------------------------- duplicates and retries


def test_second_reservation_with_other_values_is_refused(ledger: PrivacyLedger) -> None:
    reserve(ledger, 0, 0.5)
    with pytest.raises(LedgerError, match="already reserved"):
        reserve(ledger, 0, 0.6)
    with pytest.raises(LedgerError, match="already reserved"):
        reserve(ledger, 0, 0.5, delta=1e-6)
    assert len(ledger.entries()) == 1


def test_retry_with_the_same_values_returns_the_existing_row(ledger: PrivacyLedger) -> None:
    first = reserve(ledger, 0, 0.5)
    assert reserve(ledger, 0, 0.5) == first
    ledger.commit(**KEY, round_number=0)
    again = reserve(ledger, 0, 0.5)
    assert again.status == "released"  # a late retry never demotes a released row
    assert len(ledger.entries()) == 1


# --------------------------------------------------------------------------- spend rules


def test_spend_is_the_largest_cumulative_and_the_sum_of_round_epsilons(
    ledger: PrivacyLedger,
) -> None:
    for round_number, cumulative in enumerate([0.4, 0.7, 0.95, 1.3]):
        reserve(ledger, round_number, cumulative)
        ledger.commit(**KEY, round_number=round_number)
    rows = ledger.history(run_id="run-1", hospital="h1")
    assert [row.round for row in rows] == [0, 1, 2, 3]
    assert spent(ledger) == 1.3
    assert math.fsum(row.epsilon for row in rows) == pytest.approx(1.3, abs=1e-12)
    assert [row.epsilon for row in rows] == pytest.approx([0.4, 0.3, 0.25, 0.35])


def test_spend_is_kept_per_hospital_and_per_mechanism(ledger: PrivacyLedger) -> None:
    reserve(ledger, 0, 0.5)
    reserve(ledger, 0, 2.0, hospital="h2")
    reserve(ledger, 0, 0.1, mechanism="client-dp", privacy_unit="patient")
    assert ledger.spent_by_hospital(run_id="run-1", mechanism="dp-sgd") == {"h1": 0.5, "h2": 2.0}
    assert ledger.spent(run_id="run-1", hospital="h1", mechanism="client-dp") == 0.1
    assert ledger.spent(run_id="other-run", hospital="h1", mechanism="dp-sgd") == 0.0


def test_reservation_below_the_spend_is_refused_as_a_forgotten_round(
    ledger: PrivacyLedger,
) -> None:
    reserve(ledger, 0, 0.8)
    with pytest.raises(LedgerError, match="forgotten a round"):
        reserve(ledger, 1, 0.5)


@pytest.mark.parametrize(
    "override",
    [{"delta": 1e-6}, {"privacy_unit": "patient"}, {"accountant": "prv"}],
    ids=["delta", "unit", "accountant"],
)
def test_terms_that_do_not_compose_with_earlier_rows_are_refused(
    ledger: PrivacyLedger, override: dict[str, Any]
) -> None:
    reserve(ledger, 0, 0.5)
    with pytest.raises(LedgerError, match=r"compose|ambiguous"):
        reserve(ledger, 1, 0.9, **override)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.1, True, "1.0"])
def test_non_finite_or_negative_epsilon_is_refused(ledger: PrivacyLedger, bad: Any) -> None:
    with pytest.raises(LedgerError, match="epsilon"):
        reserve(ledger, 0, bad)
    assert ledger.entries() == []


@pytest.mark.parametrize(
    "override",
    [
        {"mechanism": "dp-adam"},
        {"privacy_unit": "hospital"},
        {"accountant": "gdp"},
        {"round_number": -1},
        {"hospital": ""},
        {"delta": 1.0},
    ],
)
def test_malformed_values_are_refused(ledger: PrivacyLedger, override: dict[str, Any]) -> None:
    values = dict(override)
    round_number = values.pop("round_number", 0)
    with pytest.raises(LedgerError):
        reserve(ledger, round_number, 0.5, **values)


def test_budget_cap_is_checked_in_the_reserving_transaction(ledger: PrivacyLedger) -> None:
    reserve(ledger, 0, 0.9, budget_epsilon=1.0)
    reserve(ledger, 1, 1.0 + 5e-10, budget_epsilon=1.0)  # float rounding is tolerated
    with pytest.raises(BudgetExhausted, match="spent"):
        reserve(ledger, 2, 1.0 + 5e-10, budget_epsilon=1.0)
    # a retry after a crash still gets its row back, although the budget is now spent
    assert reserve(ledger, 1, 1.0 + 5e-10, budget_epsilon=1.0).round == 1
    with pytest.raises(BudgetExhausted, match="past its budget"):
        reserve(ledger, 0, 1.2, hospital="h2", budget_epsilon=1.0)
    assert ledger.spent(run_id="run-1", hospital="h2", mechanism="dp-sgd") == 0.0


def test_report_rows_hold_ids_and_numbers_only(ledger: PrivacyLedger) -> None:
    reserve(ledger, 0, 0.5)
    (row,) = ledger.entries(run_id="run-1")
    assert set(row.as_dict()) == {
        "run_id",
        "hospital",
        "round",
        "mechanism",
        "privacy_unit",
        "accountant",
        "epsilon",
        "cumulative_epsilon",
        "delta",
        "status",
        "abort_reason",
        "created_at",
        "updated_at",
    }
    assert row.privacy_unit == "record"
    assert row.created_at.endswith("+00:00")


# ----------------------------------------------------------------------------- the file


def test_reopening_the_file_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "ledger.sqlite"
    with PrivacyLedger(path) as first:
        reserve(first, 0, 0.5)
        first.commit(**KEY, round_number=0)
        reserve(first, 1, 0.8)
        before = first.entries()
    with PrivacyLedger(path) as second:
        assert second.entries() == before
        assert spent(second) == 0.8


def test_file_is_in_wal_mode_with_full_sync_and_enforces_its_constraints(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with PrivacyLedger(path) as opened:
        assert opened._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert raw.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        insert = (
            "INSERT INTO privacy_ledger (run_id, hospital, round, mechanism, privacy_unit, "
            "accountant, epsilon, cumulative_epsilon, delta, status, created_at, updated_at) "
            "VALUES ('r', 'h', 0, ?, 'record', 'rdp', ?, 1.0, 1e-5, ?, 't', 't')"
        )
        for values in [("dp-sgd", -0.5, "reserved"), ("x", 0.5, "reserved"), ("dp-sgd", 0.5, "x")]:
            with pytest.raises(sqlite3.IntegrityError):
                raw.execute(insert, values)
        raw.execute(insert, ("dp-sgd", 0.5, "reserved"))
        with pytest.raises(sqlite3.IntegrityError):
            raw.execute(insert, ("dp-sgd", 0.5, "reserved"))  # UNIQUE(run, hospital, round, mech)
    finally:
        raw.close()


def test_garbage_file_raises_ledger_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not a database at all\n" * 200)
    with pytest.raises(LedgerError, match="not a readable privacy ledger"):
        PrivacyLedger(path)


def test_damaged_ledger_raises_ledger_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with PrivacyLedger(path) as opened:
        for round_number in range(50):
            reserve(opened, round_number, 0.01 * (round_number + 1))
    data = bytearray(path.read_bytes())
    data[100:] = b"\xff" * (len(data) - 100)  # keep the header, wreck every page
    path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    with pytest.raises(LedgerError):
        PrivacyLedger(path)


def test_a_database_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE patients (name TEXT)")
    raw.commit()
    raw.close()
    with pytest.raises(LedgerError, match="not a SecureMed privacy ledger"):
        PrivacyLedger(path)
    raw = sqlite3.connect(path)
    try:  # refused untouched: still in its own journal mode, no ledger tables added
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert raw.execute("SELECT name FROM sqlite_master").fetchall() == [("patients",)]
    finally:
        raw.close()


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    PrivacyLedger(path).close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    raw.commit()
    raw.close()
    with pytest.raises(LedgerError, match="schema version"):
        PrivacyLedger(path)


def test_closed_ledger_refuses_work(tmp_path: Path) -> None:
    opened = PrivacyLedger(tmp_path / "ledger.sqlite")
    opened.close()
    with pytest.raises(LedgerError, match="closed"):
        spent(opened)


# ------------------------------------------------------------------- crashes and processes


def test_reservation_survives_a_process_killed_before_it_sends(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    script = child_script(
        f"""
        import time
        ledger = ledger_module.PrivacyLedger({str(path)!r})
        ledger.reserve(run_id="run-1", hospital="h1", round_number=0, mechanism="dp-sgd",
                       cumulative_epsilon=0.7, delta=1e-5, privacy_unit="record",
                       accountant="rdp")
        print("reserved", flush=True)
        time.sleep(60)  # "sending": killed here, never committed
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "reserved", child.stderr.read() if child.stderr else ""
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with PrivacyLedger(path) as reopened:
        (row,) = reopened.entries()
        assert row.status == "reserved"
        assert spent(reopened) == 0.7


def test_processes_reserving_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    PrivacyLedger(path).close()
    children = []
    for worker in range(3):
        script = child_script(
            f"""
            ledger = ledger_module.PrivacyLedger({str(path)!r})
            for round_number in range(25):
                ledger.reserve(run_id="run-1", hospital="h{worker}", round_number=round_number,
                               mechanism="dp-sgd", cumulative_epsilon=0.1 * (round_number + 1),
                               delta=1e-5, privacy_unit="record", accountant="rdp")
                ledger.commit(run_id="run-1", hospital="h{worker}", round_number=round_number,
                              mechanism="dp-sgd")
            ledger.close()
            """
        )
        children.append(
            subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
        )
    for child in children:
        _, errors = child.communicate(timeout=60)
        assert child.returncode == 0, errors
    with PrivacyLedger(path) as reopened:
        rows: list[LedgerEntry] = reopened.entries()
        assert len(rows) == 75
        assert all(row.status == "released" for row in rows)
        by_hospital = reopened.spent_by_hospital(run_id="run-1", mechanism="dp-sgd")
        assert by_hospital == pytest.approx({"h0": 2.5, "h1": 2.5, "h2": 2.5})
