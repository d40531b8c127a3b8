"""A hospital's side of the federation: wait for a round, train locally, submit the update.

The same loop runs inside a Ray actor (``actors/hospital.py``) and on a real hospital's own
machine (``python -m securemed.hospital``); it dials out to the aggregator and never exposes
an image, only the difference between its trained weights and the round's global weights.
A round that closes before the hospital is done (it missed the deadline) is skipped, not
fatal: the hospital waits for the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import torch

from securemed.errors import FederationFinished, StaleRound
from securemed.federation.coordinator import Phase
from securemed.privacy import LocalResult
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
) -> HospitalSummary:
    """Take part in every round that selects this hospital until the federation finishes."""
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
