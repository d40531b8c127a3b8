"""One federated round under secure aggregation, on the aggregator: one secure sum per bucket.

With ``bucket_size`` unset, the selected hospitals form one secure sum and the aggregator learns
only their mean update. With secure bucketing, the aggregator shuffles the selected hospitals
(with the operating system's random generator, so no hospital can choose its companions) into
buckets of at least ``bucket_size`` and runs a separate secure sum in each; a robust rule then
compares bucket means, which a Byzantine hospital can spoil only one of. A bucket that loses
too many hospitals is aborted on its own; the round aborts only when every bucket did.

All buckets move through the five secure steps together: the transport closes a step when
every live bucket's hospitals have answered or the step's time is up.
"""

from __future__ import annotations

import enum
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from securemed.errors import ConfigError, ProtocolViolation, RoundAborted
from securemed.secagg.params import SecAggParams
from securemed.secagg.protocol import (
    EncryptedShare,
    KeyAdvert,
    RoundInfo,
    ShareComplaint,
    SurvivorSignature,
    UnmaskShare,
)
from securemed.secagg.quantize import add_ring_noise, dequantize_sum, quantize
from securemed.secagg.server import Culprit, Observer, SecAggServer
from securemed.secagg.skellam import skellam_noise


class SecureStep(enum.Enum):
    ADVERTISE = "advertise"
    SHARE = "share"
    MASK = "mask"
    CONSISTENCY = "consistency"
    UNMASK = "unmask"
    DONE = "done"


@dataclass(frozen=True)
class SecureSettings:
    """How the federation runs secure aggregation (see :class:`SecAggParams` for k, t, ...).

    Attributes:
        norm_bound: the L2 bound the aggregator asks hospitals to enforce before masking; a
            hospital with a bound of its own uses its own (it cannot be checked on a masked
            vector, and the aggregator is not trusted to set it). Client-level DP noise is
            each hospital's own business (:mod:`securemed.privacy.client_dp`), not a setting
            the aggregator sends.
        bucket_size: secure bucketing; None runs one secure sum over all selected hospitals.
        phase_seconds: how long each secure step waits for the slowest hospital.
    """

    neighbours: int | None = None
    threshold: int | None = None
    min_survivors: int | None = None
    clip: float = 1.0
    bits: int = 16
    norm_bound: float | None = None
    bucket_size: int | None = None
    phase_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.bucket_size is not None and self.bucket_size < 2:
            raise ConfigError(
                f"secure buckets must hold at least 2 hospitals, got {self.bucket_size}: the "
                "secure sum of one update is that update, which protects nothing"
            )
        if not self.phase_seconds > 0:
            raise ConfigError("secure aggregation phase_seconds must be positive")

    def bucket_count(self, selected: int) -> int:
        """How many buckets ``selected`` hospitals make (each at least ``bucket_size``)."""
        if self.bucket_size is None:
            return 1
        return max(1, selected // self.bucket_size)

    def params_for(self, hospitals: int) -> SecAggParams:
        return SecAggParams.for_round(
            hospitals,
            neighbours=self.neighbours
            if self.neighbours is None
            else min(self.neighbours, hospitals - 1),
            threshold=self.threshold,
            min_survivors=self.min_survivors,
            clip=self.clip,
            bits=self.bits,
        )


@dataclass(frozen=True)
class SecureAssignment:
    """What one hospital needs to take part in its bucket's secure sum."""

    info: RoundInfo
    params: SecAggParams
    norm_bound: float | None
    phase_seconds: float


def prepare_update(
    vector: np.ndarray,
    params: SecAggParams,
    *,
    norm_bound: float | None,
    noise_variance: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A hospital's flattened update made ready for masking: its quantized, noised levels.

    In this order, on the hospital, because the aggregator can check none of it on a masked
    vector: scale the update down to ``norm_bound`` (if any), clip and stochastically quantize
    into the ring, then add this hospital's share of the client-level DP noise (Skellam, of
    ``noise_variance`` levels squared; none when 0) to the levels. ``rng`` drives the rounding
    and the noise: the caller seeds it from the OS.
    """
    norm = float(np.linalg.norm(vector))
    if norm_bound is not None and norm > norm_bound:
        vector = vector * (norm_bound / norm)
    levels = quantize(vector, clip=params.clip, bits=params.bits, rng=rng)
    if noise_variance > 0:
        levels = add_ring_noise(
            levels, skellam_noise(levels.shape, variance=noise_variance, rng=rng)
        )
    return levels


@dataclass(frozen=True)
class BucketResult:
    """A bucket's outcome: the mean of its survivors' updates, or why it was aborted."""

    hospitals: tuple[str, ...]
    survivors: tuple[str, ...]
    mean: np.ndarray | None
    aborted: str | None


class SecureRound:
    """The secure sums of one round.

    Args:
        number: the round number.
        selected: the hospitals selected for the round.
        settings: the federation's secure-aggregation settings.
        length: coordinates of a flattened update.
        observer: passed to every bucket's server (tests instrument what it holds).
    """

    def __init__(
        self,
        number: int,
        selected: Sequence[str],
        settings: SecureSettings,
        *,
        length: int,
        observer: Observer | None = None,
    ) -> None:
        order = list(selected)
        random.SystemRandom().shuffle(order)
        count = settings.bucket_count(len(order))
        buckets = [sorted(order[i::count]) for i in range(count)]
        self.number = number
        self.settings = settings
        self.step = SecureStep.ADVERTISE
        self._servers: list[SecAggServer] = []
        self._aborted: dict[int, str] = {}
        self._bucket_of: dict[str, int] = {}
        for index, members in enumerate(buckets):
            info = RoundInfo(
                round=number, round_id=secrets.token_bytes(16), participants=tuple(members)
            )
            self._servers.append(
                SecAggServer(
                    info, settings.params_for(len(members)), length=length, observer=observer
                )
            )
            self._bucket_of.update(dict.fromkeys(members, index))
        self._results: dict[int, np.ndarray] = {}

    @property
    def buckets(self) -> tuple[tuple[str, ...], ...]:
        return tuple(server.info.participants for server in self._servers)

    def assignment(self, hospital: str) -> SecureAssignment:
        server = self._server(hospital)
        return SecureAssignment(
            info=server.info,
            params=server.params,
            norm_bound=self.settings.norm_bound,
            phase_seconds=self.settings.phase_seconds,
        )

    def _server(self, hospital: str) -> SecAggServer:
        if hospital not in self._bucket_of:
            raise ProtocolViolation(f"{hospital!r} takes no part in secure round {self.number}")
        index = self._bucket_of[hospital]
        if index in self._aborted:
            raise RoundAborted(self._aborted[index])
        return self._servers[index]

    # -- the five steps, routed to the hospital's bucket --------------------------------------

    def advertise(self, hospital: str, advert: KeyAdvert, *, certificate: bytes) -> None:
        self._server(hospital).receive_advert(hospital, advert, caller_certificate=certificate)

    def decline(self, hospital: str) -> None:
        self._server(hospital).decline(hospital)

    def adverts_for(self, hospital: str) -> list[KeyAdvert]:
        return self._server(hospital).adverts_for(hospital)

    def share(self, hospital: str, shares: Sequence[EncryptedShare]) -> None:
        self._server(hospital).receive_shares(hospital, shares)

    def shares_for(self, hospital: str) -> list[EncryptedShare]:
        return self._server(hospital).shares_for(hospital)

    def upload(
        self, hospital: str, masked: np.ndarray, complaints: Sequence[ShareComplaint] = ()
    ) -> None:
        self._server(hospital).receive_masked(hospital, masked, complaints)

    def unmask_request_for(self, hospital: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        server = self._server(hospital)
        return server.survivors, server.dropped

    def confirm(self, hospital: str, signature: SurvivorSignature) -> None:
        self._server(hospital).receive_confirmation(hospital, signature)

    def signatures_for(self, hospital: str) -> list[SurvivorSignature]:
        return self._server(hospital).signatures_for(hospital)

    def unmask(self, hospital: str, shares: Sequence[UnmaskShare]) -> None:
        self._server(hospital).receive_unmask(hospital, shares)

    # -- closing steps ------------------------------------------------------------------------

    def pending(self) -> tuple[str, ...]:
        """Who the current step still waits for, over every live bucket."""
        return tuple(
            name
            for index, server in enumerate(self._servers)
            if index not in self._aborted
            for name in server.pending()
        )

    def live(self) -> bool:
        return len(self._aborted) < len(self._servers)

    def close_step(self) -> SecureStep:
        """End the current step in every live bucket; returns the step now open.

        A bucket that has too few hospitals left is aborted and skipped from then on.
        """
        following = {
            SecureStep.ADVERTISE: SecureStep.SHARE,
            SecureStep.SHARE: SecureStep.MASK,
            SecureStep.MASK: SecureStep.CONSISTENCY,
            SecureStep.CONSISTENCY: SecureStep.UNMASK,
            SecureStep.UNMASK: SecureStep.DONE,
        }
        if self.step is SecureStep.DONE:
            return self.step
        for index, server in enumerate(self._servers):
            if index in self._aborted:
                continue
            try:
                if self.step is SecureStep.ADVERTISE:
                    server.close_advertising()
                elif self.step is SecureStep.SHARE:
                    server.close_sharing()
                elif self.step is SecureStep.MASK:
                    server.close_masking()
                elif self.step is SecureStep.CONSISTENCY:
                    server.close_consistency()
                else:
                    result = server.finish()
                    self._results[index] = dequantize_sum(
                        result.levels,
                        count=len(result.survivors),
                        clip=server.params.clip,
                        bits=server.params.bits,
                    ) / len(result.survivors)
            except RoundAborted as error:
                self._aborted[index] = str(error)
        self.step = following[self.step]
        return self.step

    def culprits(self) -> list[Culprit]:
        """Every hospital caught breaking the protocol this round, over all buckets."""
        return [culprit for server in self._servers for culprit in server.culprits]

    def results(self) -> list[BucketResult]:
        """Every bucket's outcome, once the unmask step has closed."""
        if self.step is not SecureStep.DONE:
            raise ProtocolViolation(f"secure round {self.number} has not finished unmasking")
        return [
            BucketResult(
                hospitals=server.info.participants,
                survivors=server.survivors if index not in self._aborted else (),
                mean=self._results.get(index),
                aborted=self._aborted.get(index),
            )
            for index, server in enumerate(self._servers)
        ]
