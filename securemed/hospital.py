"""A hospital's side of the federation: wait for a round, train locally, submit the update.

The same loop runs inside a Ray actor (``actors/hospital.py``) and on a real hospital's own
machine (``python -m securemed.hospital``); it dials out to the aggregator and never exposes
an image, only the difference between its trained weights and the round's global weights.
A round that closes before the hospital is done (it missed the deadline) is skipped, not
fatal: the hospital waits for the next one; so is a secure round that was aborted.

Under secure aggregation (the round status carries a secure assignment) the update never leaves
in the clear: it is bounded in norm, noised for client-level DP if asked, quantized and masked
(:func:`secure_submit`), and the aggregator learns only its bucket's sum.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from securemed.aggregation import flatten_updates
from securemed.config import DataConfig, load_config
from securemed.data.from_config import build_source
from securemed.errors import FederationFinished, RoundAborted, SecureMedError, StaleRound
from securemed.federation.coordinator import HospitalReport, Phase, RoundView
from securemed.federation.secure_round import prepare_update
from securemed.models import build_model
from securemed.pki import read_identity
from securemed.privacy import LocalResult, LocalTrainer
from securemed.secagg import SecAggClient
from securemed.transport.client import FederationClient

log = logging.getLogger(__name__)


class RoundTrainer(Protocol):
    """What the loop needs from a trainer (``securemed.privacy.LocalTrainer`` is one)."""

    def train_round(self, global_state: Mapping[str, torch.Tensor]) -> LocalResult: ...


@dataclass
class HospitalSummary:
    """What one hospital did over the whole federation."""

    hospital: str
    rounds_submitted: list[int] = field(default_factory=list)
    rounds_missed: list[int] = field(default_factory=list)
    rounds_aborted: list[int] = field(default_factory=list)
    epsilon: float | None = None


#: called with (round, result) after training and before any byte of the update leaves: the
#: privacy ledger's write-ahead entry goes here, and may refuse the release by raising
ReleaseGuard = Callable[[int, LocalResult], None]
#: rewrites the update before it leaves (a malicious hospital in robustness experiments)
UpdateTamper = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def secure_submit(
    client: FederationClient,
    view: RoundView,
    update: Mapping[str, torch.Tensor],
    report: HospitalReport,
) -> int:
    """Take the four secure-aggregation steps for ``update``; returns the bucket's sum size.

    The norm bound and the client-level DP noise are applied here, on the hospital, before
    masking: the aggregator could not enforce either on a masked vector.
    """
    assignment = view.secure
    if assignment is None:
        raise ValueError("the round does not use secure aggregation")
    levels = prepare_update(
        flatten_updates([update])[0][0].numpy(),
        assignment,
        np.random.default_rng(secrets.randbits(128)),
    )
    params = assignment.params
    protocol = SecAggClient(client.hospital, assignment.info, params, client.identity)
    step_s = assignment.phase_seconds
    adverts = client.advertise_keys(
        view.round, protocol.advertise(), wait_s=view.seconds_left + step_s
    )
    routed = client.share_keys(view.round, protocol.share(adverts), wait_s=step_s)
    survivors, dropped = client.submit_masked(
        view.round,
        protocol.mask(levels, routed),
        report,
        wait_s=step_s,
    )
    return client.unmask(view.round, protocol.unmask(survivors, dropped))


def _norm(update: Mapping[str, torch.Tensor]) -> float:
    """L2 norm of a whole update, tensor by tensor (no flattened copy of the model)."""
    return float(sum(float(t.double().pow(2).sum()) for t in update.values()) ** 0.5)


def run_hospital(
    client: FederationClient,
    trainer: RoundTrainer,
    *,
    num_samples: int,
    poll_seconds: float = 10.0,
    on_round: Callable[[int, LocalResult], None] | None = None,
    before_release: ReleaseGuard | None = None,
    tamper: UpdateTamper | None = None,
) -> HospitalSummary:
    """Take part in every round that selects this hospital until the federation finishes.

    ``on_round(round, result)`` is called after each update the aggregator accepted.
    """
    summary = HospitalSummary(hospital=client.hospital)
    client.join(num_samples=num_samples)
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
            result = trainer.train_round(global_state)
            # Privacy is spent once the trainer has run, whether or not the update arrives.
            summary.epsilon = result.epsilon
            if before_release is not None:
                before_release(view.round, result)
            update = {name: result.state[name] - global_state[name] for name in global_state}
            if tamper is not None:
                update = tamper(update)
            report = HospitalReport(
                num_samples=result.num_samples,
                epsilon=result.epsilon,
                train_seconds=result.train_seconds,
                serialize_seconds=0.0,
                loss=result.loss,
                update_bytes=0,
                update_norm=_norm(update),
                privacy_unit=result.privacy_unit,
            )
            if view.secure is not None:
                secure_submit(client, view, update, report)
            else:
                client.submit_update(view.round, update, report)
        except StaleRound:
            log.warning("missed the round's deadline", extra={"round": view.round})
            summary.rounds_missed.append(view.round)
            continue
        except RoundAborted:
            log.warning("secure round aborted", extra={"round": view.round})
            summary.rounds_aborted.append(view.round)
            continue
        except FederationFinished:
            return summary
        summary.rounds_submitted.append(view.round)
        if on_round is not None:
            on_round(view.round, result)


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
        help="this hospital's certificate from the federation CA (its common name is the "
        "hospital's name in the federation)",
    )
    parser.add_argument("--key", type=Path, required=True, help="the certificate's private key")
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
        "--seed",
        type=int,
        help="sampler and noise seed, to reproduce a run (default: a fresh random one, so no "
        "two hospitals share a noise stream)",
    )
    return parser.parse_args(argv)


def _print_round(round_number: int, result: LocalResult) -> None:
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


def main(argv: list[str] | None = None) -> int:
    """Train this hospital's share of the federation; images never leave this process.

    Exit status: 0 when the federation finished, 2 for a bad config or data file, 1 when the
    aggregator refused this hospital or could not be reached.
    """
    args = _parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    try:
        identity = read_identity(args.cert, args.key, args.ca)
        config = load_config(args.config)
        data = config.data if args.data is None else DataConfig(source="medmnist", path=args.data)
        source = build_source(data)
        labels = source.labels("train")
        images = torch.from_numpy(source.images("train", np.arange(len(labels))))
        model = build_model(
            config.training.model, num_classes=labels.shape[1], in_channels=images.shape[1]
        )
        trainer = LocalTrainer(
            model,
            images,
            torch.from_numpy(labels),
            training=config.training,
            privacy=config.privacy,
            total_rounds=config.federation.rounds,
            seed=seed,
            patient_ids=source.patient_ids("train") if config.privacy.unit == "patient" else None,
        )
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"{identity.name}: {len(labels)} local images, seed {seed}; joining {args.aggregator}",
        flush=True,
    )
    try:
        with FederationClient(
            args.aggregator,
            identity,
            max_message_bytes=config.federation.max_message_mb * 1024 * 1024,
            server_name=args.server_name,
        ) as client:
            summary = run_hospital(client, trainer, num_samples=len(labels), on_round=_print_round)
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    spent = (
        "no DP"
        if summary.epsilon is None
        else f"{trainer.privacy_unit}-level epsilon {summary.epsilon:.2f}"
    )
    print(
        f"federation finished: {len(summary.rounds_submitted)} rounds submitted, "
        f"{len(summary.rounds_missed)} missed, {spent} at delta {config.privacy.delta:g}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
