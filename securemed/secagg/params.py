"""The parameters of a secure-aggregation round, validated before any key is made."""

from __future__ import annotations

import math
from dataclasses import dataclass

from securemed.errors import ConfigError
from securemed.secagg.graph import default_neighbours

RING_BITS = 32


@dataclass(frozen=True)
class SecAggParams:
    """What every party of a round must agree on.

    Attributes:
        hospitals: how many hospitals are selected for the round (n).
        neighbours: k, how many neighbours each hospital masks with and shares its secrets
            among (n - 1 is the complete graph of Bonawitz et al.).
        threshold: t, shares needed to recover a secret. t > k/2, so the aggregator can never
            collect both a hospital's self-mask seed and its mask key from honest neighbours
            (each neighbour reveals one or the other, never both).
        min_survivors: hospitals that must reach the unmasking step; fewer and the round
            aborts. Also the count the client-level DP noise is split over.
        clip: each coordinate of an update is clipped to [-clip, clip] before quantizing.
        bits: quantization levels per coordinate (2^bits); the sum of n of them must fit in
            the 32-bit ring: bits + ceil(log2 n) <= 32.
    """

    hospitals: int
    neighbours: int
    threshold: int
    min_survivors: int
    clip: float
    bits: int

    @classmethod
    def for_round(
        cls,
        hospitals: int,
        *,
        neighbours: int | None = None,
        threshold: int | None = None,
        min_survivors: int | None = None,
        clip: float = 1.0,
        bits: int = 16,
    ) -> SecAggParams:
        """Fill the defaults for ``hospitals`` (k from SecAgg+, t = floor(k/2) + 1) and check."""
        k = default_neighbours(hospitals) if neighbours is None else neighbours
        t = k // 2 + 1 if threshold is None else threshold
        params = cls(
            hospitals=hospitals,
            neighbours=k,
            threshold=t,
            min_survivors=max(t, 2) if min_survivors is None else min_survivors,
            clip=clip,
            bits=bits,
        )
        params.check()
        return params

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the first parameter that breaks the protocol."""
        n, k, t = self.hospitals, self.neighbours, self.threshold
        if n < 2:
            raise ConfigError(
                f"secure aggregation needs at least 2 hospitals, got {n}: with one, the sum is "
                "that hospital's update"
            )
        if not 1 <= k <= n - 1:
            raise ConfigError(
                f"secagg neighbours k must be in [1, {n - 1}] for {n} hospitals, got {k}"
            )
        if k < n - 1 and k % 2:
            raise ConfigError(f"secagg neighbours k must be even for a sparse graph, got {k}")
        if not k / 2 < t <= k:
            raise ConfigError(
                f"secagg threshold t must satisfy k/2 < t <= k (k = {k}), got {t}: at or below "
                "k/2 the aggregator could recover both masks of a hospital"
            )
        if not max(2, t) <= self.min_survivors <= n:
            raise ConfigError(
                f"secagg min_survivors must be in [{max(2, t)}, {n}], got {self.min_survivors}: "
                "a sum of fewer than two updates would reveal an update"
            )
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ConfigError(f"secagg clip must be a positive number, got {self.clip}")
        if not 1 <= self.bits <= RING_BITS - 1:
            raise ConfigError(f"secagg bits must be in [1, {RING_BITS - 1}], got {self.bits}")
        headroom = math.ceil(math.log2(n))
        if self.bits + headroom > RING_BITS:
            raise ConfigError(
                f"secagg bits {self.bits} + log2({n} hospitals) = {self.bits + headroom} exceed "
                f"the {RING_BITS}-bit ring: the sum would wrap; use at most "
                f"{RING_BITS - headroom} bits"
            )
