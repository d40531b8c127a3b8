"""Client-level DP under secure aggregation: a hospital's own noise, bound and accounting.

Each hospital protects its whole data set in the released sum: it bounds its update's L2 norm,
quantizes it, and adds integer Skellam noise to the levels (after quantization, so no clip or
rounding alters the noise the analysis assumes). With every one of at least ``min_survivors``
hospitals adding ``1 / min_survivors`` of the variance, any sum the aggregator can unmask
carries Skellam noise of at least the full variance (Skellams add up exactly,
:mod:`securemed.secagg.skellam`). A hospital refuses to unmask a sum of fewer survivors.

Every number comes from the hospital's own config (:class:`ClientDPPolicy`): the aggregator's
round status says how many levels a coordinate has (the ring), never how much noise to add,
how large an update may be, or how few survivors are enough.

Sensitivity (zero-out adjacency: one hospital's update replaced by zeros). A coordinate's
level is ``round((x + clip) * scale)``, stochastically; both it and the level of a zero update
lie within 1 of their real values, so the difference of the two integer vectors lies within 2
of ``scale * x`` per coordinate: L2 at most ``scale * norm_bound + 2 sqrt(d)``, L1 at most
``sqrt(d)`` times that (or its square, for integers). The bound holds for every rounding, so
by the quasi-convexity of Renyi divergence it holds for the mixture over roundings.
Noise multiplier ``z`` means a total Skellam variance of ``(z * L2)^2``, the Gaussian
mechanism's at the same multiplier; Skellam's RDP exceeds the Gaussian's only by a term that
vanishes as the variance grows.

What it does not do: mask, send or decide participation in DP-SGD (see
:mod:`securemed.privacy.hospital_privacy`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from opacus.accountants.analysis import rdp as rdp_analysis

from securemed.config import SecureAggregationConfig
from securemed.errors import ConfigError
from securemed.secagg.params import RING_BITS, SecAggParams
from securemed.secagg.quantize import level_scale
from securemed.secagg.skellam import DEFAULT_ORDERS, integer_sensitivity, skellam_rdp

#: how many standard deviations of the summed noise must fit in the ring without wrapping
#: twice (a wrap past half the ring would decode as the wrong sum)
_RING_SIGMAS = 8.0


@dataclass(frozen=True)
class ClientDPPolicy:
    """A hospital's own client-level DP settings.

    Attributes:
        noise_multiplier: z; the released sum's noise is Skellam of variance ``(z * L2)^2``.
        norm_bound: the L2 bound the hospital scales its update down to before quantizing.
        min_survivors: the fewest hospitals whose noise shares a released sum may hold; each
            hospital adds ``1 / min_survivors`` of the variance and refuses smaller sums.
        delta: the delta its client-level epsilon is stated at.
        budget_epsilon: its lifetime client-level budget, or ``None`` to record without cap.
    """

    noise_multiplier: float
    norm_bound: float
    min_survivors: int
    delta: float
    budget_epsilon: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
            raise ConfigError("client-level DP needs a positive noise multiplier")
        if not (math.isfinite(self.norm_bound) and self.norm_bound > 0):
            raise ConfigError("client-level DP needs a positive norm bound")
        if self.min_survivors < 2:
            raise ConfigError(
                "client-level DP splits its noise over at least 2 survivors: a sum of one "
                "update is that update"
            )

    def round_parameters(self, params: SecAggParams, dimension: int) -> dict[str, float]:
        """The mechanism of one round on a ring of ``params``: sensitivities and variance."""
        scale = level_scale(clip=params.clip, bits=params.bits)
        # zero-out adjacency: each of the two roundings moves a coordinate by < 1
        l1, l2 = integer_sensitivity(
            norm_bound=self.norm_bound + math.sqrt(dimension) / scale,
            scale=scale,
            dimension=dimension,
        )
        return {"l1": l1, "l2": l2, "variance": (self.noise_multiplier * l2) ** 2}

    def share_variance(self, parameters: Mapping[str, float]) -> float:
        """This hospital's part of the round's variance."""
        return parameters["variance"] / self.min_survivors

    def check_ring(self, params: SecAggParams, parameters: Mapping[str, float]) -> None:
        """Refuse a ring too small for the noise: the sum would wrap and decode wrongly.

        Raises:
            ConfigError: the summed levels plus ``8`` standard deviations of noise pass half
                the ring.
        """
        half_range = params.hospitals * (2**params.bits - 1) / 2
        # every participant may add its share: up to n / m times the accounted variance
        summed = parameters["variance"] * max(1.0, params.hospitals / self.min_survivors)
        if half_range + _RING_SIGMAS * math.sqrt(summed) >= 2 ** (RING_BITS - 1):
            raise ConfigError(
                f"client-level noise of standard deviation {math.sqrt(summed):.3g}"
                f" levels does not fit the {RING_BITS}-bit ring at {params.bits} bits a "
                "coordinate; use fewer secure_aggregation.bits"
            )


def client_dp_policy(secure: SecureAggregationConfig, *, delta: float) -> ClientDPPolicy | None:
    """The hospital's own client-level DP settings from its config; ``None`` when it adds no
    client-level noise. Without ``min_survivors`` the noise is split over 2, the fewest a
    released sum can hold: the most noise per hospital, whatever the aggregator claims."""
    if secure.client_dp_noise_multiplier is None:
        return None
    assert secure.norm_bound is not None  # JobConfig refuses client-level DP without a bound
    return ClientDPPolicy(
        noise_multiplier=secure.client_dp_noise_multiplier,
        norm_bound=secure.norm_bound,
        min_survivors=secure.min_survivors or 2,
        delta=delta,
        budget_epsilon=secure.client_dp_budget_epsilon,
    )


def client_dp_epsilon(rounds: Iterable[Mapping[str, float]], *, delta: float) -> float:
    """Epsilon at ``delta`` of the composed rounds (each a :meth:`round_parameters` mapping).

    Renyi DP composes by adding the curves; the conversion is Opacus', as for DP-SGD.
    """
    curve = np.zeros(len(DEFAULT_ORDERS))
    count = 0
    for parameters in rounds:
        curve = curve + skellam_rdp(
            DEFAULT_ORDERS,
            l1=parameters["l1"],
            l2=parameters["l2"],
            variance=parameters["variance"],
        )
        count += 1
    if count == 0:
        return 0.0
    epsilon, _ = rdp_analysis.get_privacy_spent(orders=list(DEFAULT_ORDERS), rdp=curve, delta=delta)
    return float(epsilon)
