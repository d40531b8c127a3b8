"""Aggregation rules by name, for configs: ``build_rule("krum", f=2)``.

The one place that maps the names a federation config may use to rule classes, so that an
unknown name or a misspelt parameter fails when the federation is configured, with the valid
choices in the message, not mid-round.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from securemed.aggregation.base import AggregationRule
from securemed.aggregation.bulyan import Bulyan
from securemed.aggregation.centered_clipping import CenteredClipping
from securemed.aggregation.coordinatewise import CoordinateWiseMedian, TrimmedMean
from securemed.aggregation.fedavg import FedAvg
from securemed.aggregation.foolsgold import FoolsGold
from securemed.aggregation.krum import Krum, MultiKrum
from securemed.errors import ConfigError

RULES: dict[str, type[AggregationRule]] = {
    rule.name: rule
    for rule in (
        FedAvg,
        CoordinateWiseMedian,
        TrimmedMean,
        Krum,
        MultiKrum,
        Bulyan,
        FoolsGold,
        CenteredClipping,
    )
}


def build_rule(name: str, *, f: int, **params: Any) -> AggregationRule:
    """Build the rule registered as ``name`` tolerating ``f`` Byzantine inputs.

    Args:
        name: one of :data:`RULES`.
        f: Byzantine inputs to tolerate (0 for ``"fedavg"``).
        **params: the rule's own parameters, e.g. ``m`` for Multi-Krum, ``beta`` for the
            trimmed mean, ``tau`` and ``iterations`` for centered clipping, ``kappa`` for
            FoolsGold.

    Raises:
        ConfigError: an unknown name, an unknown or missing parameter, or an invalid value.
    """
    rule = RULES.get(name)
    if rule is None:
        raise ConfigError(
            f"unknown aggregation rule {name!r}; valid rules are: {', '.join(sorted(RULES))}"
        )
    signature = inspect.signature(rule)
    accepted = [p for p in signature.parameters if p != "f"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"aggregation rule {name!r} takes no parameter {', '.join(unknown)}; "
            f"it accepts: {', '.join(accepted) or 'none besides f'}"
        )
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.name != "f" and p.default is inspect.Parameter.empty and p.name not in params
    ]
    if missing:
        raise ConfigError(f"aggregation rule {name!r} needs {', '.join(missing)}")
    factory: Callable[..., AggregationRule] = rule
    return factory(f=f, **params)
