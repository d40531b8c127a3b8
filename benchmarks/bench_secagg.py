"""Secure aggregation at the protocol level (no network, no training), and its mask generator.

* For n = 8, 32, 128, 512 hospitals and a 1M-parameter update: the clients' and the server's
  time and the bytes each client sends, beside plain aggregation (the server adding n
  vectors). SecAgg+ should grow like n log n on the server and log n per client.
* The consistency check's share of each round (target: under 10 % of a secure round at
  n = 8 and n = 128): what signing the survivor set and checking the neighbours' signatures
  cost the clients and the server, against the whole round.
* The server's unmasking with 50 hospitals, 1M parameters and 10 % dropouts (target < 0.5 s).
* The mask generator's throughput beside raw AES-256-CTR on the same machine.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from securemed.pki import init_pki, load_identity
from securemed.secagg.local import LocalRoundCost, run_local_round
from securemed.secagg.params import SecAggParams
from securemed.secagg.prg import MaskGenerator

UNMASK_TARGET_S = 0.5
CONSISTENCY_TARGET = 0.10


def _identities(root: Path, count: int) -> dict[str, Any]:
    names = [f"h{i:04d}" for i in range(count)]
    layout = init_pki(root, names)
    return {name: load_identity(layout, name) for name in names}


def measure_protocol(counts: tuple[int, ...], *, length: int) -> list[dict[str, Any]]:
    """One secure sum per n; every hospital uploads the same levels (memory, not realism)."""
    rows = []
    levels = np.random.default_rng(0).integers(0, 2**16, size=length, dtype=np.uint32)
    with tempfile.TemporaryDirectory() as folder:
        identities = _identities(Path(folder) / "pki", max(counts))
        for count in counts:
            names = sorted(identities)[:count]
            params = SecAggParams.for_round(count)
            result, cost = run_local_round(
                dict.fromkeys(names, levels), params, {n: identities[n] for n in names}
            )
            assert np.array_equal(result.levels, levels * np.uint32(count))
            started = time.perf_counter()
            total = np.zeros(length, dtype=np.uint32)
            for _ in names:
                np.add(total, levels, out=total)
            plain_s = time.perf_counter() - started
            rows.append(
                {
                    "hospitals": count,
                    "neighbours": params.neighbours,
                    "threshold": params.threshold,
                    "parameters": length,
                    "client_seconds_mean": statistics.fmean(cost.client_seconds.values()),
                    "client_bytes_sent_mean": statistics.fmean(cost.client_bytes_sent.values()),
                    "plain_client_bytes_sent": 4 * length,
                    "server_seconds": cost.server_seconds,
                    "plain_server_seconds": plain_s,
                    "server_over_plain": cost.server_seconds / plain_s,
                    **_consistency_share(cost),
                }
            )
    return rows


def _consistency_share(cost: LocalRoundCost) -> dict[str, Any]:
    """The consistency check beside the whole round: a client's time plus the server's (the
    clients work in parallel, the server serially: together, the round's critical path)."""
    client = statistics.fmean(cost.consistency_client_seconds.values())
    round_seconds = statistics.fmean(cost.client_seconds.values()) + cost.server_seconds
    share = (client + cost.consistency_server_seconds) / round_seconds
    return {
        "consistency_client_seconds_mean": client,
        "consistency_server_seconds": cost.consistency_server_seconds,
        "consistency_share_of_round": share,
        "consistency_target": CONSISTENCY_TARGET,
        "consistency_meets_target": share < CONSISTENCY_TARGET,
    }


def measure_unmask(*, hospitals: int, length: int, dropout: float) -> dict[str, Any]:
    """The server's final step (reconstruct seeds and keys, remove every mask)."""
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as folder:
        identities = _identities(Path(folder) / "pki", hospitals)
        names = sorted(identities)
        levels = {n: rng.integers(0, 2**16, size=length, dtype=np.uint32) for n in names}
        dropped = set(names[: round(dropout * hospitals)])
        params = SecAggParams.for_round(hospitals)
        result, cost = run_local_round(levels, params, identities, drop_after_sharing=dropped)
    survivors = [n for n in names if n not in dropped]
    assert np.array_equal(result.levels, np.sum([levels[n] for n in survivors], 0, np.uint32))
    return {
        "hospitals": hospitals,
        "parameters": length,
        "dropped": len(dropped),
        "neighbours": params.neighbours,
        "unmask_seconds": cost.unmask_seconds,
        "target_s": UNMASK_TARGET_S,
        "meets_target": cost.unmask_seconds < UNMASK_TARGET_S,
    }


def measure_mask_throughput(*, length: int, repeats: int) -> dict[str, Any]:
    """GB/s of :class:`MaskGenerator` and of a plain AES-256-CTR encryptor on zeros."""
    generator = MaskGenerator(length)
    keys = [os.urandom(32) for _ in range(repeats)]
    generator.mask(keys[0])  # warm up
    started = time.perf_counter()
    for key in keys:
        generator.mask(key)
    ours = time.perf_counter() - started
    zeros = bytes(4 * length)
    started = time.perf_counter()
    for key in keys:
        Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update(zeros)
    raw = time.perf_counter() - started
    gigabytes = 4 * length * repeats / 1e9
    return {
        "mask_bytes": 4 * length,
        "repeats": repeats,
        "mask_generator_gb_per_s": gigabytes / ours,
        "raw_aes256_ctr_gb_per_s": gigabytes / raw,
        "generator": "AES-256-CTR keystream into a reused buffer (cryptography/OpenSSL)",
    }
