"""A scripted aggregator for the hospital loop's tests: it offers rounds and records every
message the hospital sends, as a curious aggregator would. It stands in for what lies outside
the hospital (the network and the aggregator), never for the hospital's own logic."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from securemed.federation.coordinator import HospitalReport, Phase, RoundView
from securemed.federation.secure_round import SecureAssignment
from securemed.secagg.params import SecAggParams
from securemed.secagg.protocol import RoundInfo
from securemed.transport.client import SubmitTiming


@dataclass
class FakeAggregator:
    """Offers ``rounds`` (round number, secure?) one after the other, then finishes.

    ``crash_on_submit`` kills this very process (SIGKILL, no cleanup) when the hospital sends
    its update: a crash between the ledger's reservation and its release.
    """

    global_state: Mapping[str, torch.Tensor]
    rounds: list[tuple[int, bool]]
    hospital: str = "hospital-1"
    secure_survivors: int = 4
    #: k the aggregator announces (None: the SecAgg+ default for the participants)
    secure_neighbours: int | None = None
    crash_on_submit: bool = False
    sent: list[tuple[str, Any]] = field(default_factory=list)
    _offered: int = 0
    #: the ledger's status of the round at the moment its update was sent
    status_at_send: list[str] = field(default_factory=list)
    ledger: Any = None

    def join(self, *, num_samples: int) -> int:
        self.sent.append(("join", num_samples))
        return len(self.rounds)

    def round_status(self, *, after_round: int, wait_s: float) -> RoundView:
        if self._offered >= len(self.rounds):
            return RoundView(0, Phase.FINISHED, False, 0.0, len(self.rounds))
        number, secure = self.rounds[self._offered]
        self._offered += 1
        assignment = None
        if secure:
            participants = tuple(f"hospital-{i}" for i in range(1, self.secure_survivors + 1))
            assignment = SecureAssignment(
                info=RoundInfo(round=number, round_id=b"r" * 16, participants=participants),
                params=SecAggParams.for_round(len(participants), neighbours=self.secure_neighbours),
                norm_bound=None,
                phase_seconds=1.0,
            )
        return RoundView(number, Phase.OPEN, True, 60.0, len(self.rounds), assignment)

    def global_model(self, round_number: int) -> dict[str, torch.Tensor]:
        return {name: tensor.clone() for name, tensor in self.global_state.items()}

    def decline(self, round_number: int, *, reason: str) -> None:
        self.sent.append(("decline", (round_number, reason)))

    def submit_update(
        self, round_number: int, update: Mapping[str, torch.Tensor], report: HospitalReport
    ) -> SubmitTiming:
        if self.ledger is not None:
            rows = [e for e in self.ledger.entries() if e.round == round_number]
            self.status_at_send.extend(row.status for row in rows)
        if self.crash_on_submit:
            os.kill(os.getpid(), signal.SIGKILL)
        self.sent.append(("update", (round_number, dict(update), report)))
        return SubmitTiming(1, 1, 0.0, 0.0, 0.0, 0)


def toy_site_data(n: int = 48, classes: int = 2, size: int = 16) -> tuple[torch.Tensor, Any]:
    """Images and multi-hot labels for a hospital site (values only, no meaning)."""
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((n, 1, size, size), dtype=np.float32))
    labels = (rng.random((n, classes)) < 0.5).astype(np.float32)
    return images, labels
