"""A tamper-evident record of what the federation did: who was flagged, which rule ran, when."""

from securemed.audit.log import (
    GENESIS_HASH,
    MAX_LIST_LENGTH,
    MAX_STRING_LENGTH,
    AuditEntry,
    AuditLog,
    TornAuditEntry,
    read_audit_log,
    verify_audit_log,
)

__all__ = [
    "GENESIS_HASH",
    "MAX_LIST_LENGTH",
    "MAX_STRING_LENGTH",
    "AuditEntry",
    "AuditLog",
    "TornAuditEntry",
    "read_audit_log",
    "verify_audit_log",
]
