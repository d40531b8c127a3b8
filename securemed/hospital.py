"""A hospital's side of the federation: wait for a round, train locally, submit the update.

The same loop runs inside a Ray actor (``actors/hospital.py``) and on a real hospital's own
machine (``python -m securemed.hospital``); it dials out to the aggregator and never exposes
an image, only the difference between its trained weights and the round's global weights.
A round that closes before the hospital is done (it missed the deadline) is skipped, not
fatal: the hospital waits for the next one; so is a secure round that was aborted.

The hospital trusts only its own machine, its own config and the federation CA. So the loop,
not the aggregator or the job, decides for it (:class:`HospitalPolicy`,
:class:`~securemed.privacy.hospital_privacy.HospitalPrivacy`):

* a round weaker than its own policy (in the clear when it requires secure aggregation, with
  fewer survivors than it demands) is declined, with a log line and no upload;
* a round its privacy budget cannot afford is declined; one it can afford only with more noise
  is trained with more noise;
* the round's privacy is written to its own ledger before any byte of the update leaves;
* what leaves besides the (masked) update is public: the record count if declared public, the
  epsilon (computed from noise, sampling rate and steps) and the privacy unit. Never the loss,
  the norm of the raw update or how long training took.

Under secure aggregation the update is bounded in norm (the hospital's own bound), quantized,
noised for client-level DP with the hospital's own settings, and masked
(:func:`secure_submit`); the aggregator learns only its bucket's sum.
"""

from __future__ import annotations

import argparse
import logging
import sys
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from securemed.aggregation import flatten_updates
from securemed.config import DataConfig, JobConfig, load_config
from securemed.data.from_config import build_source
from securemed.errors import (
    ConfigError,
    DataError,
    FederationFinished,
    ProtocolViolation,
    RoundAborted,
    SecureMedError,
    StaleRound,
)
from securemed.federation.coordinator import HospitalReport, Phase, RoundView
from securemed.federation.secure_round import prepare_update
from securemed.models import build_model
from securemed.pki import read_identity
from securemed.privacy import LocalResult, LocalTrainer, PrivacyLedger
from securemed.privacy.client_dp import ClientDPPolicy, client_dp_policy
from securemed.privacy.hospital_privacy import HospitalPrivacy, ledger_place
from securemed.privacy.patient_level import PrivacyUnit
from securemed.privacy.randomness import NOT_A_GUARANTEE, NoiseSource
from securemed.secagg import SecAggClient
from securemed.secagg.graph import default_neighbours
from securemed.transport.client import DeclineReason, FederationClient

log = logging.getLogger(__name__)


class RoundTrainer(Protocol):
    """What the loop needs from a trainer (``securemed.privacy.LocalTrainer`` is one)."""

    def train_round(self, global_state: Mapping[str, torch.Tensor]) -> LocalResult: ...

    def round_plan(self) -> tuple[float, float, int]: ...

    def raise_noise(self, noise_multiplier: float) -> None: ...


@dataclass
class HospitalSummary:
    """What one hospital did over the whole federation."""

    hospital: str
    rounds_submitted: list[int] = field(default_factory=list)
    rounds_missed: list[int] = field(default_factory=list)
    rounds_aborted: list[int] = field(default_factory=list)
    rounds_declined: list[int] = field(default_factory=list)
    epsilon: float | None = None
    #: what the hospital publishes about its privacy at the end (:meth:`HospitalSite.accounting`)
    accounting: dict[str, object] | None = None


@dataclass(frozen=True)
class HospitalPolicy:
    """What a hospital demands of a round, from its own config (never from the aggregator).

    Every floor holds whatever the aggregator announces; left unset, a floor is the protocol's
    own: k at least the SecAgg+ default for the announced n, t > k/2 and at least max(t, 2)
    survivors (:meth:`SecAggParams.check`).

    Attributes:
        require_secure: refuse a round that would take the update in the clear.
        min_participants: refuse a secure sum over fewer hospitals than this.
        min_survivors: refuse a secure round that would unmask fewer sums than this.
        min_neighbours: refuse a secure round whose SecAgg+ graph gives fewer neighbours (k).
        min_threshold: refuse a secure round whose secret sharing needs fewer shares (t).
        norm_bound: the L2 bound the hospital scales its update to before masking.
        client_dp: its client-level DP noise, if it adds any.
        public_dataset_size: whether its record count (and so its epsilon) may leave.
    """

    require_secure: bool = False
    min_participants: int = 3
    min_survivors: int | None = None
    min_neighbours: int | None = None
    min_threshold: int | None = None
    norm_bound: float | None = None
    client_dp: ClientDPPolicy | None = None
    public_dataset_size: bool = True

    @classmethod
    def from_config(cls, config: JobConfig) -> HospitalPolicy:
        secure = config.secure_aggregation
        client_dp = client_dp_policy(secure, delta=config.privacy.delta) if secure.enabled else None
        return cls(
            require_secure=secure.enabled,
            min_participants=secure.min_participants,
            min_survivors=max(
                secure.min_survivors or 0, client_dp.min_survivors if client_dp else 0
            )
            or None,
            min_neighbours=secure.neighbours,
            min_threshold=secure.threshold,
            norm_bound=secure.norm_bound,
            client_dp=client_dp,
            public_dataset_size=config.privacy.public_dataset_size,
        )

    def refusal(self, view: RoundView, dimension: int) -> str | None:
        """Why this round is weaker than the policy, or cannot carry its client-level noise
        (``dimension`` coordinates); ``None`` when it is fine."""
        if view.broken_secure is not None:
            return f"the round's secure parameters are unsound: {view.broken_secure}"
        if view.secure is None:
            return (
                "the round is not secure, and this hospital requires secure aggregation"
                if (self.require_secure)
                else None
            )
        params = view.secure.params
        neighbours = (
            self.min_neighbours
            if self.min_neighbours is not None
            else default_neighbours(params.hospitals)
        )
        for asked, demanded, what in (
            (params.hospitals, self.min_participants, "hospitals in its secure sum"),
            (params.min_survivors, self.min_survivors, "hospitals left to unmask a sum"),
            (params.neighbours, neighbours, "neighbours (k)"),
            (params.threshold, self.min_threshold, "shares to recover a secret (t)"),
        ):
            if demanded is not None and asked < demanded:
                return (
                    f"the round asks for {asked} {what}, fewer than the {demanded} this "
                    "hospital requires"
                )
        if self.client_dp is not None:
            try:
                self.client_dp.check_ring(
                    params, self.client_dp.round_parameters(params, dimension)
                )
            except ConfigError as error:
                return str(error)
        return None


class SiteEvents(Protocol):
    """What a hospital's host is told as rounds go (the Ray actor turns it into metrics).

    Round numbers and reasons only: nothing about the data or the update.
    """

    def round_declined(self, round_number: int, reason: DeclineReason) -> None: ...

    def round_released(self, round_number: int) -> None: ...


@dataclass(frozen=True)
class PrivacyStatus:
    """A hospital's privacy spend as it stands, for its operators' dashboards.

    Attributes:
        budget: the data set's lifetime DP-SGD budget (``None`` without DP-SGD).
        spent: the ledger's spend by mechanism (``"dp-sgd"``, ``"client-dp"``).
        projected: the DP-SGD spend if every round left ran at the current plan; above
            ``budget``, some rounds will be declined (or run with more noise).
    """

    budget: float | None
    spent: Mapping[str, float]
    projected: float | None


#: rewrites the update before it leaves (a malicious hospital in robustness experiments)
UpdateTamper = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def secure_submit(
    client: FederationClient,
    view: RoundView,
    update: Mapping[str, torch.Tensor],
    report: HospitalReport,
    *,
    policy: HospitalPolicy | None = None,
    noise_variance: float = 0.0,
    randomness: NoiseSource | None = None,
) -> int:
    """Take the five secure-aggregation steps for ``update``; returns the bucket's sum size.

    The norm bound and the client-level DP noise are applied here, on the hospital, before
    masking: the aggregator could not enforce either on a masked vector. The hospital refuses
    to unmask a sum of fewer survivors than its policy demands.
    """
    assignment = view.secure
    if assignment is None:
        raise ValueError("the round does not use secure aggregation")
    policy = policy if policy is not None else HospitalPolicy()
    randomness = randomness if randomness is not None else NoiseSource()
    levels = prepare_update(
        flatten_updates([update])[0][0].numpy(),
        assignment.params,
        norm_bound=policy.norm_bound if policy.norm_bound is not None else assignment.norm_bound,
        noise_variance=noise_variance,
        rng=randomness.numpy_generator(),
    )
    params = assignment.params
    protocol = SecAggClient(client.hospital, assignment.info, params, client.identity)
    step_s = assignment.phase_seconds
    adverts = client.advertise_keys(
        view.round, protocol.advertise(), wait_s=view.seconds_left + step_s
    )
    routed = client.share_keys(view.round, protocol.share(adverts), wait_s=step_s)
    masked = protocol.mask(levels, routed)
    for complaint in protocol.complaints:
        log.warning(
            "a neighbour's shares failed their checks; reported to the aggregator",
            extra={"round": view.round, "dealer": complaint.dealer},
        )
    survivors, dropped = client.submit_masked(
        view.round, masked, report, complaints=protocol.complaints, wait_s=step_s
    )
    real = set(survivors) & set(assignment.info.participants)
    if policy.min_survivors is not None and len(real) < policy.min_survivors:
        raise RoundAborted(
            f"round {view.round}: the aggregator asks to unmask a sum of {len(real)} "
            f"participants, fewer than the {policy.min_survivors} this hospital requires; its "
            "shares are withheld"
        )
    # refuses (ProtocolViolation) names twice over or outside the participants
    confirmation = protocol.confirm(survivors, dropped)
    signatures = client.confirm_survivors(view.round, confirmation, wait_s=step_s)
    # refuses unless t neighbours signed this very view
    return client.unmask(view.round, protocol.unmask(signatures))


def run_hospital(
    client: FederationClient,
    trainer: RoundTrainer,
    *,
    num_samples: int,
    privacy: HospitalPrivacy | None = None,
    policy: HospitalPolicy | None = None,
    randomness: NoiseSource | None = None,
    poll_seconds: float = 10.0,
    on_round: Callable[[int, LocalResult], None] | None = None,
    tamper: UpdateTamper | None = None,
    events: SiteEvents | None = None,
) -> HospitalSummary:
    """Take part in every round that selects this hospital until the federation finishes.

    Args:
        num_samples: the hospital's record count (sent only when its policy declares it
            public).
        privacy: its ledger and budgets; ``None`` only for a trainer without any DP.
        policy: what it demands of a round (default: nothing beyond the protocol).
        randomness: where its rounding and client-level noise come from (default: the OS).
        on_round: called with ``(round, result)`` after each update the aggregator accepted.
        events: told of every declined and every released round.
    """
    policy = policy if policy is not None else HospitalPolicy()
    randomness = randomness if randomness is not None else NoiseSource()
    summary = HospitalSummary(hospital=client.hospital)
    client.join(num_samples=num_samples if policy.public_dataset_size else 0)
    seen = 0
    while True:
        view = client.round_status(after_round=seen, wait_s=poll_seconds)
        if view.phase is Phase.FINISHED:
            return summary
        if view.phase is not Phase.OPEN or view.round <= seen:
            continue
        seen = view.round
        if not view.selected:
            continue
        try:
            global_state = client.global_model(view.round)
            dimension = sum(tensor.numel() for tensor in global_state.values())
            refusal = policy.refusal(view, dimension)
            if refusal is not None:
                _decline(client, summary, view.round, "policy", refusal, events)
                continue
            noise_variance, why_not = _plan_round(view, dimension, trainer, privacy, policy)
            if why_not is not None:
                _decline(client, summary, view.round, "budget", why_not, events)
                continue
            try:
                result = trainer.train_round(global_state)
            except (ConfigError, DataError) as error:  # a global model that does not fit
                _decline(client, summary, view.round, "policy", str(error), events)
                continue
            # Privacy is spent once the update may leave: written before any byte of it does.
            summary.epsilon = result.epsilon
            if privacy is not None:
                privacy.reserve(view.round, result.epsilon)
            update = {name: result.state[name] - global_state[name] for name in global_state}
            if tamper is not None:
                update = tamper(update)
            report = HospitalReport(
                num_samples=result.num_samples if policy.public_dataset_size else 0,
                epsilon=result.epsilon if policy.public_dataset_size else None,
                privacy_unit=result.privacy_unit,
            )
            if view.secure is not None:
                secure_submit(
                    client,
                    view,
                    update,
                    report,
                    policy=policy,
                    noise_variance=noise_variance,
                    randomness=randomness,
                )
            else:
                client.submit_update(view.round, update, report)
        except StaleRound:
            log.warning("missed the round's deadline", extra={"round": view.round})
            summary.rounds_missed.append(view.round)
            continue
        except (RoundAborted, ProtocolViolation) as error:
            # a malformed or weaker request from the aggregator ends this round for the
            # hospital, never the hospital itself (what it reserved stays counted)
            log.warning("secure round aborted", extra={"round": view.round, "reason": str(error)})
            summary.rounds_aborted.append(view.round)
            continue
        except FederationFinished:
            return summary
        if privacy is not None:
            privacy.released(view.round)
        if events is not None:
            events.round_released(view.round)
        summary.rounds_submitted.append(view.round)
        if on_round is not None:
            on_round(view.round, result)


def _plan_round(
    view: RoundView,
    dimension: int,
    trainer: RoundTrainer,
    privacy: HospitalPrivacy | None,
    policy: HospitalPolicy,
) -> tuple[float, str | None]:
    """The round's client-level noise variance and why the budget says no (``None``: go).

    Raises the trainer's noise when the budget orchestrator says that is what fits.
    """
    if privacy is None:
        return 0.0, None
    decision = privacy.decide(view.round, trainer.round_plan())
    if decision is not None and not decision.participates:
        return 0.0, decision.reason
    noise_variance = 0.0
    if view.secure is not None and policy.client_dp is not None:
        parameters = policy.client_dp.round_parameters(view.secure.params, dimension)
        why_not = privacy.decide_client_dp(view.round, parameters)
        if why_not is not None:
            return 0.0, why_not
        noise_variance = policy.client_dp.share_variance(parameters)
    if decision is not None and decision.action == "raise_noise":
        assert decision.noise_multiplier is not None
        trainer.raise_noise(decision.noise_multiplier)
        log.warning(
            "noise raised to stay within the privacy budget",
            extra={"round": view.round, "noise_multiplier": decision.noise_multiplier},
        )
    return noise_variance, None


def _decline(
    client: FederationClient,
    summary: HospitalSummary,
    round_number: int,
    reason: DeclineReason,
    why: str,
    events: SiteEvents | None,
) -> None:
    """Sit the round out: say so to the aggregator (no upload), in the log and to the host."""
    log.warning("declined a round", extra={"round": round_number, "reason": reason, "why": why})
    summary.rounds_declined.append(round_number)
    client.decline(round_number, reason=reason)
    if events is not None:
        events.round_declined(round_number, reason)


def insecure_seed_for(config: JobConfig, hospital: str) -> int | None:
    """The hospital's stream in the insecure reproducible mode (``None``: OS randomness).

    Distinct per hospital, so that no two share noise even in that mode."""
    seed = config.privacy.insecure_reproducible_seed
    if seed is None:
        return None
    state = np.random.SeedSequence([seed, zlib.crc32(hospital.encode())]).generate_state(1)
    return int(state[0])


class HospitalSite:
    """Everything one hospital runs with, built from its own config and its own data.

    The Ray actor and ``python -m securemed.hospital`` both build one, so both keep the same
    ledger, enforce the same budget and policy, and draw noise the same way.

    Args:
        config: the hospital's own config.
        hospital: its name (its certificate's common name).
        images: its training images; ``labels``, multi-hot; ``patient_ids`` under
            patient-level privacy.
        run_id: the run's id (ledger rows of one run share it).
        data_file: the real data file the images came from, or ``None`` for generated data.
        run_folder: where a generated-data run keeps its ledger (``None``: the state folder).

    Raises:
        ConfigError, DataError: the config or data do not fit.
        LedgerError: the hospital's ledger cannot be opened.
        BudgetExhausted: earlier runs on the same data leave too little budget for this one.
    """

    def __init__(
        self,
        config: JobConfig,
        *,
        hospital: str,
        images: torch.Tensor,
        labels: np.ndarray,
        patient_ids: np.ndarray | None,
        run_id: str,
        data_file: Path | None,
        run_folder: Path | None,
    ) -> None:
        privacy_config = config.privacy
        self.policy = HospitalPolicy.from_config(config)
        insecure_seed = insecure_seed_for(config, hospital)
        # rounding and client-level noise: a stream of their own, even in the insecure mode
        self.randomness = NoiseSource(insecure_seed_for(config, f"{hospital}/secure-sum"))
        self.num_samples = len(labels)
        self.delta = privacy_config.delta
        self.privacy: HospitalPrivacy | None = None
        unit: PrivacyUnit = (
            "patient" if privacy_config.unit == "patient" and patient_ids is not None else "record"
        )
        if privacy_config.enabled or self.policy.client_dp is not None:
            self.place = ledger_place(
                privacy_config,
                hospital=hospital,
                data_file=data_file,
                run_folder=run_folder,
                run_id=run_id,
            )
            self.privacy = HospitalPrivacy(
                PrivacyLedger(self.place.path),
                privacy=privacy_config,
                hospital=hospital,
                dataset_id=self.place.dataset_id,
                run_id=run_id,
                privacy_unit=unit,
                secure_noise=insecure_seed is None,
                client_dp=self.policy.client_dp,
            )
        try:
            model = build_model(
                config.training.model, num_classes=labels.shape[1], in_channels=images.shape[1]
            )
            self.trainer = LocalTrainer(
                model,
                images,
                torch.from_numpy(labels),
                training=config.training,
                privacy=privacy_config,
                total_rounds=config.federation.rounds,
                insecure_seed=insecure_seed,
                accountant_state=self.privacy.accountant_state() if self.privacy else None,
                patient_ids=patient_ids if privacy_config.unit == "patient" else None,
            )
            if self.privacy is not None and privacy_config.enabled:
                self.privacy.check_run(self.trainer.round_plan(), config.federation.rounds)
        except BaseException:
            self.close()
            raise

    def run(
        self,
        client: FederationClient,
        *,
        poll_seconds: float = 10.0,
        on_round: Callable[[int, LocalResult], None] | None = None,
        tamper: UpdateTamper | None = None,
        events: SiteEvents | None = None,
    ) -> HospitalSummary:
        """Take part in the federation behind ``client`` until it finishes."""
        summary = run_hospital(
            client,
            self.trainer,
            num_samples=self.num_samples,
            privacy=self.privacy,
            policy=self.policy,
            randomness=self.randomness,
            poll_seconds=poll_seconds,
            on_round=on_round,
            tamper=tamper,
            events=events,
        )
        summary.accounting = self.accounting()
        return summary

    def privacy_status(self, rounds_left: int) -> PrivacyStatus | None:
        """The spend so far and where ``rounds_left`` more rounds at the current plan would
        take it (``None`` without a ledger)."""
        privacy = self.privacy
        if privacy is None:
            return None
        dp_sgd = privacy.budget is not None
        return PrivacyStatus(
            budget=privacy.budget,
            spent={
                "dp-sgd": privacy.spent("dp-sgd"),
                **({"client-dp": privacy.spent("client-dp")} if self.policy.client_dp else {}),
            },
            projected=privacy.projected(self.trainer.round_plan(), max(rounds_left, 0))
            if dp_sgd
            else None,
        )

    def accounting(self) -> dict[str, object] | None:
        """What the hospital publishes about its privacy: the mechanism of every counted round
        on its data, the accountant, delta, and the ledger's spend (numbers only)."""
        if self.privacy is None:
            return None
        state = self.privacy.accountant_state()
        client_dp = self.policy.client_dp
        if not self.policy.public_dataset_size:
            # the sampling rate is batch size over the record count: it would tell the size
            return {"dataset_size": "private", "epsilon": None, "history": []}
        return {
            "dataset_id": self.privacy.dataset_id,
            "ledger": str(self.privacy.ledger.path),
            # generated data is public by construction: its ledger covers this run only
            "ledger_covers": "this run (generated, public data)"
            if self.place.public_data
            else "every run on this data set",
            "accountant": state["mechanism"] if state else None,
            "delta": self.delta,
            "unit": state["unit"] if state else None,
            # (noise multiplier, sample rate, steps) of every counted DP-SGD round, merged
            "history": state["history"] if state else [],
            "epsilon": self.privacy.spent("dp-sgd") if state else None,
            "client_level_epsilon": self.privacy.spent("client-dp") if client_dp else None,
            "epsilon_is_guarantee": self.privacy.guaranteed(),
        }

    def close(self) -> None:
        if self.privacy is not None:
            self.privacy.ledger.close()

    def __enter__(self) -> HospitalSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m securemed.hospital",
        description="Join a SecureMed federation as one hospital and train on local data.",
    )
    parser.add_argument("--aggregator", required=True, help="the aggregator's HOST:PORT")
    parser.add_argument(
        "--cert",
        type=Path,
        required=True,
        help="this hospital's certificate from the federation CA, as `securemed pki sign` "
        "issued it (its common name is the hospital's name in the federation)",
    )
    parser.add_argument(
        "--key",
        type=Path,
        required=True,
        help="the certificate's private key: NAME.key in the folder `securemed pki request` "
        "wrote it to",
    )
    parser.add_argument("--ca", type=Path, required=True, help="the federation CA certificate")
    parser.add_argument(
        "--server-name",
        default="localhost",
        help="a name in the aggregator's certificate, when --aggregator dials another "
        "(default: localhost)",
    )
    parser.add_argument("--config", type=Path, help="the federation's YAML config")
    parser.add_argument(
        "--data", type=Path, help="a MedMNIST-layout .npz of this hospital's images"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="this hospital's state folder, where its privacy ledger lives (default: the "
        "config's privacy.state_dir)",
    )
    parser.add_argument(
        "--run-id",
        help="the federation run this process takes part in; a restarted hospital passes the "
        "same one, so a round reserved before the restart is never released twice (default: "
        "one derived from --aggregator)",
    )
    return parser.parse_args(argv)


def _print_round(round_number: int, result: LocalResult) -> None:
    """This hospital's own view of its round: its loss and timing stay on its machine."""
    spent = (
        "no DP"
        if result.epsilon is None
        else f"epsilon {result.epsilon:.2f} ({result.privacy_unit}-level)"
    )
    print(
        f"round {round_number}: update sent ({result.steps} steps, loss {result.loss:.4f}, "
        f"{spent}, {result.train_seconds:.1f} s)",
        flush=True,
    )


def _default_run_id(aggregator: str) -> str:
    return "federation-" + "".join(c if c.isalnum() or c in "-." else "-" for c in aggregator)


def main(argv: list[str] | None = None) -> int:
    """Train this hospital's share of the federation; images never leave this process.

    Exit status: 0 when the federation finished, 2 for a bad config, data file or a budget
    that earlier runs have spent, 1 when the aggregator refused this hospital or could not be
    reached.
    """
    args = _parse_args(argv)
    try:
        identity = read_identity(args.cert, args.key, args.ca)
        config = load_config(args.config)
        if args.state_dir is not None:
            config = config.model_copy(
                update={"privacy": config.privacy.model_copy(update={"state_dir": args.state_dir})}
            )
        data = config.data if args.data is None else DataConfig(source="medmnist", path=args.data)
        source = build_source(data)
        labels = source.labels("train")
        site = HospitalSite(
            config,
            hospital=identity.name,
            images=torch.from_numpy(source.images("train", np.arange(len(labels)))),
            labels=labels,
            patient_ids=source.patient_ids("train") if config.privacy.unit == "patient" else None,
            run_id=args.run_id or _default_run_id(args.aggregator),
            data_file=data.path,  # a real file (from --data or the config) keeps its budget
            run_folder=None,
        )
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with site:
        where = f"; privacy ledger {site.privacy.ledger.path}" if site.privacy else ""
        print(
            f"{identity.name}: {len(labels)} local images{where}; joining {args.aggregator}",
            flush=True,
        )
        if not site.randomness.secure:
            print(f"warning: {NOT_A_GUARANTEE}", flush=True)
        try:
            with FederationClient(
                args.aggregator,
                identity,
                max_message_bytes=config.federation.max_message_mb * 1024 * 1024,
                server_name=args.server_name,
            ) as client:
                summary = site.run(client, on_round=_print_round)
        except SecureMedError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    spent = (
        "no DP"
        if summary.epsilon is None
        else f"{site.trainer.privacy_unit}-level epsilon {summary.epsilon:.2f}"
    )
    print(
        f"federation finished: {len(summary.rounds_submitted)} rounds submitted, "
        f"{len(summary.rounds_missed)} missed, {len(summary.rounds_declined)} declined, "
        f"{spent} at delta {config.privacy.delta:g}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
