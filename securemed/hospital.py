"""A hospital's side of the federation: wait for a round, train locally, submit the update.

The same loop runs inside a Ray actor (``actors/hospital.py``) and on a real hospital's own
machine (``python -m securemed.hospital``); it dials out to the aggregator and never exposes
an image, only the difference between its trained weights and the round's global weights.
A round that closes before the hospital is done (it missed the deadline) is skipped, not
fatal: the hospital waits for the next one.
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

from securemed.config import DataConfig, load_config
from securemed.data.from_config import build_source
from securemed.errors import FederationFinished, SecureMedError, StaleRound
from securemed.federation.coordinator import Phase
from securemed.models import build_model
from securemed.privacy import LocalResult, LocalTrainer
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
    epsilon: float | None = None


def run_hospital(
    client: FederationClient,
    trainer: RoundTrainer,
    *,
    num_samples: int,
    poll_seconds: float = 10.0,
    on_round: Callable[[int, LocalResult], None] | None = None,
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
            update = {name: result.state[name] - global_state[name] for name in global_state}
            client.submit_update(
                view.round,
                update,
                num_samples=result.num_samples,
                epsilon=result.epsilon,
                train_seconds=result.train_seconds,
                loss=result.loss,
            )
        except StaleRound:
            log.warning("missed the round's deadline", extra={"round": view.round})
            summary.rounds_missed.append(view.round)
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
    parser.add_argument("--hospital", required=True, help="this hospital's name in the federation")
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
    spent = "no DP" if result.epsilon is None else f"epsilon {result.epsilon:.2f}"
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
        )
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"{args.hospital}: {len(labels)} local images, seed {seed}; joining {args.aggregator}",
        flush=True,
    )
    try:
        with FederationClient(
            args.aggregator,
            args.hospital,
            max_message_bytes=config.federation.max_message_mb * 1024 * 1024,
        ) as client:
            summary = run_hospital(client, trainer, num_samples=len(labels), on_round=_print_round)
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    spent = "no DP" if summary.epsilon is None else f"epsilon {summary.epsilon:.2f}"
    print(
        f"federation finished: {len(summary.rounds_submitted)} rounds submitted, "
        f"{len(summary.rounds_missed)} missed, {spent} at delta {config.privacy.delta:g}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
