"""Aggregation rules: pure functions over updates, their preconditions checked.

State dicts become an ``(n, d)`` matrix with :func:`flatten_updates`; a rule built with
:func:`build_rule` turns the matrix into one vector; :func:`unflatten` makes it a state dict
again. :func:`fedavg` averages state dicts directly.
"""

from securemed.aggregation.base import AggregationRule
from securemed.aggregation.bulyan import Bulyan
from securemed.aggregation.centered_clipping import CenteredClipping
from securemed.aggregation.coordinatewise import CoordinateWiseMedian, TrimmedMean
from securemed.aggregation.fedavg import FedAvg, fedavg, weighted_mean
from securemed.aggregation.foolsgold import FoolsGold
from securemed.aggregation.krum import Krum, MultiKrum
from securemed.aggregation.registry import RULES, build_rule
from securemed.aggregation.vectors import UpdateLayout, flatten_updates, unflatten

__all__ = [
    "RULES",
    "AggregationRule",
    "Bulyan",
    "CenteredClipping",
    "CoordinateWiseMedian",
    "FedAvg",
    "FoolsGold",
    "Krum",
    "MultiKrum",
    "TrimmedMean",
    "UpdateLayout",
    "build_rule",
    "fedavg",
    "flatten_updates",
    "unflatten",
    "weighted_mean",
]
