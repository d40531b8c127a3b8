"""A hash-chained, append-only audit log in JSON lines.

Each line is one entry: ``seq`` (1 for the first line, so it equals the line number),
``timestamp`` (UTC, ISO 8601), ``event``, ``fields``, ``prev_hash`` (the previous entry's
``hash``, 64 zeros for the first) and ``hash``, the SHA-256 of the canonical JSON (sorted keys,
no whitespace, ASCII) of the entry without ``hash``. Changing, removing, inserting or reordering
an entry breaks the chain at a line :func:`verify_audit_log` names.

What the chain does not prove: a log whose last entries were cut off at a line boundary, or
rewritten from some entry to the end with fresh hashes, verifies on its own. Anchor
:attr:`AuditLog.head_hash` somewhere the writer cannot rewrite (round results, a second
machine) and pass it to ``verify_audit_log(path, head_hash=...)`` to close that gap.

No PHI, by construction: field values are only short strings, numbers, booleans, ``None`` or
lists of those, and event names follow an identifier pattern. Callers log identifiers (hospital
names, round numbers, rule names, counts, hashes), never free text from a patient record; the
limits make accidentally logging a report or a record fail loudly instead of leaking into a file
that is kept for years.

One writer per file: the writer holds an exclusive ``flock`` so that a second ``AuditLog`` on the
same file fails instead of interleaving two chains. Within the writer, appends take a lock, since
the aggregator may log from more than one thread.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

from securemed.durable import fsync_directory
from securemed.errors import AuditLogCorrupted, ConfigError

#: ``prev_hash`` of the first entry.
GENESIS_HASH = "0" * 64
#: Longest string a field may hold: room for a hash or a name, not for a sentence of a report.
MAX_STRING_LENGTH = 128
#: Longest list a field may hold (for example the hospitals flagged in a round).
MAX_LIST_LENGTH = 256
#: Most fields one entry may carry.
MAX_FIELDS = 32

_EVENT = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_MAX_NAME_LENGTH = 64
_HASH = re.compile(r"[0-9a-f]{64}")
_INT64 = (-(2**63), 2**63 - 1)
_KEYS = frozenset({"seq", "timestamp", "event", "fields", "prev_hash", "hash"})

Scalar = str | int | float | bool | None
FieldValue = Scalar | tuple[Scalar, ...]


class TornAuditEntry(AuditLogCorrupted):
    """The last line of the log is incomplete: the writer stopped in the middle of an append
    (a crash or a full disk). Every entry before it verifies; that append was never
    acknowledged. ``AuditLog(path, repair_torn_tail=True)`` cuts the fragment off and records
    that it did."""

    def __init__(self, message: str, *, line: int, valid_entries: int) -> None:
        super().__init__(message)
        self.line = line
        self.valid_entries = valid_entries


@dataclass(frozen=True)
class AuditEntry:
    """One verified line of the audit log."""

    seq: int
    timestamp: str
    event: str
    fields: Mapping[str, FieldValue]
    prev_hash: str
    hash: str

    def record(self) -> dict[str, Any]:
        """The entry as the JSON object written on its line."""
        return {**_unhashed(self), "hash": self.hash}


def _unhashed(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "timestamp": entry.timestamp,
        "event": entry.event,
        "fields": {name: _to_json(value) for name, value in entry.fields.items()},
        "prev_hash": entry.prev_hash,
    }


def _to_json(value: FieldValue) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def _hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(record)).hexdigest()


def _check_event(event: object) -> str:
    if not isinstance(event, str) or len(event) > _MAX_NAME_LENGTH or not _EVENT.fullmatch(event):
        raise ConfigError(
            f"audit event names are lower-case identifiers, optionally dotted "
            f"(e.g. 'round.committed'), at most {_MAX_NAME_LENGTH} characters; got {event!r}"
        )
    return event


def _check_scalar(name: str, value: object) -> Scalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise ConfigError(f"audit field {name!r}: integer {value} does not fit in 64 bits")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"audit field {name!r}: {value} is not a finite number")
        return float(value)
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise ConfigError(
                f"audit field {name!r}: a string of {len(value)} characters is longer than "
                f"{MAX_STRING_LENGTH}; log an identifier or a hash, never free text"
            )
        if not value.isprintable():
            raise ConfigError(
                f"audit field {name!r}: control characters are refused; log an identifier"
            )
        return str.__str__(value)
    raise ConfigError(
        f"audit field {name!r}: {type(value).__name__} is refused; fields hold str, int, float, "
        "bool, None or a list of those (convert numpy or torch scalars with int() or float())"
    )


def _check_fields(fields: Mapping[str, object]) -> dict[str, FieldValue]:
    if len(fields) > MAX_FIELDS:
        raise ConfigError(f"an audit entry carries at most {MAX_FIELDS} fields, got {len(fields)}")
    checked: dict[str, FieldValue] = {}
    for name, value in fields.items():
        if (
            not isinstance(name, str)
            or len(name) > _MAX_NAME_LENGTH
            or not _FIELD_NAME.fullmatch(name)
        ):
            raise ConfigError(f"audit field names are lower-case identifiers; got {name!r}")
        if isinstance(value, list | tuple):
            if len(value) > MAX_LIST_LENGTH:
                raise ConfigError(
                    f"audit field {name!r}: a list of {len(value)} items is longer than "
                    f"{MAX_LIST_LENGTH}"
                )
            checked[name] = tuple(_check_scalar(name, item) for item in value)
        else:
            checked[name] = _check_scalar(name, value)
    return checked


def _entry_from_line(raw: bytes, line: int) -> AuditEntry:
    """Parse one complete line; raise AuditLogCorrupted naming ``line`` if it is malformed."""
    try:
        record = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise AuditLogCorrupted(f"audit log line {line} is not a JSON entry") from None
    if not isinstance(record, dict) or set(record) != _KEYS:
        raise AuditLogCorrupted(
            f"audit log line {line} does not hold exactly the keys {', '.join(sorted(_KEYS))}"
        )
    seq, timestamp, event, fields = (record[k] for k in ("seq", "timestamp", "event", "fields"))
    prev_hash, entry_hash = record["prev_hash"], record["hash"]
    if (
        isinstance(seq, bool)
        or not isinstance(seq, int)
        or not isinstance(timestamp, str)
        or not isinstance(fields, dict)
        or not isinstance(prev_hash, str)
        or not _HASH.fullmatch(prev_hash)
        or not isinstance(entry_hash, str)
        or not _HASH.fullmatch(entry_hash)
    ):
        raise AuditLogCorrupted(f"audit log line {line} has a value of the wrong type")
    try:
        entry = AuditEntry(
            seq=seq,
            timestamp=timestamp,
            event=_check_event(event),
            fields=MappingProxyType(_check_fields(fields)),
            prev_hash=prev_hash,
            hash=entry_hash,
        )
    except ConfigError as error:
        raise AuditLogCorrupted(f"audit log line {line} holds a refused value: {error}") from None
    if _canonical(entry.record()) != raw:
        # Same meaning, different bytes (whitespace, key order, a duplicated key): not written
        # by AuditLog, and a second parser might read it differently.
        raise AuditLogCorrupted(f"audit log line {line} is not in canonical form; it was edited")
    return entry


@dataclass(frozen=True)
class _Scan:
    entries: list[AuditEntry]
    valid_length: int  # bytes up to and including the last complete, verified line
    torn_line: int | None


def _scan(path: Path) -> _Scan:
    """Verify every complete line; note (do not raise for) a torn final line."""
    data = path.read_bytes()
    complete_end = data.rfind(b"\n") + 1
    lines = data[:complete_end].split(b"\n")[:-1] if complete_end else []
    entries: list[AuditEntry] = []
    prev_hash = GENESIS_HASH
    for line, raw in enumerate(lines, start=1):
        entry = _entry_from_line(raw, line)
        if entry.seq != line:
            raise AuditLogCorrupted(
                f"audit log line {line} holds entry {entry.seq}: an entry was removed, "
                "inserted or reordered"
            )
        if entry.prev_hash != prev_hash:
            raise AuditLogCorrupted(
                f"audit log line {line} does not chain to line {line - 1}: an earlier entry "
                "was changed, removed or inserted"
            )
        if _hash(_unhashed(entry)) != entry.hash:
            raise AuditLogCorrupted(
                f"audit log line {line} was changed: its hash does not match its contents"
            )
        entries.append(entry)
        prev_hash = entry.hash
    torn_line = len(lines) + 1 if complete_end < len(data) else None
    return _Scan(entries=entries, valid_length=complete_end, torn_line=torn_line)


def _raise_if_torn(scan: _Scan, path: Path) -> None:
    if scan.torn_line is not None:
        raise TornAuditEntry(
            f"audit log {path} ends in an incomplete line {scan.torn_line}: an append was "
            f"interrupted; the {len(scan.entries)} entries before it verify. Reopen with "
            "AuditLog(path, repair_torn_tail=True) to cut it off.",
            line=scan.torn_line,
            valid_entries=len(scan.entries),
        )


def read_audit_log(
    path: str | os.PathLike[str], *, head_hash: str | None = None
) -> list[AuditEntry]:
    """Verify the log at ``path`` and return its entries.

    Args:
        head_hash: the last entry's hash as recorded elsewhere; when given, a log whose tail
            was cut off or rewritten is refused too.

    Raises:
        TornAuditEntry: the last line is incomplete (an interrupted append).
        AuditLogCorrupted: any other break of the chain, naming the line.
        FileNotFoundError: no file at ``path``.
    """
    path = Path(path)
    scan = _scan(path)
    _raise_if_torn(scan, path)
    if head_hash is not None:
        actual = scan.entries[-1].hash if scan.entries else GENESIS_HASH
        if actual != head_hash:
            raise AuditLogCorrupted(
                f"audit log {path} ends at entry {len(scan.entries)} whose hash does not match "
                "the recorded head: entries at the end were removed or rewritten"
            )
    return scan.entries


def verify_audit_log(path: str | os.PathLike[str], *, head_hash: str | None = None) -> int:
    """Verify the log at ``path`` and return its number of entries.

    Raises as :func:`read_audit_log`.
    """
    return len(read_audit_log(path, head_hash=head_hash))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AuditLog:
    """The writer of one audit log file.

    Opening an existing file verifies it and continues its chain. Each :meth:`append` writes one
    line and fsyncs it before returning, so an acknowledged entry survives a crash.

    Args:
        path: the JSON-lines file; created (mode 0600) if missing, its directory must exist.
        repair_torn_tail: if the file ends in an incomplete line, cut it off and append an
            ``audit.torn_tail_removed`` entry, instead of raising :class:`TornAuditEntry`.
        clock: returns the current time as an aware ``datetime``; for tests.

    Example:
        >>> with AuditLog(path) as log:  # doctest: +SKIP
        ...     log.append("round.committed", round=3, hospitals=["h1", "h2"], rule="fedavg")

    Raises:
        AuditLogCorrupted: the existing file does not verify.
        ConfigError: another ``AuditLog`` already writes to this file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        repair_torn_tail: bool = False,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        created = not self._path.exists()
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(
                    f"audit log {self._path} is already open for writing; use one AuditLog "
                    "per file and share it between threads"
                ) from None
            if created:
                fsync_directory(self._path.parent)
            scan = _scan(self._path)
            if scan.torn_line is not None and not repair_torn_tail:
                _raise_if_torn(scan, self._path)
        except BaseException:
            os.close(self._fd)
            raise
        self._count = len(scan.entries)
        self._head = scan.entries[-1].hash if scan.entries else GENESIS_HASH
        self._size = scan.valid_length
        self._broken = False
        if scan.torn_line is not None:
            removed = os.fstat(self._fd).st_size - scan.valid_length
            os.ftruncate(self._fd, scan.valid_length)
            os.fsync(self._fd)
            self.append("audit.torn_tail_removed", line=scan.torn_line, removed_bytes=removed)

    @property
    def path(self) -> Path:
        """The file this log writes."""
        return self._path

    @property
    def head_hash(self) -> str:
        """Hash of the last entry (:data:`GENESIS_HASH` while empty); anchor it elsewhere."""
        with self._lock:
            return self._head

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def append(self, event: str, /, **fields: object) -> AuditEntry:
        """Write one entry and fsync it; return it once it is durable.

        Args:
            event: a lower-case, optionally dotted identifier, e.g. ``"hospital.flagged"``.
            fields: identifiers only: str (at most :data:`MAX_STRING_LENGTH` characters), int,
                float, bool, None, or lists of those.

        Raises:
            ConfigError: a refused event name or field (nothing is written).
            AuditLogCorrupted: an earlier write failed in a way that could not be undone.
            OSError: the write failed; the file is restored to its previous entries.
        """
        checked = MappingProxyType(_check_fields(fields))
        _check_event(event)
        with self._lock:
            if self._fd < 0:
                raise ConfigError(f"audit log {self._path} is closed")
            if self._broken:
                raise AuditLogCorrupted(
                    f"audit log {self._path} may hold a partial line after a failed write; "
                    "reopen it to verify before appending"
                )
            now = self._clock()
            if now.tzinfo is None:
                raise ConfigError("the audit clock must return timezone-aware datetimes")
            entry = AuditEntry(
                seq=self._count + 1,
                timestamp=now.astimezone(UTC).isoformat(timespec="microseconds"),
                event=event,
                fields=checked,
                prev_hash=self._head,
                hash="",
            )
            entry = replace(entry, hash=_hash(_unhashed(entry)))
            self._write(_canonical(entry.record()) + b"\n")
            self._count += 1
            self._head = entry.hash
            return entry

    def _write(self, line: bytes) -> None:
        try:
            view = memoryview(line)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError:
            # Undo a partial line so later appends do not land behind a fragment.
            try:
                os.ftruncate(self._fd, self._size)
                os.fsync(self._fd)
            except OSError:
                self._broken = True
            raise
        self._size += len(line)

    def close(self) -> None:
        """Release the file; further appends raise."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)  # also releases the flock
                self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
