"""The hospital actor: holds one hospital's images and runs its federated loop.

Its images are rendered or loaded inside the actor and never leave it; only updates go out,
over gRPC with mutual TLS, through the same client a real hospital uses. Everything about its
privacy (its own ledger, written before any byte of an update leaves; its budget; its policy;
its secret noise) is the core :class:`~securemed.hospital.HospitalSite`, the same object
``python -m securemed.hospital`` runs: the actor only hosts it.

A hospital configured with an attack misbehaves on purpose (robustness experiments): label
flipping poisons its data at start, the update attacks rewrite each update before it leaves.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from actors.metrics import HospitalMetrics
from securemed.aggregation import flatten_updates
from securemed.attacks import DataAttack, LittleIsEnough, UpdateAttack, build_attack
from securemed.config import AttackConfig, JobConfig
from securemed.data.sources import ImageSource
from securemed.hospital import HospitalSite, HospitalSummary
from securemed.pki import FederationIdentity
from securemed.transport.client import FederationClient

log = logging.getLogger(__name__)

#: honest updates an ALIE attacker keeps to estimate the benign mean and spread
_ALIE_MEMORY = 3


@ray.remote
class HospitalNode:
    """One hospital: its partition of the data and the site that trains and accounts it."""

    def __init__(
        self,
        *,
        identity: FederationIdentity | Callable[[], FederationIdentity],
        config: JobConfig,
        source: ImageSource,
        indices: np.ndarray,
        run_id: str,
        run_folder: Path,
        attacks: Sequence[AttackConfig] = (),
    ) -> None:
        torch.set_num_threads(1)  # hospitals share the node's cores; one thread each
        # a callable reads the identity here, on this hospital's own node (its site's secret)
        self._identity = identity if isinstance(identity, FederationIdentity) else identity()
        labels = source.labels("train")[indices]
        self._update_attacks: list[UpdateAttack] = []
        for attack in attacks:
            params = self._attack_params(attack, config.federation.hospitals, attacks)
            built = build_attack(attack.attack, **params)
            if isinstance(built, DataAttack):
                labels = built.apply(labels)
            else:
                self._update_attacks.append(built)
        self._honest: deque[torch.Tensor] = deque(maxlen=_ALIE_MEMORY)
        self._site = HospitalSite(
            config,
            hospital=self._identity.name,
            images=torch.from_numpy(source.images("train", indices)),
            labels=labels,
            patient_ids=source.patient_ids("train")[indices]
            if config.privacy.unit == "patient"
            else None,
            run_id=run_id,
            data_file=config.data.path,
            run_folder=run_folder,
        )
        self._total_rounds = config.federation.rounds

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
        metrics = HospitalMetrics(
            self._identity.name,
            total_rounds=self._total_rounds,
            status=self._site.privacy_status,
        )
        with FederationClient(
            target, self._identity, max_message_bytes=max_message_bytes, server_name=server_name
        ) as client:
            return self._site.run(
                client, tamper=self._tamper if self._update_attacks else None, events=metrics
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

    def node_id(self) -> str:
        """The Ray node this hospital runs on (its site's, when pinned)."""
        return ray.get_runtime_context().get_node_id()

    def stop(self) -> None:
        """Close the hospital's ledger (every committed row is already on disk)."""
        self._site.close()
