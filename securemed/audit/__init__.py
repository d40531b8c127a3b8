"""Audits of what the platform did and of what its models give away.

- :mod:`securemed.audit.log`: a tamper-evident record of what the federation did (who was
  flagged, which rule ran, when), re-exported here.
- Membership inference: the attacks (:mod:`~securemed.audit.attacks`,
  :mod:`~securemed.audit.lira`, :mod:`~securemed.audit.rmia`), the shadow design
  (:mod:`~securemed.audit.membership`), metrics and the canary epsilon bound
  (:mod:`~securemed.audit.leakage`), and the studies of the notes LM, the classifier and the
  report generator (``*_study``, :mod:`~securemed.audit.study_analysis`,
  :mod:`~securemed.audit.study_report`), which ``jobs/audit.py`` runs on Ray.
"""

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
