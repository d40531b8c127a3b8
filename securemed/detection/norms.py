"""Flag hospitals whose update norm is far from the others', by a robust z-score.

``z = (norm - median) / (1.4826 * MAD)``: median and median absolute deviation, scaled so the
spread matches a standard deviation for normal data. Unlike mean and standard deviation, one
huge norm cannot drag the centre or inflate the spread enough to hide itself; up to half the
hospitals can be outliers before the statistics break down.

The detector flags; it does not exclude. What happens to a flagged hospital (down-weighting,
dropping, an audit entry) is the aggregator's decision.

Limitation under secure aggregation: the aggregator only sees the masked sum, never a single
hospital's update, so it cannot measure norms itself. Each hospital then reports the L2 norm of
its own update before masking, and a malicious hospital can simply report a benign-looking norm.
The detector catches honest-but-faulty hospitals and naive attackers only, unless the norm is
bound to the masked update (for example by a zero-knowledge range proof, or by clipping inside
the protocol), which this module does not do.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from securemed.errors import ConfigError, StaleRound

#: Fewer norms than this carry no notion of "the others"; nothing is flagged.
MIN_HOSPITALS = 3

#: Makes the MAD a consistent estimator of the standard deviation for normal data.
MAD_TO_STD = 1.4826
#: Fallback when the MAD is 0 (more than half the norms equal): the mean absolute deviation,
#: scaled to a standard deviation for normal data (sqrt(pi / 2)).
MEAN_AD_TO_STD = math.sqrt(math.pi / 2)


@dataclass(frozen=True)
class NormAnomalyReport:
    """What the detector concluded about one round.

    Attributes:
        z_scores: robust z-score per hospital (``inf`` for an invalid norm); empty when the
            round was skipped.
        flagged: hospitals whose z-score exceeds the threshold, or whose norm is invalid,
            sorted by name.
        invalid: hospitals that reported a NaN, infinite or negative norm; always flagged and
            left out of the statistics.
        median: centre of the reference norms (``None`` when skipped).
        scale: robust spread used as the z-score's unit (``None`` when skipped).
        threshold: the z-score above which a hospital is flagged.
        skipped_reason: why no z-scores were computed, or ``None`` when they were.
    """

    z_scores: Mapping[str, float]
    flagged: tuple[str, ...]
    invalid: tuple[str, ...]
    median: float | None
    scale: float | None
    threshold: float
    skipped_reason: str | None = None


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ConfigError(f"anomaly threshold must be a number, got {threshold!r}")
    if not math.isfinite(threshold) or threshold <= 0:
        raise ConfigError(f"anomaly threshold must be positive and finite, got {threshold}")
    return float(threshold)


def _check_min_relative_scale(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"min_relative_scale must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"min_relative_scale must be non-negative and finite, got {value}")
    return float(value)


def _split_valid(norms: Mapping[str, float]) -> tuple[dict[str, float], tuple[str, ...]]:
    valid: dict[str, float] = {}
    invalid: list[str] = []
    for hospital, norm in norms.items():
        value = float(norm)
        if math.isfinite(value) and value >= 0:
            valid[hospital] = value
        else:
            invalid.append(hospital)
    return valid, tuple(sorted(invalid))


def _robust_centre_and_scale(
    values: Iterable[float], min_relative_scale: float
) -> tuple[float, float]:
    data = list(values)
    median = statistics.median(data)
    deviations = [abs(v - median) for v in data]
    scale = MAD_TO_STD * statistics.median(deviations)
    if scale == 0:
        # More than half the norms coincide (e.g. all clipped to the same bound): the MAD says
        # nothing about the rest, the mean absolute deviation still does.
        scale = MEAN_AD_TO_STD * statistics.fmean(deviations)
    # Float rounding alone must not make a hospital an outlier when (nearly) all norms agree.
    floor = max(min_relative_scale * abs(median), 1e-12)
    return median, max(scale, floor)


def _report(
    norms: Mapping[str, float],
    reference: list[float],
    *,
    threshold: float,
    two_sided: bool,
    min_relative_scale: float,
) -> NormAnomalyReport:
    valid, invalid = _split_valid(norms)
    if len(reference) < MIN_HOSPITALS:
        return NormAnomalyReport(
            z_scores=MappingProxyType({}),
            flagged=invalid,
            invalid=invalid,
            median=None,
            scale=None,
            threshold=threshold,
            skipped_reason=(
                f"only {len(reference)} valid norm(s); robust z-scores need at least "
                f"{MIN_HOSPITALS}, so no hospital was scored"
            ),
        )
    median, scale = _robust_centre_and_scale(reference, min_relative_scale)
    z_scores = {hospital: (norm - median) / scale for hospital, norm in valid.items()}
    z_scores.update({hospital: math.inf for hospital in invalid})
    flagged = sorted(
        hospital
        for hospital, z in z_scores.items()
        if hospital in invalid or (abs(z) if two_sided else z) > threshold
    )
    return NormAnomalyReport(
        z_scores=MappingProxyType(z_scores),
        flagged=tuple(flagged),
        invalid=invalid,
        median=median,
        scale=scale,
        threshold=threshold,
    )


def detect_norm_anomalies(
    norms: Mapping[str, float],
    *,
    threshold: float = 3.0,
    two_sided: bool = False,
    min_relative_scale: float = 1e-6,
) -> NormAnomalyReport:
    """Score one round's update norms against each other.

    Args:
        norms: hospital -> L2 norm of its update this round.
        threshold: flag a hospital whose z-score exceeds this.
        two_sided: also flag norms far *below* the others. Off by default: scaling and noise
            attacks raise the norm, while small norms are common for hospitals with little data
            and pull the average little.
        min_relative_scale: lower bound on the spread, relative to the median, so that norms
            equal up to float rounding do not produce huge z-scores.

    Returns:
        The report; with fewer than :data:`MIN_HOSPITALS` valid norms it scores nobody and says
        so in ``skipped_reason`` (invalid norms are still flagged).

    Example:
        >>> detect_norm_anomalies({"a": 1.0, "b": 1.1, "c": 0.9, "d": 9.0}).flagged
        ('d',)
    """
    threshold = _check_threshold(threshold)
    min_relative_scale = _check_min_relative_scale(min_relative_scale)
    valid, _ = _split_valid(norms)
    return _report(
        norms,
        list(valid.values()),
        threshold=threshold,
        two_sided=two_sided,
        min_relative_scale=min_relative_scale,
    )


@dataclass(frozen=True)
class RoundNormStats:
    """The statistics one round contributed to the history."""

    round: int
    median: float | None
    scale: float | None
    count: int
    flagged: tuple[str, ...]


class NormHistoryDetector:
    """Score each round's norms against the recent rounds' unflagged norms and its own.

    Pooling the last ``window`` rounds gives the statistics more samples (useful in small
    federations, and when only a few hospitals take part in a round) and means a group of
    attackers must shift norms over several rounds, not one, to move the baseline. Norms that
    were flagged never enter the history, so an attacker cannot poison it. The window is short
    because honest norms shrink as training converges.

    Args:
        threshold, two_sided, min_relative_scale: as in :func:`detect_norm_anomalies`.
        window: number of past rounds whose norms join the reference.
    """

    def __init__(
        self,
        *,
        threshold: float = 3.0,
        window: int = 5,
        two_sided: bool = False,
        min_relative_scale: float = 1e-6,
    ) -> None:
        self._threshold = _check_threshold(threshold)
        if isinstance(window, bool) or not isinstance(window, int) or window < 0:
            raise ConfigError(f"history window must be a non-negative integer, got {window!r}")
        self._two_sided = two_sided
        self._min_relative_scale = _check_min_relative_scale(min_relative_scale)
        self._past_norms: deque[list[float]] = deque(maxlen=window)
        self._stats: list[RoundNormStats] = []

    @property
    def history(self) -> tuple[RoundNormStats, ...]:
        """Per-round statistics, oldest first."""
        return tuple(self._stats)

    def observe(self, norms: Mapping[str, float], *, round: int) -> NormAnomalyReport:
        """Score ``round``'s norms, then add its unflagged norms to the history.

        Raises:
            StaleRound: ``round`` is not later than the last round observed.
        """
        if self._stats and round <= self._stats[-1].round:
            raise StaleRound(
                f"norms for round {round} arrived after round {self._stats[-1].round}; "
                "observe each round once, in order"
            )
        valid, _ = _split_valid(norms)
        reference = [norm for past in self._past_norms for norm in past]
        reference.extend(valid.values())
        report = _report(
            norms,
            reference,
            threshold=self._threshold,
            two_sided=self._two_sided,
            min_relative_scale=self._min_relative_scale,
        )
        # Norms of a round too small to score are kept: otherwise a federation with fewer than
        # three hospitals per round would never build the history it needs to be scored.
        self._past_norms.append(
            [norm for hospital, norm in valid.items() if hospital not in report.flagged]
        )
        self._stats.append(
            RoundNormStats(
                round=round,
                median=report.median,
                scale=report.scale,
                count=len(valid),
                flagged=report.flagged,
            )
        )
        return report
