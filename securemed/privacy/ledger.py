"""The privacy ledger: a durable, write-ahead record of the privacy a hospital's data has spent.

A hospital keeps its own ledger, on its own machine (the aggregator never writes to it). One
SQLite file holds one row per (dataset, run, round, mechanism): the budget belongs to a data
set, not to a run, so every run, sweep or audit on the same data composes with the others.
A row is written and committed to disk *before* the hospital's update leaves the hospital, in
two steps:

1. :meth:`PrivacyLedger.reserve` writes a ``reserved`` row. From that moment the epsilon counts
   as spent: a process that crashes after reserving and before (or while) sending may have
   released the update, and the ledger cannot tell, so it assumes the worst.
2. :meth:`PrivacyLedger.commit` marks the row ``released`` once the update has been sent.

:meth:`PrivacyLedger.abort` marks a ``reserved`` row ``aborted`` so that it stops counting. It
is sound only when the update provably never left the hospital's trust boundary *and* the
decision to abort did not depend on the data (training crashed, the aggregator was
unreachable before sending began). Aborting because the noisy update "looked bad" and trying
again with fresh noise is cherry-picking noise draws, which voids the guarantee; so an aborted
round stays closed for that hospital (a later reservation of the same key is refused) and the
row is kept for the audit trail.

Spend. Epsilons under RDP or PRV composition are not additive: the accountant composes the
whole history into one cumulative epsilon. Every row therefore stores the mechanism the round
ran (``parameters``: for DP-SGD its noise multiplier, sample rate and steps), so the accountant
can be rebuilt from the ledger alone after a crash or in a later run, the accountant's
cumulative epsilon over the data set's whole history after the round (``cumulative_epsilon``)
and the round's increment over the previous counted row (``epsilon``). The spend of a data set
is the largest cumulative epsilon over its counted rows (``reserved`` and ``released``), which
equals the sum of the increments. A reservation whose cumulative epsilon is below the spend
already recorded is refused: it would come from an accountant that forgot a round.

``guarantee`` is false on rows of a run in the insecure reproducible mode (noise that follows
from a config seed): their epsilon is recorded, and still counted, but promises nothing.

Concurrency: several processes (Ray actors) may open the same file. Every write is one short
``BEGIN IMMEDIATE`` transaction in WAL mode with ``synchronous=FULL``, so a committed row
survives a crash of the process or of the machine.

What it does not do: compute epsilons (the accountant and :mod:`securemed.privacy.budget` do),
decide budgets, or hold anything about patients: rows carry ids and numbers only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast, get_args

from securemed.errors import BudgetExhausted, LedgerError

log = logging.getLogger(__name__)

PrivacyUnit = Literal["record", "patient"]
Mechanism = Literal["dp-sgd", "client-dp"]
AccountantKind = Literal["rdp", "prv"]
EntryStatus = Literal["reserved", "released", "aborted"]

SCHEMA_VERSION = 2
LEDGER_FORMAT = "securemed-privacy-ledger"
#: Slack for float rounding when comparing epsilons (composition recomputed from the same
#: history is bit-identical; this only absorbs the last bits of a subtraction).
EPSILON_TOLERANCE = 1e-9

_COUNTED: tuple[EntryStatus, ...] = ("reserved", "released")

_SCHEMA = f"""
CREATE TABLE schema_version (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    format      TEXT    NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    created_at  TEXT    NOT NULL
);
CREATE TABLE privacy_ledger (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id          TEXT    NOT NULL CHECK (length(dataset_id) > 0),
    run_id              TEXT    NOT NULL CHECK (length(run_id) > 0),
    hospital            TEXT    NOT NULL CHECK (length(hospital) > 0),
    round               INTEGER NOT NULL CHECK (round >= 0),
    mechanism           TEXT    NOT NULL CHECK (mechanism IN ('dp-sgd', 'client-dp')),
    privacy_unit        TEXT    NOT NULL CHECK (privacy_unit IN ('record', 'patient')),
    accountant          TEXT    NOT NULL CHECK (accountant IN ('rdp', 'prv')),
    epsilon             REAL    NOT NULL CHECK (epsilon >= 0),
    cumulative_epsilon  REAL    NOT NULL CHECK (cumulative_epsilon >= epsilon),
    delta               REAL    NOT NULL CHECK (delta > 0 AND delta < 1),
    parameters          TEXT    NOT NULL,
    guarantee           INTEGER NOT NULL CHECK (guarantee IN (0, 1)),
    status              TEXT    NOT NULL CHECK (status IN ('reserved', 'released', 'aborted')),
    abort_reason        TEXT,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL,
    UNIQUE (dataset_id, run_id, round, mechanism)
);
CREATE INDEX privacy_ledger_by_dataset
    ON privacy_ledger (dataset_id, mechanism, status);
INSERT INTO schema_version (id, format, version, created_at)
    VALUES (1, '{LEDGER_FORMAT}', {SCHEMA_VERSION}, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
"""

_COLUMNS = (
    "dataset_id, run_id, hospital, round, mechanism, privacy_unit, accountant, epsilon, "
    "cumulative_epsilon, delta, parameters, guarantee, status, abort_reason, created_at, "
    "updated_at"
)


@dataclass(frozen=True)
class LedgerEntry:
    """One row of the ledger: what one data set spent in one round under one mechanism.

    Attributes:
        dataset_id: the data set the budget belongs to (never a name of a patient).
        run_id: the run the round belongs to.
        hospital: the hospital's id (never a name or anything about its patients).
        round: the round number.
        mechanism: ``"dp-sgd"`` (record- or patient-level DP-SGD at the hospital) or
            ``"client-dp"`` (client-level Skellam noise the hospital adds to its masked update).
        privacy_unit: what the guarantee protects, ``"record"`` or ``"patient"``.
        accountant: ``"rdp"`` or ``"prv"``; epsilons of different accountants do not compose.
        epsilon: the increase of the cumulative epsilon in this round.
        cumulative_epsilon: the accountant's composed epsilon after this round.
        delta: the delta both epsilons are stated at.
        parameters: the mechanism of the round (DP-SGD: ``noise_multiplier``,
            ``sample_rate``, ``steps``), from which the accountant is rebuilt.
        guarantee: ``False`` for a run whose noise followed from a config seed.
        status: ``"reserved"`` (counted, maybe released), ``"released"`` (counted, sent) or
            ``"aborted"`` (not counted: never released).
        abort_reason: why a reservation was aborted; ``None`` otherwise.
        created_at: when the reservation was written (ISO 8601, UTC).
        updated_at: when the status last changed (ISO 8601, UTC).
    """

    dataset_id: str
    run_id: str
    hospital: str
    round: int
    mechanism: Mechanism
    privacy_unit: PrivacyUnit
    accountant: AccountantKind
    epsilon: float
    cumulative_epsilon: float
    delta: float
    parameters: Mapping[str, float]
    guarantee: bool
    status: EntryStatus
    abort_reason: str | None
    created_at: str
    updated_at: str

    @property
    def counted(self) -> bool:
        """Whether the row counts as spent (reserved or released)."""
        return self.status in _COUNTED

    def as_dict(self) -> dict[str, Any]:
        """The row as plain values, for a report."""
        return asdict(self)


class PrivacyLedger:
    """A privacy ledger in one SQLite file, safe to open from several processes at once.

    Args:
        path: the ledger file; created (with its parent folder) if it does not exist.
        busy_timeout_s: how long a write waits for another process's transaction.

    Raises:
        LedgerError: the file is not a SQLite database, is corrupt, is a database that is
            not a SecureMed ledger, or has a schema version this code does not know.

    Example:
        >>> with PrivacyLedger(tmp_path / "ledger.sqlite") as ledger:
        ...     entry = ledger.reserve(dataset_id="ds-1", run_id="run-1", hospital="h1",
        ...                            round_number=0, mechanism="dp-sgd",
        ...                            cumulative_epsilon=0.8, delta=1e-5,
        ...                            privacy_unit="record", accountant="prv",
        ...                            parameters={"noise_multiplier": 1.1,
        ...                                        "sample_rate": 0.01, "steps": 100})
        ...     # ... send the update, then:
        ...     ledger.commit(dataset_id="ds-1", run_id="run-1", round_number=0,
        ...                   mechanism="dp-sgd")
        ...     ledger.spent(dataset_id="ds-1", mechanism="dp-sgd")
        0.8
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 30.0) -> None:
        if not busy_timeout_s > 0:
            raise LedgerError(f"busy_timeout_s must be positive, got {busy_timeout_s}")
        self._path = Path(path)
        self._lock = threading.Lock()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: no implicit transactions; each write is BEGIN IMMEDIATE.
            self._conn = sqlite3.connect(
                self._path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise LedgerError(f"cannot open the privacy ledger {self._path}: {error}") from None
        try:
            self._check_file(busy_timeout_s)
            self._initialise()
            self._configure()
        except LedgerError:
            self._conn.close()
            raise
        except sqlite3.Error as error:
            self._conn.close()
            raise LedgerError(
                f"{self._path} is not a readable privacy ledger ({error}); restore it from a "
                "backup or point the federation at the right file"
            ) from None

    # ----------------------------------------------------------------------------- set-up

    def _check_file(self, busy_timeout_s: float) -> None:
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        check = self._conn.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise LedgerError(
                f"the privacy ledger {self._path} failed its integrity check "
                f"({check[0][0] if check else 'no answer'}); restore it from a backup"
            )

    def _configure(self) -> None:
        # After _initialise, so a database that is not a ledger is refused untouched.
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise LedgerError(
                f"the privacy ledger {self._path} cannot use WAL journaling (got {mode!r}); "
                "keep it on a local file system"
            )
        self._conn.execute("PRAGMA synchronous = FULL")

    def _initialise(self) -> None:
        with self._transaction() as conn:
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            tables.discard("sqlite_sequence")
            if not tables:  # a new (or empty) file: this process creates the ledger
                for statement in _statements(_SCHEMA):
                    conn.execute(statement)
                tables = {"schema_version", "privacy_ledger"}
            if "schema_version" not in tables:
                raise LedgerError(
                    f"{self._path} is a SQLite database but not a SecureMed privacy ledger "
                    f"(tables {sorted(tables)[:5]}); give the ledger its own file"
                )
            row = conn.execute("SELECT format, version FROM schema_version WHERE id = 1").fetchone()
        if row is None or row[0] != LEDGER_FORMAT:
            raise LedgerError(
                f"{self._path} has a schema_version table but is not a SecureMed privacy ledger"
            )
        if row[1] == 1:
            raise LedgerError(
                f"the privacy ledger {self._path} has schema version 1, which kept one run's "
                "spend without the mechanisms that spent it, so it cannot be composed with "
                "other runs; keep it for the record and give the hospital a new ledger file"
            )
        if row[1] != SCHEMA_VERSION:
            raise LedgerError(
                f"the privacy ledger {self._path} has schema version {row[1]}; this SecureMed "
                f"reads version {SCHEMA_VERSION}: upgrade SecureMed (never downgrade a ledger)"
            )
        if "privacy_ledger" not in tables:
            raise LedgerError(
                f"the privacy ledger {self._path} has lost its privacy_ledger table; restore it "
                "from a backup"
            )

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One short transaction; the lock keeps threads of one process apart.

        Writes take SQLite's write lock up front (``BEGIN IMMEDIATE``), so two processes never
        both read the spend and then both append to it; reads get a consistent snapshot.
        """
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.ProgrammingError as error:
                raise LedgerError(f"the privacy ledger is closed ({error})") from None
            except sqlite3.Error as error:
                raise LedgerError(
                    f"cannot start a transaction on the privacy ledger {self._path} ({error}); "
                    "another process may hold it longer than the busy timeout"
                ) from None
            try:
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as error:
                _rollback(conn)
                raise LedgerError(
                    f"the privacy ledger {self._path} refused a write ({error}); nothing was "
                    "recorded"
                ) from None
            except BaseException:
                _rollback(conn)
                raise

    # ------------------------------------------------------------------------- lifecycle

    @property
    def path(self) -> Path:
        """The ledger file."""
        return self._path

    def close(self) -> None:
        """Close the file; every committed row is already on disk."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PrivacyLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------- writes

    def reserve(
        self,
        *,
        dataset_id: str,
        run_id: str,
        hospital: str,
        round_number: int,
        mechanism: Mechanism,
        cumulative_epsilon: float,
        delta: float,
        privacy_unit: PrivacyUnit,
        accountant: AccountantKind,
        parameters: Mapping[str, float],
        guarantee: bool = True,
        budget_epsilon: float | None = None,
    ) -> LedgerEntry:
        """Record, durably, that the hospital is about to release this round's update.

        Call it before the update leaves the hospital; the row counts as spent as soon as
        this returns. A retry with the same key and the same values (after a crash between
        reserving and sending) returns the existing row unchanged.

        Args:
            cumulative_epsilon: the accountant's composed epsilon after this round, at
                ``delta``, over the data set's whole history (every run).
            parameters: the round's mechanism (finite numbers), for rebuilding the accountant.
            guarantee: ``False`` when the run's noise followed from a config seed.
            budget_epsilon: the hospital's budget at ``delta``; ``None`` records without a
                budget check (the orchestrator passes it).

        Returns:
            The reserved (or, on an idempotent retry, the existing) row.

        Raises:
            LedgerError: a value is malformed or not finite; the key is already taken with
                other values, or was aborted; ``delta``, ``privacy_unit`` or ``accountant``
                differ from the data set's earlier rows; or the cumulative epsilon is below
                what the data set has already spent.
            BudgetExhausted: ``budget_epsilon`` is given and the data set has already spent
                it, or ``cumulative_epsilon`` exceeds it by more than
                :data:`EPSILON_TOLERANCE`. Checked inside the same transaction as the write,
                so two processes cannot both squeeze under the budget.
        """
        _check_key(dataset_id, run_id, round_number, mechanism)
        if not isinstance(hospital, str) or not hospital:
            raise LedgerError(f"hospital must be a non-empty id, got {hospital!r}")
        _check_choice("privacy_unit", privacy_unit, PrivacyUnit)
        encoded = _encode_parameters(parameters)
        _check_choice("accountant", accountant, AccountantKind)
        cumulative = _finite_epsilon(cumulative_epsilon)
        if isinstance(delta, bool) or not isinstance(delta, int | float):
            raise LedgerError(f"delta must be a number, got {delta!r}")
        if not (math.isfinite(delta) and 0 < delta < 1):
            raise LedgerError(f"delta must be in (0, 1), got {delta!r}")
        delta = float(delta)
        if budget_epsilon is not None:
            budget_epsilon = _finite_epsilon(budget_epsilon)

        with self._transaction() as conn:
            existing = _fetch_one(conn, dataset_id, run_id, round_number, mechanism)
            if existing is not None:
                same = (
                    existing.cumulative_epsilon == cumulative
                    and existing.delta == delta
                    and existing.privacy_unit == privacy_unit
                    and existing.accountant == accountant
                    and _encode_parameters(existing.parameters) == encoded
                )
                if existing.status == "aborted":
                    raise LedgerError(
                        f"round {round_number} of data set {dataset_id!r} ({mechanism}) was "
                        "aborted; an aborted round stays closed (retrying it with fresh noise "
                        "would pick among noise draws): join the next round"
                    )
                if not same:
                    raise LedgerError(
                        f"round {round_number} of data set {dataset_id!r} ({mechanism}) is already "
                        f"reserved with cumulative epsilon {existing.cumulative_epsilon!r} at "
                        f"delta {existing.delta!r} ({existing.privacy_unit}, "
                        f"{existing.accountant}); a retry must carry the same values"
                    )
                return existing

            previous = conn.execute(
                "SELECT MAX(cumulative_epsilon), MIN(delta), MAX(delta), "
                "COUNT(DISTINCT privacy_unit), MIN(privacy_unit), "
                "COUNT(DISTINCT accountant), MIN(accountant) "
                "FROM privacy_ledger WHERE dataset_id = ? AND mechanism = ? "
                "AND status IN ('reserved', 'released')",
                (dataset_id, mechanism),
            ).fetchone()
            spent = 0.0
            if previous[0] is not None:
                spent = float(previous[0])
                if previous[1] != delta or previous[2] != delta:
                    raise LedgerError(
                        f"data set {dataset_id!r} has spent at delta {previous[1]!r}; "
                        f"a reservation at delta {delta!r} does not compose with it"
                    )
                if previous[4] != privacy_unit:
                    raise LedgerError(
                        f"data set {dataset_id!r} has spent per {previous[4]}; a "
                        f"reservation per {privacy_unit} would make its report ambiguous"
                    )
                if previous[6] != accountant:
                    raise LedgerError(
                        f"data set {dataset_id!r} has been accounted with {previous[6]}; "
                        f"epsilons of the {accountant} accountant do not compose with it"
                    )
                if cumulative < spent - EPSILON_TOLERANCE:
                    raise LedgerError(
                        f"data set {dataset_id!r} has already spent epsilon {spent!r}, but round "
                        f"{round_number} reserves a cumulative epsilon of {cumulative!r}: the "
                        "accountant has forgotten a round; rebuild its history from this ledger "
                        "and recompute"
                    )
            if budget_epsilon is not None:
                if spent >= budget_epsilon:
                    raise BudgetExhausted(
                        f"data set {dataset_id!r} has spent epsilon {spent:.6g} of its budget "
                        f"{budget_epsilon:.6g} (reserved rounds count, in {self._path}): it must "
                        "not release another update"
                    )
                if cumulative > budget_epsilon + EPSILON_TOLERANCE:
                    raise BudgetExhausted(
                        f"round {round_number} would take data set {dataset_id!r} to epsilon "
                        f"{cumulative:.6g}, past its budget {budget_epsilon:.6g}; exclude it "
                        "or raise its noise"
                    )
            increment = max(0.0, cumulative - spent)
            now = _now()
            conn.execute(
                f"INSERT INTO privacy_ledger ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'reserved', NULL, ?, ?)",
                (
                    dataset_id,
                    run_id,
                    hospital,
                    round_number,
                    mechanism,
                    privacy_unit,
                    accountant,
                    increment,
                    cumulative,
                    delta,
                    encoded,
                    int(bool(guarantee)),
                    now,
                    now,
                ),
            )
            entry = _fetch_one(conn, dataset_id, run_id, round_number, mechanism)
        assert entry is not None
        log.info(
            "privacy reserved",
            extra={
                "dataset_id": dataset_id,
                "run_id": run_id,
                "round": round_number,
                "mechanism": mechanism,
                "epsilon": entry.epsilon,
                "cumulative_epsilon": entry.cumulative_epsilon,
            },
        )
        return entry

    def commit(
        self,
        *,
        dataset_id: str,
        run_id: str,
        round_number: int,
        mechanism: Mechanism,
    ) -> LedgerEntry:
        """Mark a reserved round as released (sent). Committing twice is a no-op.

        Raises:
            LedgerError: there is no reservation for the key, or it was aborted.
        """
        return self._transition(dataset_id, run_id, round_number, mechanism, "released", None)

    def abort(
        self,
        *,
        dataset_id: str,
        run_id: str,
        round_number: int,
        mechanism: Mechanism,
        reason: str,
    ) -> LedgerEntry:
        """Mark a reservation as never released, so that it no longer counts as spent.

        Only for an update that provably never left the hospital, for a reason that does not
        depend on the data (training failed, the aggregator was unreachable before sending
        began). When in doubt, do not abort: a reserved row that is never committed still
        counts, which is the safe side. The round stays closed for this data set.

        Args:
            reason: why, for the audit trail (no PHI).

        Raises:
            LedgerError: there is no reservation for the key, or it was already released.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise LedgerError("abort needs a reason (for the audit trail)")
        return self._transition(dataset_id, run_id, round_number, mechanism, "aborted", reason)

    def _transition(
        self,
        dataset_id: str,
        run_id: str,
        round_number: int,
        mechanism: Mechanism,
        status: EntryStatus,
        reason: str | None,
    ) -> LedgerEntry:
        _check_key(dataset_id, run_id, round_number, mechanism)
        with self._transaction() as conn:
            existing = _fetch_one(conn, dataset_id, run_id, round_number, mechanism)
            if existing is None:
                raise LedgerError(
                    f"no reservation for round {round_number} of data set {dataset_id!r} "
                    f"({mechanism}) in run {run_id!r}; reserve before releasing"
                )
            if existing.status == status:
                return existing
            if existing.status != "reserved":
                raise LedgerError(
                    f"round {round_number} of data set {dataset_id!r} ({mechanism}) is "
                    f"{existing.status}; it cannot become {status}"
                )
            conn.execute(
                "UPDATE privacy_ledger SET status = ?, abort_reason = ?, updated_at = ? "
                "WHERE dataset_id = ? AND run_id = ? AND round = ? AND mechanism = ?",
                (status, reason, _now(), dataset_id, run_id, round_number, mechanism),
            )
            entry = _fetch_one(conn, dataset_id, run_id, round_number, mechanism)
        assert entry is not None
        log.info(
            "privacy %s",
            status,
            extra={
                "dataset_id": dataset_id,
                "run_id": run_id,
                "round": round_number,
                "mechanism": mechanism,
            },
        )
        return entry

    # ----------------------------------------------------------------------------- reads

    def spent(self, *, dataset_id: str, mechanism: Mechanism) -> float:
        """The data set's spend over every run: its largest counted cumulative epsilon (0 if
        none). Counted rows are ``reserved`` and ``released`` ones; this equals the sum of
        their per-round epsilons.
        """
        _check_key(dataset_id, "any", 0, mechanism)
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT MAX(cumulative_epsilon) FROM privacy_ledger "
                "WHERE dataset_id = ? AND mechanism = ? AND status IN ('reserved', 'released')",
                (dataset_id, mechanism),
            ).fetchone()
        return 0.0 if row[0] is None else float(row[0])

    def history(
        self,
        *,
        dataset_id: str,
        mechanism: Mechanism | None = None,
        run_id: str | None = None,
    ) -> list[LedgerEntry]:
        """Every row of one data set (aborted ones included), in the order they were written;
        of one ``mechanism`` and one ``run_id`` when given."""
        query = f"SELECT {_COLUMNS} FROM privacy_ledger WHERE dataset_id = ?"
        params: list[Any] = [dataset_id]
        if mechanism is not None:
            query += " AND mechanism = ?"
            params.append(mechanism)
        if run_id is not None:
            query += " AND run_id = ?"
            params.append(run_id)
        with self._transaction(write=False) as conn:
            rows = conn.execute(query + " ORDER BY id", params).fetchall()
        return [_entry(row) for row in rows]

    def entries(self, *, run_id: str | None = None) -> list[LedgerEntry]:
        """All rows (of one run, or of every run), for a report: ids and numbers only."""
        query = f"SELECT {_COLUMNS} FROM privacy_ledger"
        params: list[Any] = []
        if run_id is not None:
            query += " WHERE run_id = ?"
            params.append(run_id)
        with self._transaction(write=False) as conn:
            rows = conn.execute(query + " ORDER BY id", params).fetchall()
        return [_entry(row) for row in rows]


# ------------------------------------------------------------------------------- helpers


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _fetch_one(
    conn: sqlite3.Connection, dataset_id: str, run_id: str, round_: int, mechanism: str
) -> LedgerEntry | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM privacy_ledger "
        "WHERE dataset_id = ? AND run_id = ? AND round = ? AND mechanism = ?",
        (dataset_id, run_id, round_, mechanism),
    ).fetchone()
    return None if row is None else _entry(row)


def _entry(row: tuple[Any, ...]) -> LedgerEntry:
    values = dict(zip(_COLUMNS.split(", "), row, strict=True))
    for name in ("epsilon", "cumulative_epsilon", "delta"):
        if not isinstance(values[name], float | int) or not math.isfinite(values[name]):
            raise LedgerError(
                f"ledger row {values['dataset_id']!r}/{values['run_id']!r}/round "
                f"{values['round']} holds a non-finite {name}; the file was edited by hand"
            )
        values[name] = float(values[name])
    try:
        values["parameters"] = json.loads(values["parameters"])
    except (TypeError, ValueError):
        raise LedgerError(
            f"ledger row {values['dataset_id']!r}/{values['run_id']!r}/round {values['round']} "
            "holds unreadable mechanism parameters; the file was edited by hand"
        ) from None
    values["guarantee"] = bool(values["guarantee"])
    return LedgerEntry(**values)


def _encode_parameters(parameters: Mapping[str, float]) -> str:
    """The mechanism's parameters as canonical JSON (sorted keys, finite numbers only)."""
    if not isinstance(parameters, Mapping) or not parameters:
        raise LedgerError("a reservation needs the mechanism's parameters (noise, rate, steps)")
    for name, value in parameters.items():
        if (
            not isinstance(name, str)
            or isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise LedgerError(
                f"mechanism parameter {name!r} must be a finite number, got {value!r}"
            )
    return json.dumps(dict(parameters), sort_keys=True)


def _check_key(dataset_id: str, run_id: str, round_: int, mechanism: str) -> None:
    if not isinstance(dataset_id, str) or not dataset_id:
        raise LedgerError(f"dataset_id must be a non-empty string, got {dataset_id!r}")
    if not isinstance(run_id, str) or not run_id:
        raise LedgerError(f"run_id must be a non-empty string, got {run_id!r}")
    if isinstance(round_, bool) or not isinstance(round_, int) or round_ < 0:
        raise LedgerError(f"round must be a non-negative integer, got {round_!r}")
    _check_choice("mechanism", mechanism, Mechanism)


def _check_choice(name: str, value: object, kind: object) -> None:
    choices = get_args(kind)
    if value not in choices:
        raise LedgerError(f"{name} must be one of {list(choices)}, got {value!r}")


def _finite_epsilon(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LedgerError(f"epsilon must be a number, got {value!r}")
    epsilon = float(cast(float, value))
    if not math.isfinite(epsilon):
        raise LedgerError(
            f"epsilon must be finite, got {epsilon!r}: the accountant gives no guarantee for "
            "this update; do not release it"
        )
    if epsilon < 0:
        raise LedgerError(f"epsilon cannot be negative, got {epsilon!r}")
    return epsilon
