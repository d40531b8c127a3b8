"""The federation's config sections as the core objects the aggregator runs with."""

from __future__ import annotations

from securemed.aggregation import AggregationRule, build_rule
from securemed.config import RobustConfig, SecureAggregationConfig
from securemed.federation.secure_round import SecureSettings


def secure_settings(config: SecureAggregationConfig) -> SecureSettings | None:
    """The secure-aggregation settings, or None when it is off."""
    if not config.enabled:
        return None
    return SecureSettings(
        neighbours=config.neighbours,
        threshold=config.threshold,
        min_survivors=config.min_survivors,
        clip=config.clip,
        bits=config.bits,
        norm_bound=config.norm_bound,
        bucket_size=config.bucket_size,
        phase_seconds=config.phase_timeout_s,
    )


def aggregation_rule(config: RobustConfig) -> AggregationRule:
    return build_rule(config.rule, f=config.byzantine, **config.params)
