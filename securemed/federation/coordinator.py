"""The aggregator's round logic as a state machine that does no I/O.

A round's lifecycle: ``open_round`` selects hospitals → each selected hospital fetches
``model_for`` the round and ``submit``s its update → ``close_round`` (when every selected
hospital has submitted, or at the deadline) averages what arrived and advances the global
model. Hospitals that miss the deadline are data in the outcome (``missing``), not exceptions
that unwind the round, as in Flower's ``aggregate_fit(results, failures)``.

Under secure aggregation (``secure=SecureSettings(...)``) hospitals never submit an update in
the clear: the round carries a :class:`~securemed.federation.secure_round.SecureRound`, the
transport drives its five steps through the ``secure_*`` methods, and ``close_round`` applies
the mean the secure sums reveal. A robust ``rule`` (Krum, median, ...) compares individual
updates in the clear mode and bucket means under secure bucketing; a robust rule over a single
secure sum would compare one vector with itself, and is refused.

The aggregator sees only what a hospital may release (:class:`HospitalReport`): never its
loss or the norm of its raw update. Norm anomalies are scored on what it does see: individual
updates in a clear round, bucket means under secure bucketing; a single secure sum has nothing
to compare, and the norm bound each hospital enforces before masking is the safeguard there.
A selected hospital may decline a round (its budget or its policy says so): it is then
neither waited for nor counted missing.

The caller supplies the clock (``now``, monotonic seconds), so tests drive deadlines without
sleeping and the gRPC server (:mod:`securemed.transport.server`) only adapts this class to the
wire. Bad requests raise the domain errors of :mod:`securemed.errors` and leave the state as it
was, so one bad hospital never disturbs the others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from securemed.aggregation import (
    AggregationRule,
    FedAvg,
    UpdateLayout,
    fedavg,
    flatten_updates,
    unflatten,
)
from securemed.detection import NormAnomalyReport, detect_norm_anomalies
from securemed.errors import (
    AggregationPreconditionError,
    DuplicateSubmission,
    FederationFinished,
    InvalidUpdate,
    NotSelected,
    ProtocolViolation,
    RoundAborted,
    StaleRound,
    UnknownHospital,
)
from securemed.federation.secure_round import (
    BucketResult,
    SecureAssignment,
    SecureRound,
    SecureSettings,
    SecureStep,
)
from securemed.secagg.protocol import (
    EncryptedShare,
    KeyAdvert,
    ShareComplaint,
    SurvivorSignature,
    UnmaskShare,
)
from securemed.secagg.server import Culprit, Observer

log = logging.getLogger(__name__)


class Phase(enum.Enum):
    WAITING = "waiting"
    OPEN = "open"
    FINISHED = "finished"


@dataclass(frozen=True)
class HospitalReport:
    """What a hospital says about its update, besides the tensors: public values only.

    Attributes:
        num_samples: the records the hospital declared public (``0``: not declared; every
            hospital then weighs the same in FedAvg).
        epsilon: its cumulative epsilon, computed from public values (noise, sampling rate,
            steps); ``None`` without DP or when its size is not declared.
        privacy_unit: what ``epsilon`` protects.
        update_bytes: the size of what arrived, measured by the aggregator.
    """

    num_samples: int
    epsilon: float | None
    privacy_unit: str = "record"
    update_bytes: int = 0


@dataclass(frozen=True)
class RoundView:
    """The round as one hospital sees it.

    ``broken_secure`` says why the secure parameters the aggregator sent fail the protocol's
    own checks (t <= k/2, say): the round is neither secure nor clear, and a hospital sits it
    out rather than exit or fall back to sending its update in the clear.
    """

    round: int
    phase: Phase
    selected: bool
    seconds_left: float
    total_rounds: int
    secure: SecureAssignment | None = None
    broken_secure: str | None = None


@dataclass(frozen=True)
class RoundOutcome:
    """The result of a closed round; ``participants`` are the hospitals whose updates count.

    ``aborted`` says why a secure round applied nothing (too few hospitals left to unmask);
    ``anomalies`` scores the norms of what the aggregator sees: the participants' updates in a
    clear round, the bucket means under secure bucketing (keyed by :func:`bucket_label`), and
    nothing for a single secure sum (``None``). ``declined`` names the selected hospitals
    that sat the round out. ``culprits`` names the hospitals caught breaking the secure
    protocol (a bad share dealt or returned, a false complaint): the round's audit record.
    """

    round: int
    selected: tuple[str, ...]
    participants: tuple[str, ...]
    missing: tuple[str, ...]
    reports: Mapping[str, HospitalReport]
    aggregation_seconds: float
    aborted: str | None = None
    anomalies: NormAnomalyReport | None = None
    buckets: tuple[tuple[str, ...], ...] = ()
    declined: tuple[str, ...] = ()
    culprits: tuple[Culprit, ...] = ()

    @property
    def applied(self) -> bool:
        """Whether the global model changed (False when nobody made the deadline)."""
        return bool(self.participants)


@dataclass
class _OpenRound:
    number: int
    selected: tuple[str, ...]
    deadline: float
    updates: dict[str, dict[str, torch.Tensor]]
    reports: dict[str, HospitalReport]
    secure: SecureRound | None = None
    declined: set[str] = dataclasses.field(default_factory=set)


class FederationCoordinator:
    """Owns the global model and the state of the current round.

    Args:
        hospitals: names of the federation's members; nobody else may join.
        global_state: the initial global model (a state dict).
        total_rounds: rounds to run before the federation finishes.
        participation: fraction of joined hospitals selected each round (at least one).
        seed: makes each round's selection reproducible, also across a resume.
        completed_rounds: rounds already done (when resuming from a checkpoint).
        rule: how updates (or, with secure bucketing, bucket means) are combined; FedAvg by
            default.
        secure: run every round under secure aggregation with these settings.
        observer: sees every vector the secure-aggregation servers hold (tests).
        anomaly_threshold: z-score above which a hospital's update norm is flagged.
    """

    def __init__(
        self,
        *,
        hospitals: Sequence[str],
        global_state: Mapping[str, torch.Tensor],
        total_rounds: int,
        participation: float = 1.0,
        seed: int = 0,
        completed_rounds: int = 0,
        rule: AggregationRule | None = None,
        secure: SecureSettings | None = None,
        observer: Observer | None = None,
        anomaly_threshold: float = 3.0,
    ) -> None:
        if not hospitals:
            raise ValueError("a federation needs at least one hospital")
        if len(set(hospitals)) != len(hospitals):
            raise ValueError("hospital names must be unique")
        if not 0.0 < participation <= 1.0:
            raise ValueError(f"participation must be in (0, 1], got {participation}")
        if not 0 <= completed_rounds <= total_rounds:
            raise ValueError(f"completed_rounds must be in [0, {total_rounds}]")
        self._members = tuple(hospitals)
        self._joined: dict[str, int] = {}
        self._global = {name: tensor.detach().clone() for name, tensor in global_state.items()}
        self._total_rounds = total_rounds
        self._participation = participation
        self._seed = seed
        self._completed = completed_rounds
        self._open: _OpenRound | None = None
        self._phase = Phase.FINISHED if completed_rounds == total_rounds else Phase.WAITING
        self._rule: AggregationRule = rule if rule is not None else FedAvg()
        self._secure = secure
        self._observer = observer
        self._anomaly_threshold = anomaly_threshold
        self._layout: UpdateLayout = flatten_updates([self._global])[1]
        expected = max(1, round(participation * len(hospitals)))
        self._check_rule(expected)

    def _check_rule(self, selected: int) -> None:
        """Refuse a rule/secure-aggregation combination that would protect nothing."""
        rule = self._rule
        if self._secure is None:
            if rule.needs_individual_updates:
                rule.check(selected)
            return
        if rule.needs_individual_updates and self._secure.bucket_size is None:
            raise AggregationPreconditionError(
                f"the {rule.name} rule compares individual updates, which secure aggregation "
                "hides: it would compare the one secure sum with itself. Enable secure "
                "bucketing (secure_aggregation.bucket_size) so it compares bucket means, or "
                "use fedavg"
            )
        buckets = self._secure.bucket_count(selected)
        if rule.needs_individual_updates:
            rule.check(buckets)
        if buckets == 1 and selected < 2:
            raise AggregationPreconditionError(
                "secure aggregation needs at least 2 hospitals per round"
            )

    # -- read-only views -------------------------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def round(self) -> int:
        """The open round, or the last completed one between rounds."""
        return self._open.number if self._open else self._completed

    @property
    def total_rounds(self) -> int:
        return self._total_rounds

    @property
    def joined(self) -> tuple[str, ...]:
        return tuple(self._joined)

    @property
    def global_state(self) -> dict[str, torch.Tensor]:
        return {name: tensor.clone() for name, tensor in self._global.items()}

    def all_submitted(self) -> bool:
        """Whether every hospital selected for the open round has submitted or declined."""
        open_round = self._open
        return open_round is not None and len(open_round.updates) + len(open_round.declined) == len(
            open_round.selected
        )

    @property
    def secure_round(self) -> SecureRound | None:
        """The open round's secure sums, if the federation uses secure aggregation."""
        return self._open.secure if self._open else None

    def view(self, hospital: str, *, now: float) -> RoundView:
        """The round as ``hospital`` sees it. Never raises for a round the hospital has left:
        a hospital that declined, or whose secure sum was aborted, polls for the next round
        while this one is still closing."""
        self._check_member(hospital)
        open_round = self._open
        selected = open_round is not None and hospital in open_round.selected
        assignment = None
        if (
            open_round is not None
            and selected
            and open_round.secure is not None
            and hospital not in open_round.declined
        ):
            with contextlib.suppress(RoundAborted):
                assignment = open_round.secure.assignment(hospital)
        return RoundView(
            round=self.round,
            phase=self._phase,
            selected=selected,
            seconds_left=max(0.0, open_round.deadline - now) if open_round else 0.0,
            total_rounds=self._total_rounds,
            secure=assignment,
        )

    # -- transitions -----------------------------------------------------------------------

    def join(self, hospital: str, *, num_samples: int) -> None:
        """Admit a member; joining again (after a hospital restarts) is allowed."""
        self._check_member(hospital)
        if num_samples < 0:
            raise InvalidUpdate(
                f"hospital {hospital!r} declared {num_samples} samples; declare a count, or 0 "
                "to keep it private"
            )
        self._joined[hospital] = num_samples

    def open_round(self, *, now: float, deadline_s: float) -> tuple[int, tuple[str, ...]]:
        """Open the next round and select its hospitals among those that joined.

        Whether a selected hospital can afford the round is for it to say (it declines);
        the aggregator is not trusted with any hospital's budget.
        """
        if self._phase is Phase.FINISHED:
            raise FederationFinished(f"all {self._total_rounds} rounds have run")
        if self._phase is Phase.OPEN:
            raise StaleRound(f"round {self.round} is still open; close it first")
        if not self._joined:
            raise UnknownHospital("no hospital has joined yet; a round needs at least one")
        number = self._completed + 1
        candidates = sorted(self._joined)
        count = max(1, round(self._participation * len(candidates)))
        rng = np.random.default_rng([self._seed, number])
        chosen = rng.choice(len(candidates), size=count, replace=False)
        selected = tuple(sorted(candidates[i] for i in chosen))
        self._check_rule(len(selected))
        secure = (
            SecureRound(
                number, selected, self._secure, length=self._layout.size, observer=self._observer
            )
            if self._secure is not None
            else None
        )
        self._open = _OpenRound(number, selected, now + deadline_s, {}, {}, secure)
        self._phase = Phase.OPEN
        return number, selected

    def model_for(self, hospital: str, round_number: int) -> dict[str, torch.Tensor]:
        """The global model a selected hospital trains on in the open round."""
        open_round = self._require_open(hospital, round_number)
        if hospital not in open_round.selected:
            raise NotSelected(f"hospital {hospital!r} is not selected for round {round_number}")
        return self.global_state

    def submit(
        self,
        hospital: str,
        round_number: int,
        update: Mapping[str, torch.Tensor],
        report: HospitalReport,
        *,
        now: float,
    ) -> tuple[int, int]:
        """Accept one hospital's update; returns (updates received, hospitals selected)."""
        open_round = self._require_open(hospital, round_number)
        if open_round.secure is not None:
            raise ProtocolViolation(
                f"round {round_number} uses secure aggregation: an update is never sent in the "
                "clear; take the secure steps"
            )
        if now > open_round.deadline:
            raise StaleRound(f"round {round_number} passed its deadline; wait for the next round")
        if hospital not in open_round.selected:
            raise NotSelected(f"hospital {hospital!r} is not selected for round {round_number}")
        if hospital in open_round.updates or hospital in open_round.declined:
            raise DuplicateSubmission(
                f"hospital {hospital!r} already submitted or declined round {round_number}"
            )
        self._check_report(report)
        self._check_update(update)
        open_round.updates[hospital] = {name: update[name] for name in self._global}
        open_round.reports[hospital] = report
        return len(open_round.updates), len(open_round.selected)

    def close_round(self) -> RoundOutcome:
        """Combine what arrived and advance the global model.

        With no update at all (or a secure round whose every sum was aborted) the global model
        is left unchanged and the round still counts, so a federation whose hospitals all
        failed one round moves on rather than hanging.
        """
        if self._open is None:
            raise StaleRound("no round is open")
        open_round, self._open = self._open, None
        started = time.perf_counter()
        aborted: str | None = None
        buckets: tuple[tuple[str, ...], ...] = ()
        culprits: tuple[Culprit, ...] = ()
        if open_round.secure is None:
            participants = tuple(sorted(open_round.updates))
            norms: dict[str, float] | None = {
                name: float(torch.linalg.vector_norm(flatten_updates([update])[0]))
                for name, update in open_round.updates.items()
            }
            if participants:
                self._apply(self._combine_clear(open_round, participants))
        else:
            secure = open_round.secure
            while secure.step is not SecureStep.DONE:  # steps the transport did not close
                secure.close_step()
            results = secure.results()
            buckets = secure.buckets
            culprits = tuple(secure.culprits())
            for culprit in culprits:
                log.warning(
                    "a hospital broke the secure protocol",
                    extra={
                        "round": open_round.number,
                        "hospital": culprit.hospital,
                        "fault": culprit.fault,
                    },
                )
            participants = tuple(sorted(name for result in results for name in result.survivors))
            live = [result for result in results if result.mean is not None]
            norms = (
                {
                    bucket_label(result.survivors): float(np.linalg.norm(result.mean))
                    for result in live
                    if result.mean is not None
                }
                if len(secure.buckets) > 1
                else None
            )
            if participants:
                self._apply(self._combine_secure(results))
            else:
                aborted = "; ".join(result.aborted or "" for result in results)
        self._completed = open_round.number
        self._phase = Phase.FINISHED if self._completed >= self._total_rounds else Phase.WAITING
        return RoundOutcome(
            round=open_round.number,
            selected=open_round.selected,
            participants=participants,
            missing=tuple(
                name
                for name in open_round.selected
                if name not in participants and name not in open_round.declined
            ),
            reports={name: open_round.reports[name] for name in participants},
            aggregation_seconds=time.perf_counter() - started,
            aborted=aborted,
            anomalies=(
                detect_norm_anomalies(norms, threshold=self._anomaly_threshold)
                if norms is not None
                else None
            ),
            buckets=buckets,
            declined=tuple(sorted(open_round.declined)),
            culprits=culprits,
        )

    def _combine_clear(
        self, open_round: _OpenRound, participants: tuple[str, ...]
    ) -> dict[str, torch.Tensor]:
        updates = [open_round.updates[name] for name in participants]
        samples = fedavg_weights([open_round.reports[name] for name in participants])
        if not self._rule.needs_individual_updates:
            return fedavg(updates, samples)
        matrix, layout = flatten_updates(updates)
        combined = self._rule.aggregate(
            matrix, torch.tensor(samples, dtype=torch.float64), hospitals=participants
        )
        return unflatten(combined, layout)

    def _combine_secure(self, results: Sequence[BucketResult]) -> dict[str, torch.Tensor]:
        """One bucket: its mean. Several: the rule across bucket means, weighted by survivors."""
        live = [result for result in results if result.mean is not None]
        if len(live) == 1:
            assert live[0].mean is not None
            return unflatten(torch.from_numpy(live[0].mean), self._layout)
        matrix = torch.from_numpy(
            np.stack([result.mean for result in live if result.mean is not None])
        )
        weights = torch.tensor([len(result.survivors) for result in live], dtype=torch.float64)
        return unflatten(self._rule.aggregate(matrix, weights), self._layout)

    def _apply(self, mean_update: Mapping[str, torch.Tensor]) -> None:
        for name, delta in mean_update.items():
            self._global[name] = self._global[name] + delta.to(self._global[name].dtype)

    # -- secure aggregation steps (see securemed.secagg.protocol) ------------------------------

    def _secure_round_of(self, hospital: str, round_number: int) -> SecureRound:
        open_round = self._require_open(hospital, round_number)
        if hospital not in open_round.selected:
            raise NotSelected(f"hospital {hospital!r} is not selected for round {round_number}")
        if open_round.secure is None:
            raise ProtocolViolation(f"round {round_number} does not use secure aggregation")
        return open_round.secure

    def secure_advertise(
        self, hospital: str, round_number: int, advert: KeyAdvert, *, certificate: bytes
    ) -> None:
        self._secure_round_of(hospital, round_number).advertise(
            hospital, advert, certificate=certificate
        )

    def secure_share(
        self, hospital: str, round_number: int, shares: Sequence[EncryptedShare]
    ) -> None:
        self._secure_round_of(hospital, round_number).share(hospital, shares)

    def decline(self, hospital: str, round_number: int) -> None:
        """A selected hospital sits the open round out; the round stops waiting for it.

        Under secure aggregation only before it advertised its keys: after that its masks are
        part of the others' shares and it is a dropout like any other.
        """
        open_round = self._require_open(hospital, round_number)
        if hospital not in open_round.selected:
            raise NotSelected(f"hospital {hospital!r} is not selected for round {round_number}")
        if hospital in open_round.updates:
            raise DuplicateSubmission(
                f"hospital {hospital!r} already submitted an update to round {round_number}"
            )
        if open_round.secure is not None:
            open_round.secure.decline(hospital)
        open_round.declined.add(hospital)

    def secure_upload(
        self,
        hospital: str,
        round_number: int,
        masked: np.ndarray,
        report: HospitalReport,
        complaints: Sequence[ShareComplaint] = (),
    ) -> None:
        """Add a masked update to its bucket's sum and keep what the hospital reported (and
        its complaints about dealers' shares, judged on the spot)."""
        secure = self._secure_round_of(hospital, round_number)
        self._check_report(report)
        secure.upload(hospital, masked, complaints)
        assert self._open is not None
        self._open.reports[hospital] = report

    def secure_unmask_request(
        self, hospital: str, round_number: int
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self._secure_round_of(hospital, round_number).unmask_request_for(hospital)

    def secure_confirm(
        self, hospital: str, round_number: int, signature: SurvivorSignature
    ) -> None:
        self._secure_round_of(hospital, round_number).confirm(hospital, signature)

    def secure_signatures(self, hospital: str, round_number: int) -> list[SurvivorSignature]:
        return self._secure_round_of(hospital, round_number).signatures_for(hospital)

    def secure_unmask(
        self, hospital: str, round_number: int, shares: Sequence[UnmaskShare]
    ) -> None:
        self._secure_round_of(hospital, round_number).unmask(hospital, shares)

    def finish(self) -> None:
        """Stop the federation early; hospitals see FINISHED and exit."""
        self._open = None
        self._phase = Phase.FINISHED

    # -- checks ----------------------------------------------------------------------------

    def _check_member(self, hospital: str) -> None:
        if hospital not in self._members:
            raise UnknownHospital(f"hospital {hospital!r} is not a member of this federation")

    def _require_open(self, hospital: str, round_number: int) -> _OpenRound:
        self._check_member(hospital)
        if hospital not in self._joined:
            raise UnknownHospital(f"hospital {hospital!r} has not joined; call Join first")
        if self._phase is Phase.FINISHED:
            raise FederationFinished(f"all {self._total_rounds} rounds have run")
        if self._open is None or round_number != self._open.number:
            current = f"round {self._open.number} is open" if self._open else "no round is open"
            raise StaleRound(f"round {round_number} is not open ({current})")
        return self._open

    @staticmethod
    def _check_report(report: HospitalReport) -> None:
        if report.num_samples < 0:
            raise InvalidUpdate("num_samples must be a count, or 0 when not declared")
        if report.epsilon is not None and not (
            math.isfinite(report.epsilon) and report.epsilon >= 0
        ):
            raise InvalidUpdate("epsilon must be a finite, non-negative number")

    def _check_update(self, update: Mapping[str, torch.Tensor]) -> None:
        missing = sorted(set(self._global) - set(update))
        extra = sorted(set(update) - set(self._global))
        if missing or extra:
            raise InvalidUpdate(
                f"update tensors do not match the global model (missing: {missing[:3]}, "
                f"unexpected: {extra[:3]})"
            )
        for name, reference in self._global.items():
            tensor = update[name]
            if tensor.dtype != reference.dtype:
                raise InvalidUpdate(
                    f"tensor {name!r} has dtype {tensor.dtype}, the model expects {reference.dtype}"
                )
            if tensor.shape != reference.shape:
                raise InvalidUpdate(
                    f"tensor {name!r} has shape {list(tensor.shape)}, "
                    f"the model expects {list(reference.shape)}"
                )
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise InvalidUpdate(f"tensor {name!r} holds NaN or infinite values")


def bucket_label(members: Sequence[str]) -> str:
    """How anomaly reports name a secure bucket: its hospitals, joined by ``+``."""
    return "+".join(sorted(members))


def fedavg_weights(reports: Sequence[HospitalReport]) -> list[int]:
    """FedAvg's weights: the declared record counts, or equal weights when any hospital kept
    its count private (weighting by the others' counts alone would be arbitrary)."""
    counts = [report.num_samples for report in reports]
    return counts if all(count > 0 for count in counts) else [1] * len(counts)
