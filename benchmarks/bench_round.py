"""One federated round's wall time, split into local training, serialization, transport and
aggregation, measured over real gRPC on 127.0.0.1 with the product's own server and client.

Hospitals run one after another (not as Ray actors) so each phase is timed without the others
competing for the two cores; the split, not the total, is the point.

:func:`measure_secure_overhead` runs the same round twice with the hospitals' real loop
(:func:`securemed.hospital.run_hospital`) in threads, once plain and once under secure
aggregation, and compares the wall times.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from securemed.config import PrivacyConfig, TrainingConfig
from securemed.data.synthetic import SyntheticChestXRays
from securemed.federation.coordinator import FederationCoordinator, HospitalReport
from securemed.federation.secure_round import SecureSettings
from securemed.hospital import run_hospital
from securemed.models import build_model
from securemed.pki import init_pki, load_identity
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
    names = [f"hospital-{i + 1}" for i in range(hospitals)]
    initial, trainers = _hospitals(names, samples_per_hospital, image_size, model_name, seed)
    coordinator = FederationCoordinator(hospitals=names, global_state=initial, total_rounds=1)
    split = dict.fromkeys(("local_training_s", "serialization_s", "transport_s"), 0.0)
    update_bytes = 0
    served, clients = _serve(coordinator, names, samples_per_hospital)
    with served:
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
            report = HospitalReport(
                num_samples=result.num_samples,
                epsilon=result.epsilon,
                update_bytes=0,
            )
            timing = client.submit_update(1, update, report)
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


SECURE_ROUND_RATIO_TARGET = 1.5


def measure_secure_overhead(
    *,
    hospitals: int = 4,
    samples_per_hospital: int = 500,
    image_size: int = 64,
    model_name: str = "simple_cnn",
    seed: int = 0,
) -> dict[str, Any]:
    """The same DP round, plain and under secure aggregation, hospitals in parallel threads."""
    torch.set_num_threads(1)
    names = [f"hospital-{i + 1}" for i in range(hospitals)]
    seconds: dict[str, float] = {}
    for mode in ("plain", "secure"):
        initial, trainers = _hospitals(names, samples_per_hospital, image_size, model_name, seed)
        coordinator = FederationCoordinator(
            hospitals=names,
            global_state=initial,
            total_rounds=1,
            secure=SecureSettings() if mode == "secure" else None,
        )
        served, clients = _serve(coordinator, names, samples_per_hospital)
        with served:
            started = time.perf_counter()
            pending = served.spawn(served.server.run_round(deadline_s=3600))
            threads = [
                threading.Thread(
                    target=run_hospital,
                    args=(client, trainer),
                    kwargs={"num_samples": samples_per_hospital},
                )
                for client, trainer in zip(clients, trainers, strict=True)
            ]
            for thread in threads:
                thread.start()
            outcome = pending.result(3600)
            seconds[mode] = time.perf_counter() - started
            served.call(served.server.finish())
            for thread in threads:
                thread.join(60)
            for client in clients:
                client.close()
        if len(outcome.participants) != hospitals:
            raise RuntimeError(f"the {mode} round lost hospitals: {outcome.missing}")
    ratio = seconds["secure"] / seconds["plain"]
    return {
        "hospitals": hospitals,
        "samples_per_hospital": samples_per_hospital,
        "model": model_name,
        "plain_round_s": seconds["plain"],
        "secure_round_s": seconds["secure"],
        "ratio": ratio,
        "target_ratio": SECURE_ROUND_RATIO_TARGET,
        "meets_target": ratio <= SECURE_ROUND_RATIO_TARGET,
        "note": "real gRPC with mutual TLS on loopback, DP-SGD training included, hospitals "
        "as threads with one torch thread each",
    }


def _hospitals(
    names: list[str], samples: int, image_size: int, model_name: str, seed: int
) -> tuple[dict[str, torch.Tensor], list[LocalTrainer]]:
    """The initial global model and one DP trainer per hospital on disjoint synthetic films."""
    data = SyntheticChestXRays(image_size=image_size, seed=seed)
    torch.manual_seed(seed)
    initial = build_model(model_name, num_classes=data.num_classes).state_dict()
    trainers = []
    for i in range(len(names)):
        indices = np.arange(i * samples, (i + 1) * samples)
        trainers.append(
            LocalTrainer(
                build_model(model_name, num_classes=data.num_classes),
                torch.from_numpy(data.images(indices)),
                torch.from_numpy(data.labels(indices)),
                training=TrainingConfig(model=model_name, batch_size=64),
                privacy=PrivacyConfig(target_epsilon=8.0),
                total_rounds=5,
                insecure_seed=seed + i,
            )
        )
    return initial, trainers


def _serve(
    coordinator: FederationCoordinator, names: list[str], samples: int
) -> tuple[ThreadedFederationServer, list[FederationClient]]:
    """Serve ``coordinator`` with mutual TLS from a throw-away PKI; every hospital joined."""
    with tempfile.TemporaryDirectory() as folder:
        layout = init_pki(Path(folder) / "pki", names)
        served = ThreadedFederationServer(
            coordinator,
            identity=load_identity(layout, "aggregator"),
            max_message_bytes=MAX_MESSAGE_BYTES,
        )
        clients = []
        for name in names:
            client = FederationClient(
                served.target, load_identity(layout, name), max_message_bytes=MAX_MESSAGE_BYTES
            )
            client.join(num_samples=samples)
            clients.append(client)
    return served, clients
