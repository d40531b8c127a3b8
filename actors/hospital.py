"""The hospital actor: holds one hospital's images and runs its federated loop.

Its images are rendered or loaded inside the actor and never leave it; only updates go out,
over gRPC with mutual TLS, through the same client a real hospital uses. Before any byte of an
update leaves, the privacy it cost is written to the federation's ledger (write-ahead): a crash
after that point still counts the spend. ``max_concurrency=2`` (set by the job) lets the job
read the privacy accountant while ``run`` is busy in the loop.

A hospital configured with an attack misbehaves on purpose (robustness experiments): label
flipping poisons its data at start, the update attacks rewrite each update before it leaves.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from securemed.aggregation import flatten_updates
from securemed.attacks import DataAttack, LittleIsEnough, UpdateAttack, build_attack
from securemed.config import AttackConfig, PrivacyConfig, TrainingConfig
from securemed.data.sources import ImageSource
from securemed.hospital import HospitalSummary, run_hospital
from securemed.models import build_model
from securemed.pki import FederationIdentity
from securemed.privacy import LocalResult, LocalTrainer, PrivacyLedger
from securemed.transport.client import FederationClient

log = logging.getLogger(__name__)

#: honest updates an ALIE attacker keeps to estimate the benign mean and spread
_ALIE_MEMORY = 3


@ray.remote
class HospitalNode:
    """One hospital: its partition of the data and a DP trainer that persists across rounds."""

    def __init__(
        self,
        *,
        identity: FederationIdentity,
        source: ImageSource,
        indices: np.ndarray,
        training: TrainingConfig,
        privacy: PrivacyConfig,
        total_rounds: int,
        seed: int,
        run_id: str,
        ledger: Path,
        accountant_state: dict[str, Any] | None = None,
        attacks: Sequence[AttackConfig] = (),
        hospitals: int = 1,
    ) -> None:
        torch.set_num_threads(1)  # hospitals share the node's cores; one thread each
        self._identity = identity
        self._privacy = privacy
        self._run_id = run_id
        self._ledger_path = ledger
        images = torch.from_numpy(source.images("train", indices))
        labels = source.labels("train")[indices]
        self._update_attacks: list[UpdateAttack] = []
        for attack in attacks:
            built = build_attack(attack.attack, **self._attack_params(attack, hospitals, attacks))
            if isinstance(built, DataAttack):
                labels = built.apply(labels)
            else:
                self._update_attacks.append(built)
        self._honest: deque[torch.Tensor] = deque(maxlen=_ALIE_MEMORY)
        model = build_model(training.model, num_classes=labels.shape[1])
        self._num_samples = len(indices)
        self._trainer = LocalTrainer(
            model,
            images,
            torch.from_numpy(labels),
            training=training,
            privacy=privacy,
            total_rounds=total_rounds,
            seed=seed,
            accountant_state=accountant_state,
            patient_ids=source.patient_ids("train")[indices] if privacy.unit == "patient" else None,
        )

    @staticmethod
    def _attack_params(
        attack: AttackConfig, hospitals: int, attacks: Sequence[AttackConfig]
    ) -> dict[str, Any]:
        params: dict[str, Any] = dict(attack.params)
        if attack.attack == "alie":
            params.setdefault("num_hospitals", hospitals)
            params.setdefault("num_malicious", len({a.hospital for a in attacks}))
        if attack.attack in ("gaussian_noise", "label_flip"):
            params.setdefault("seed", attack.hospital)
        return params

    def run(self, target: str, max_message_bytes: int, server_name: str) -> HospitalSummary:
        """Take part in the federation at ``target`` until it finishes."""
        with (
            FederationClient(
                target, self._identity, max_message_bytes=max_message_bytes, server_name=server_name
            ) as client,
            PrivacyLedger(self._ledger_path) as ledger,
        ):
            budget = self._privacy.budget

            def reserve(round_number: int, result: LocalResult) -> None:
                if result.epsilon is None:
                    return
                ledger.reserve(
                    run_id=self._run_id,
                    hospital=self._identity.name,
                    round_number=round_number,
                    mechanism="dp-sgd",
                    cumulative_epsilon=result.epsilon,
                    delta=self._privacy.delta,
                    privacy_unit=result.privacy_unit,
                    accountant=self._privacy.accountant,
                    budget_epsilon=budget,
                )

            def released(round_number: int, result: LocalResult) -> None:
                if result.epsilon is not None:
                    ledger.commit(
                        run_id=self._run_id,
                        hospital=self._identity.name,
                        round_number=round_number,
                        mechanism="dp-sgd",
                    )

            return run_hospital(
                client,
                self._trainer,
                num_samples=self._num_samples,
                before_release=reserve,
                on_round=released,
                tamper=self._tamper if self._update_attacks else None,
            )

    def _tamper(self, update: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rewrite an honest update. ALIE estimates the benign statistics from this hospital's
        own recent honest updates (colluders would pool theirs; one attacker has only its own)."""
        self._honest.append(flatten_updates([update])[0][0])
        for attack in self._update_attacks:
            if isinstance(attack, LittleIsEnough):
                if len(self._honest) < 2:
                    log.warning("alie needs two honest updates to estimate from; sending honest")
                    continue
                update = attack.apply(update, reference=torch.stack(list(self._honest)))
            else:
                update = attack.apply(update)
        return update

    def epsilon(self) -> float | None:
        """Privacy spent so far (cumulative, at the configured delta); None without DP."""
        return self._trainer.epsilon

    def privacy_state(self) -> dict[str, Any]:
        """The accountant's history, checkpointed so a resumed run never resets epsilon."""
        return self._trainer.accountant_state()

    def round_plan(self) -> tuple[float, float, int]:
        """(noise multiplier, sample rate, steps) of the next round, for the budget check."""
        return self._trainer.round_plan()

    def raise_noise(self, noise_multiplier: float) -> None:
        self._trainer.raise_noise(noise_multiplier)

    def account_unrecorded_rounds(self, count: int) -> float | None:
        """Add ``count`` rounds the ledger shows spent but the checkpoint missed (a crash)."""
        self._trainer.account_unrecorded_rounds(count)
        return self._trainer.epsilon
