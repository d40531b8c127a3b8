"""The privacy ledger: write-ahead reservations, spend per data set over every run, the
mechanism's parameters, durability across crashes, bad and old files."""

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
KEY = {"dataset_id": "ds-1", "run_id": "run-1", "mechanism": "dp-sgd"}
TERMS = {"delta": 1e-5, "privacy_unit": "record", "accountant": "rdp"}
PARAMETERS = {"noise_multiplier": 1.1, "sample_rate": 0.01, "steps": 100}


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with PrivacyLedger(tmp_path / "ledger.sqlite") as opened:
        yield opened


def reserve(ledger: PrivacyLedger, round_number: int, cumulative: float, **overrides: Any) -> Any:
    values: dict[str, Any] = {**KEY, **TERMS, "hospital": "h1", "round_number": round_number}
    values["cumulative_epsilon"] = cumulative
    values["parameters"] = PARAMETERS
    values.update(overrides)
    return ledger.reserve(**values)


def spent(ledger: PrivacyLedger, dataset_id: str = "ds-1", mechanism: str = "dp-sgd") -> float:
    return ledger.spent(dataset_id=dataset_id, mechanism=mechanism)  # type: ignore[arg-type]


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
    with pytest.raises(LedgerError, match="already reserved"):
        reserve(ledger, 0, 0.5, parameters={**PARAMETERS, "noise_multiplier": 1.2})
    (row,) = ledger.entries()
    assert row.cumulative_epsilon == 0.5 and row.parameters == PARAMETERS


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
    rows = ledger.history(dataset_id="ds-1")
    assert [row.round for row in rows] == [0, 1, 2, 3]
    assert spent(ledger) == 1.3
    assert math.fsum(row.epsilon for row in rows) == pytest.approx(1.3, abs=1e-12)
    assert [row.epsilon for row in rows] == pytest.approx([0.4, 0.3, 0.25, 0.35])


def test_spend_is_kept_per_data_set_and_per_mechanism(ledger: PrivacyLedger) -> None:
    reserve(ledger, 0, 0.5)
    reserve(ledger, 0, 2.0, dataset_id="ds-2")  # same run, round and hospital: another data set
    reserve(ledger, 0, 0.1, mechanism="client-dp", privacy_unit="patient")
    assert spent(ledger) == 0.5
    assert spent(ledger, dataset_id="ds-2") == 2.0
    assert spent(ledger, mechanism="client-dp") == 0.1
    assert spent(ledger, dataset_id="ds-3") == 0.0


def test_two_runs_on_one_data_set_compose_into_one_spend(ledger: PrivacyLedger) -> None:
    reserve(ledger, 0, 0.4)
    ledger.commit(**KEY, round_number=0)
    reserve(ledger, 1, 0.6)  # run-1 ends with its last round reserved, never committed
    second = reserve(ledger, 0, 0.9, run_id="run-2", hospital="h1-renamed")
    assert second.epsilon == pytest.approx(0.3)  # the increment over run-1's spend
    assert spent(ledger) == 0.9
    rows = ledger.history(dataset_id="ds-1")
    assert math.fsum(row.epsilon for row in rows) == pytest.approx(0.9, abs=1e-12)
    run_2 = ledger.history(dataset_id="ds-1", run_id="run-2")
    assert [(row.run_id, row.round, row.hospital) for row in run_2] == [("run-2", 0, "h1-renamed")]


def test_a_later_run_is_checked_against_the_earlier_runs_spend(ledger: PrivacyLedger) -> None:
    reserve(ledger, 0, 0.6, budget_epsilon=1.0)
    reserve(ledger, 1, 0.9, budget_epsilon=1.0)
    ledger.commit(**KEY, round_number=1)
    # run-2 starts from an accountant that knows nothing of run-1
    with pytest.raises(LedgerError, match="forgotten a round"):
        reserve(ledger, 0, 0.5, run_id="run-2", budget_epsilon=1.0)
    # run-2 composed on run-1's history, but past the data set's budget
    with pytest.raises(BudgetExhausted, match="past its budget"):
        reserve(ledger, 0, 1.2, run_id="run-2", budget_epsilon=1.0)
    assert reserve(ledger, 0, 1.0, run_id="run-2", budget_epsilon=1.0).epsilon == pytest.approx(0.1)
    with pytest.raises(BudgetExhausted, match="spent"):
        reserve(ledger, 1, 1.0, run_id="run-2", budget_epsilon=1.0)
    with pytest.raises(BudgetExhausted, match="spent"):
        reserve(ledger, 0, 1.0, run_id="run-3", budget_epsilon=1.0)
    # another data set of the same hospital has its own budget, untouched
    other = reserve(ledger, 0, 0.7, run_id="run-3", dataset_id="ds-2", budget_epsilon=1.0)
    assert other.epsilon == 0.7 and spent(ledger, dataset_id="ds-2") == 0.7
    assert spent(ledger) == 1.0


def test_history_is_in_write_order_and_filters_by_run_and_mechanism(
    ledger: PrivacyLedger,
) -> None:
    reserve(ledger, 5, 0.2, run_id="run-a")
    reserve(ledger, 0, 0.3, run_id="run-b")
    reserve(ledger, 0, 0.1, mechanism="client-dp")
    reserve(ledger, 2, 0.4, run_id="run-a")
    reserve(ledger, 0, 9.0, dataset_id="ds-2")
    rows = ledger.history(dataset_id="ds-1")
    assert [(row.run_id, row.round, row.mechanism) for row in rows] == [
        ("run-a", 5, "dp-sgd"),
        ("run-b", 0, "dp-sgd"),
        ("run-1", 0, "client-dp"),
        ("run-a", 2, "dp-sgd"),
    ]
    assert [row.round for row in ledger.history(dataset_id="ds-1", run_id="run-a")] == [5, 2]
    dp_sgd = ledger.history(dataset_id="ds-1", mechanism="dp-sgd")
    assert [row.cumulative_epsilon for row in dp_sgd] == [0.2, 0.3, 0.4]
    assert ledger.history(dataset_id="ds-9") == []


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
        {"dataset_id": ""},
        {"dataset_id": None},
        {"run_id": ""},
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
        reserve(ledger, 0, 1.2, dataset_id="ds-2", budget_epsilon=1.0)
    assert spent(ledger, dataset_id="ds-2") == 0.0


def test_report_rows_hold_ids_and_numbers_only(ledger: PrivacyLedger) -> None:
    reserve(ledger, 0, 0.5)
    (row,) = ledger.entries(run_id="run-1")
    assert set(row.as_dict()) == {
        "dataset_id",
        "run_id",
        "hospital",
        "round",
        "mechanism",
        "privacy_unit",
        "accountant",
        "epsilon",
        "cumulative_epsilon",
        "delta",
        "parameters",
        "guarantee",
        "status",
        "abort_reason",
        "created_at",
        "updated_at",
    }
    assert row.privacy_unit == "record"
    assert row.as_dict()["parameters"] == PARAMETERS
    assert all(isinstance(value, int | float) for value in row.parameters.values())
    assert row.created_at.endswith("+00:00")


# ---------------------------------------------------------------- mechanism parameters


def test_parameters_round_trip_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    client_dp = {"noise_multiplier": 0.9, "sample_rate": 0.25, "steps": 1, "clip": 2.5}
    with PrivacyLedger(path) as first:
        reserve(first, 0, 0.5)
        reserve(first, 0, 0.2, mechanism="client-dp", parameters=client_dp)
    with PrivacyLedger(path) as reopened:
        dp_sgd, client = reopened.history(dataset_id="ds-1")
    assert dp_sgd.parameters == PARAMETERS and client.parameters == client_dp
    assert isinstance(dp_sgd.parameters["steps"], int)  # a count stays a count
    assert isinstance(dp_sgd.parameters["noise_multiplier"], float)


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        None,
        [("noise_multiplier", 1.0)],
        {**PARAMETERS, "noise_multiplier": math.nan},
        {**PARAMETERS, "sample_rate": math.inf},
        {**PARAMETERS, "noise_multiplier": "1.1"},
        {**PARAMETERS, "steps": True},
        {**PARAMETERS, "steps": None},
        {1: 1.0},
    ],
    ids=["empty", "none", "not-a-mapping", "nan", "inf", "string", "bool", "null", "int-key"],
)
def test_malformed_parameters_are_refused(ledger: PrivacyLedger, parameters: Any) -> None:
    with pytest.raises(LedgerError, match="parameter"):
        reserve(ledger, 0, 0.5, parameters=parameters)
    assert ledger.entries() == []


def test_retry_with_other_parameters_is_refused(ledger: PrivacyLedger) -> None:
    first = reserve(ledger, 0, 0.5)
    ledger.commit(**KEY, round_number=0)
    for changed in (
        {**PARAMETERS, "steps": 101},
        {"noise_multiplier": 1.1, "sample_rate": 0.01},
        {**PARAMETERS, "clip": 1.0},
    ):
        with pytest.raises(LedgerError, match="already reserved"):
            reserve(ledger, 0, 0.5, parameters=changed)
    # the same mapping in another key order is the same mechanism
    reordered = {"steps": 100, "sample_rate": 0.01, "noise_multiplier": 1.1}
    assert reserve(ledger, 0, 0.5, parameters=reordered).parameters == first.parameters
    (row,) = ledger.entries()
    assert row.parameters == PARAMETERS and row.status == "released"


# ------------------------------------------------------------------------- no guarantee


def test_rows_without_a_guarantee_are_recorded_as_such_and_still_count(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with PrivacyLedger(path) as first:
        seeded = reserve(first, 0, 0.5, guarantee=False)
        assert seeded.guarantee is False and seeded.counted
        assert spent(first) == 0.5
        first.commit(**KEY, round_number=0)
        with pytest.raises(LedgerError, match="forgotten a round"):
            reserve(first, 1, 0.3)  # a guaranteed run still composes on the seeded one
        with pytest.raises(BudgetExhausted, match="spent"):
            reserve(first, 1, 0.6, run_id="run-2", budget_epsilon=0.5)
        assert reserve(first, 1, 0.8).epsilon == pytest.approx(0.3)
    with PrivacyLedger(path) as reopened:
        rows = reopened.history(dataset_id="ds-1")
        assert [(row.round, row.guarantee) for row in rows] == [(0, False), (1, True)]
        assert spent(reopened) == 0.8


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
            "INSERT INTO privacy_ledger (dataset_id, run_id, hospital, round, mechanism, "
            "privacy_unit, accountant, epsilon, cumulative_epsilon, delta, parameters, "
            "guarantee, status, created_at, updated_at) VALUES (:dataset_id, :run_id, "
            ":hospital, 0, :mechanism, 'record', 'rdp', :epsilon, 1.0, 1e-5, '{}', "
            ":guarantee, :status, 't', 't')"
        )
        good = {
            "dataset_id": "d",
            "run_id": "r",
            "hospital": "h",
            "mechanism": "dp-sgd",
            "epsilon": 0.5,
            "guarantee": 1,
            "status": "reserved",
        }
        for change in [
            {"epsilon": -0.5},
            {"mechanism": "x"},
            {"status": "x"},
            {"guarantee": 2},
            {"dataset_id": ""},
            {"dataset_id": None},
        ]:
            with pytest.raises(sqlite3.IntegrityError):
                raw.execute(insert, {**good, **change})
        raw.execute(insert, good)
        with pytest.raises(sqlite3.IntegrityError):  # UNIQUE(dataset, run, round, mechanism)
            raw.execute(insert, good)
        with pytest.raises(sqlite3.IntegrityError):  # the hospital is not part of the key
            raw.execute(insert, {**good, "hospital": "h-other"})
        raw.execute(insert, {**good, "run_id": "r-2"})
        raw.execute(insert, {**good, "dataset_id": "d-2"})
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


def write_version_1_ledger(path: Path) -> None:
    """A ledger as schema version 1 wrote it: keyed by run, without mechanism parameters."""
    raw = sqlite3.connect(path)
    try:
        raw.executescript(
            """
            CREATE TABLE schema_version (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                format TEXT NOT NULL,
                version INTEGER NOT NULL CHECK (version >= 1),
                created_at TEXT NOT NULL
            );
            CREATE TABLE privacy_ledger (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                run_id TEXT NOT NULL,
                hospital TEXT NOT NULL,
                round INTEGER NOT NULL,
                mechanism TEXT NOT NULL,
                privacy_unit TEXT NOT NULL,
                accountant TEXT NOT NULL,
                epsilon REAL NOT NULL,
                cumulative_epsilon REAL NOT NULL,
                delta REAL NOT NULL,
                status TEXT NOT NULL,
                abort_reason TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                UNIQUE (run_id, hospital, round, mechanism)
            );
            INSERT INTO schema_version (id, format, version, created_at)
                VALUES (1, 'securemed-privacy-ledger', 1, '2024-01-01T00:00:00Z');
            INSERT INTO privacy_ledger (run_id, hospital, round, mechanism, privacy_unit,
                accountant, epsilon, cumulative_epsilon, delta, status, created_at, updated_at)
                VALUES ('run-1', 'h1', 0, 'dp-sgd', 'record', 'rdp', 0.5, 0.5, 1e-5,
                        'released', 't', 't');
            """
        )
        raw.commit()
    finally:
        raw.close()


def test_version_1_ledger_is_refused_as_not_composable(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    write_version_1_ledger(path)
    with pytest.raises(LedgerError, match="schema version 1") as refused:
        PrivacyLedger(path)
    assert "cannot be composed" in str(refused.value)
    assert "new ledger file" in str(refused.value)
    raw = sqlite3.connect(path)
    try:  # kept for the record, untouched: its row, its schema, its journal mode
        assert raw.execute("SELECT version FROM schema_version").fetchone() == (1,)
        assert raw.execute("SELECT run_id, cumulative_epsilon FROM privacy_ledger").fetchall() == [
            ("run-1", 0.5)
        ]
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    finally:
        raw.close()


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
        ledger.reserve(dataset_id="ds-1", run_id="run-1", hospital="h1", round_number=0,
                       mechanism="dp-sgd", cumulative_epsilon=0.7, delta=1e-5,
                       privacy_unit="record", accountant="rdp", parameters={PARAMETERS!r})
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
        assert row.parameters == PARAMETERS
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
                ledger.reserve(dataset_id="ds-{worker}", run_id="run-1", hospital="h{worker}",
                               round_number=round_number, mechanism="dp-sgd",
                               cumulative_epsilon=0.1 * (round_number + 1), delta=1e-5,
                               privacy_unit="record", accountant="rdp",
                               parameters={PARAMETERS!r})
                ledger.commit(dataset_id="ds-{worker}", run_id="run-1",
                              round_number=round_number, mechanism="dp-sgd")
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
        by_data_set = {f"ds-{worker}": spent(reopened, f"ds-{worker}") for worker in range(3)}
        assert by_data_set == pytest.approx({"ds-0": 2.5, "ds-1": 2.5, "ds-2": 2.5})
        for worker in range(3):  # each worker's rows in the order it wrote them
            rows = reopened.history(dataset_id=f"ds-{worker}")
            assert [row.round for row in rows] == list(range(25))
