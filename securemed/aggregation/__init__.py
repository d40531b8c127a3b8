"""Aggregation rules: pure functions over updates, their preconditions checked."""

from securemed.aggregation.fedavg import fedavg

__all__ = ["fedavg"]
