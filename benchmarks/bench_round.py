"""One federated round's wall time, split into local training, serialization, transport and
aggregation, measured over real gRPC on 127.0.0.1 with the product's own server and client.

Hospitals run one after another (not as Ray actors) so each phase is timed without the others
competing for the two cores; the split, not the total, is the point.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from securemed.config import PrivacyConfig, TrainingConfig
from securemed.data.synthetic import SyntheticChestXRays
from securemed.federation.coordinator import FederationCoordinator
from securemed.models import build_model
from securemed.privacy import LocalTrainer
from securemed.transport.client import FederationClient
from securemed.transport.threaded import ThreadedFederationServer

MAX_MESSAGE_BYTES = 256 * 1024 * 1024


def measure_round(
    *,
    hospitals: int = 4,
    samples_per_hospital: int = 500,
    image_size: int = 64,
    model_name: str = "simple_cnn",
    threads: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Run one DP round and return where its time went (seconds, summed over hospitals)."""
    torch.set_num_threads(threads)
    data = SyntheticChestXRays(image_size=image_size, seed=seed)
    torch.manual_seed(seed)
    initial = build_model(model_name, num_classes=data.num_classes).state_dict()
    names = [f"hospital-{i + 1}" for i in range(hospitals)]
    coordinator = FederationCoordinator(hospitals=names, global_state=initial, total_rounds=1)
    training = TrainingConfig(model=model_name, batch_size=64)
    privacy = PrivacyConfig(target_epsilon=8.0)
    split = dict.fromkeys(("local_training_s", "serialization_s", "transport_s"), 0.0)
    update_bytes = 0
    with ThreadedFederationServer(coordinator, max_message_bytes=MAX_MESSAGE_BYTES) as served:
        clients, trainers = [], []
        for i, name in enumerate(names):
            indices = np.arange(i * samples_per_hospital, (i + 1) * samples_per_hospital)
            trainer = LocalTrainer(
                build_model(model_name, num_classes=data.num_classes),
                torch.from_numpy(data.images(indices)),
                torch.from_numpy(data.labels(indices)),
                training=training,
                privacy=privacy,
                total_rounds=5,
                seed=seed + i,
            )
            client = FederationClient(served.target, name, max_message_bytes=MAX_MESSAGE_BYTES)
            client.join(num_samples=samples_per_hospital)
            clients.append(client)
            trainers.append(trainer)
        started = time.perf_counter()
        pending = served.spawn(served.server.run_round(deadline_s=3600))
        for client, trainer in zip(clients, trainers, strict=True):
            client.round_status(after_round=0, wait_s=10)
            fetch_started = time.perf_counter()
            global_state = client.global_model(1)
            split["transport_s"] += time.perf_counter() - fetch_started
            result = trainer.train_round(global_state)
            split["local_training_s"] += result.train_seconds
            update = {k: result.state[k] - global_state[k] for k in global_state}
            timing = client.submit_update(
                1,
                update,
                num_samples=result.num_samples,
                epsilon=result.epsilon,
                train_seconds=result.train_seconds,
                loss=result.loss,
            )
            split["serialization_s"] += timing.serialize_seconds + timing.server_seconds
            split["transport_s"] += timing.transport_seconds
            update_bytes += timing.update_bytes
            client.close()
        outcome = pending.result(3600)
        total = time.perf_counter() - started
    split["aggregation_s"] = outcome.aggregation_seconds
    return {
        "hospitals": hospitals,
        "samples_per_hospital": samples_per_hospital,
        "model": model_name,
        "image_size": image_size,
        "round_seconds": total,
        "time_split_s": split,
        "time_split_fraction": {key: value / total for key, value in split.items()},
        "update_bytes_per_hospital": update_bytes // hospitals,
        "note": "serialization_s = client encode + server decode/check; transport_s = model "
        "fetch + update upload on loopback; hospitals ran one after another",
    }
