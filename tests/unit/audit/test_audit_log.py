import hashlib
import json
import os
import stat
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from securemed.audit import (
    GENESIS_HASH,
    AuditLog,
    TornAuditEntry,
    read_audit_log,
    verify_audit_log,
)
from securemed.errors import AuditLogCorrupted, ConfigError


def fixed_clock():
    start = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    ticks = iter(range(10_000))
    return lambda: start + timedelta(seconds=next(ticks))


def write_rounds(path, count=4):
    with AuditLog(path, clock=fixed_clock()) as log:
        for round_number in range(1, count + 1):
            log.append("round.committed", round=round_number, hospitals=["h1", "h2"], rule="fedavg")
        return log.head_hash


def lines_of(path):
    return path.read_bytes().splitlines(keepends=True)


def test_entries_chain_and_hash_their_canonical_json(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, clock=fixed_clock()) as log:
        first = log.append("federation.started", hospitals=3)
        second = log.append("hospital.flagged", hospital="h2", round=1, z_score=4.5)
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert first.timestamp == "2025-01-02T03:04:05.000000+00:00"
    record = json.loads(lines_of(path)[1])
    unhashed = {key: value for key, value in record.items() if key != "hash"}
    canonical = json.dumps(unhashed, sort_keys=True, separators=(",", ":")).encode()
    assert record["hash"] == hashlib.sha256(canonical).hexdigest() == second.hash
    assert record["fields"] == {"hospital": "h2", "round": 1, "z_score": 4.5}
    assert verify_audit_log(path) == 2


def test_an_empty_log_verifies_with_zero_entries(tmp_path):
    path = tmp_path / "audit.jsonl"
    AuditLog(path).close()
    assert verify_audit_log(path) == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_changed_field_is_reported_at_its_line(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_rounds(path)
    lines = lines_of(path)
    lines[1] = lines[1].replace(b'"round":2', b'"round":7')
    path.write_bytes(b"".join(lines))
    with pytest.raises(AuditLogCorrupted, match=r"line 2 was changed"):
        verify_audit_log(path)


def test_a_changed_entry_with_a_recomputed_hash_breaks_the_next_line(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_rounds(path)
    lines = lines_of(path)
    record = json.loads(lines[1])
    record["fields"]["rule"] = "krum"
    del record["hash"]
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"))
    record["hash"] = hashlib.sha256(canonical.encode()).hexdigest()
    lines[1] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(AuditLogCorrupted, match=r"line 3 does not chain to line 2"):
        verify_audit_log(path)


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        (lambda lines: lines[:1] + lines[2:], 2),  # removed
        (lambda lines: lines[:2] + lines[:1] + lines[2:], 3),  # inserted (a replayed entry)
        (lambda lines: [lines[0], lines[2], lines[1], lines[3]], 2),  # reordered
    ],
    ids=["removed", "inserted", "reordered"],
)
def test_removed_inserted_and_reordered_entries_are_reported_at_their_line(tmp_path, edit, line):
    path = tmp_path / "audit.jsonl"
    write_rounds(path)
    path.write_bytes(b"".join(edit(lines_of(path))))
    with pytest.raises(AuditLogCorrupted, match=rf"line {line} holds entry"):
        verify_audit_log(path)


def test_a_reformatted_line_is_not_accepted(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_rounds(path, count=2)
    lines = lines_of(path)
    lines[0] = json.dumps(json.loads(lines[0]), indent=None).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(AuditLogCorrupted, match="line 1 is not in canonical form"):
        verify_audit_log(path)


def test_garbage_in_the_middle_is_corruption_not_a_torn_write(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_rounds(path, count=3)
    lines = lines_of(path)
    lines[1] = lines[1][:20] + b"\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(AuditLogCorrupted, match="line 2 is not a JSON entry") as raised:
        verify_audit_log(path)
    assert not isinstance(raised.value, TornAuditEntry)


def test_a_truncated_tail_needs_the_anchored_head_to_be_caught(tmp_path):
    path = tmp_path / "audit.jsonl"
    head = write_rounds(path)
    path.write_bytes(b"".join(lines_of(path)[:3]))
    assert verify_audit_log(path) == 3  # whole lines cut off at the end: the chain alone holds
    with pytest.raises(AuditLogCorrupted, match="recorded head"):
        verify_audit_log(path, head_hash=head)


def test_reopening_verifies_and_continues_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    head = write_rounds(path, count=2)
    with AuditLog(path) as log:
        assert len(log) == 2
        assert log.head_hash == head
        entry = log.append("round.committed", round=3)
    assert entry.seq == 3
    assert entry.prev_hash == head
    assert [e.seq for e in read_audit_log(path)] == [1, 2, 3]


def test_reopening_a_tampered_log_is_refused(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_rounds(path)
    path.write_bytes(b"".join(lines_of(path)[1:]))
    with pytest.raises(AuditLogCorrupted, match="line 1"):
        AuditLog(path)


def test_a_torn_last_line_is_reported_distinctly(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_rounds(path, count=3)
    with path.open("ab") as file:
        file.write(b'{"event":"round.comm')
    with pytest.raises(TornAuditEntry, match="incomplete line 4") as raised:
        verify_audit_log(path)
    assert isinstance(raised.value, AuditLogCorrupted)
    assert (raised.value.line, raised.value.valid_entries) == (4, 3)
    with pytest.raises(TornAuditEntry):
        AuditLog(path)


def test_a_torn_last_line_can_be_cut_off_and_the_repair_is_logged(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_rounds(path, count=3)
    with path.open("ab") as file:
        file.write(b'{"event":"round.comm')
    with AuditLog(path, repair_torn_tail=True) as log:
        log.append("round.committed", round=4)
    entries = read_audit_log(path)
    assert [e.event for e in entries[3:]] == ["audit.torn_tail_removed", "round.committed"]
    assert dict(entries[3].fields) == {"line": 4, "removed_bytes": 20}


@pytest.mark.parametrize(
    "fields",
    [
        {"record": {"name": "x"}},
        {"blob": b"bytes"},
        {"nested": [["a"]]},
        {"note": "x" * 129},
        {"note": "line one\nline two"},
        {"score": float("nan")},
        {"count": np.int64(3)},
        {"huge": 2**64},
        {"many": list(range(257))},
    ],
    ids=["dict", "bytes", "nested", "long", "control", "nan", "numpy", "huge", "many"],
)
def test_non_scalar_or_oversized_fields_are_refused_and_nothing_is_written(tmp_path, fields):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        with pytest.raises(ConfigError, match="audit"):
            log.append("hospital.flagged", **fields)
        assert len(log) == 0
    assert path.read_bytes() == b""


@pytest.mark.parametrize("event", ["Round Committed", "", "round.", "9round", "x" * 65])
def test_event_names_must_be_identifiers(tmp_path, event):
    with AuditLog(tmp_path / "audit.jsonl") as log, pytest.raises(ConfigError, match="event"):
        log.append(event)


def test_the_limits_themselves_are_accepted(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        log.append("x", digest="f" * 128, hospitals=["h"] * 256, ok=True, none=None, f=0.5)
    assert verify_audit_log(path) == 1


def test_appends_from_many_threads_form_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)

    def worker(thread):
        for i in range(25):
            log.append("hospital.submitted", thread=thread, i=i)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert verify_audit_log(path) == 200


def test_a_second_writer_on_the_same_file_is_refused(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path), pytest.raises(ConfigError, match="already open"):
        AuditLog(path)


def test_a_failed_write_leaves_no_fragment_behind(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append("round.committed", round=1)
    real_write = os.write

    def half_then_fail(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_fail)
    with pytest.raises(OSError, match="No space"):
        log.append("round.committed", round=2)
    monkeypatch.undo()
    log.append("round.committed", round=2)
    log.close()
    assert [e.fields["round"] for e in read_audit_log(path)] == [1, 2]


def test_a_naive_clock_and_a_closed_log_are_refused(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", clock=datetime.now)
    with pytest.raises(ConfigError, match="timezone-aware"):
        log.append("x")
    log.close()
    with pytest.raises(ConfigError, match="closed"):
        log.append("x")


def test_every_append_is_fsynced_before_it_returns(tmp_path, monkeypatch):
    log = AuditLog(tmp_path / "audit.jsonl")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    log.append("round.committed", round=1)
    log.append("round.committed", round=2)
    monkeypatch.undo()
    log.close()
    assert len(synced) == 2
