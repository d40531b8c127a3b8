"""The hospital actor: holds one hospital's images and runs its federated loop.

Its images are rendered or loaded inside the actor and never leave it; only updates go out,
over gRPC, through the same client a real hospital uses. ``max_concurrency=2`` (set by the job)
lets the job read the privacy accountant while ``run`` is busy in the loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ray
import torch

from securemed.config import PrivacyConfig, TrainingConfig
from securemed.data.sources import ImageSource
from securemed.hospital import HospitalSummary, run_hospital
from securemed.models import build_model
from securemed.privacy import LocalTrainer
from securemed.transport.client import FederationClient


@ray.remote
class HospitalNode:
    """One hospital: its partition of the data and a DP trainer that persists across rounds."""

    def __init__(
        self,
        *,
        hospital: str,
        source: ImageSource,
        indices: np.ndarray,
        training: TrainingConfig,
        privacy: PrivacyConfig,
        total_rounds: int,
        seed: int,
        accountant_state: dict[str, Any] | None = None,
    ) -> None:
        torch.set_num_threads(1)  # hospitals share the node's cores; one thread each
        self._hospital = hospital
        images = torch.from_numpy(source.images("train", indices))
        labels = torch.from_numpy(source.labels("train")[indices])
        model = build_model(training.model, num_classes=labels.shape[1])
        self._num_samples = len(indices)
        self._trainer = LocalTrainer(
            model,
            images,
            labels,
            training=training,
            privacy=privacy,
            total_rounds=total_rounds,
            seed=seed,
            accountant_state=accountant_state,
        )

    def run(self, target: str, max_message_bytes: int) -> HospitalSummary:
        """Take part in the federation at ``target`` until it finishes."""
        with FederationClient(
            target, self._hospital, max_message_bytes=max_message_bytes
        ) as client:
            return run_hospital(client, self._trainer, num_samples=self._num_samples)

    def epsilon(self) -> float | None:
        """Privacy spent so far (cumulative, at the configured delta); None without DP."""
        return self._trainer.epsilon

    def privacy_state(self) -> dict[str, Any]:
        """The accountant's history, checkpointed so a resumed run never resets epsilon."""
        return self._trainer.accountant_state()
