"""A curious aggregator holds the config and every message hospitals send it over gRPC with
mutual TLS, and tries to learn what it may not: a hospital's training loss or the norm of its
raw update (absent from every message: only the declared count, the epsilon and the privacy
unit travel beside the masked update), and the update itself from a client-level-DP round with
the fewest survivors (its best estimate is no closer than the DP noise allows).

The hospitals run the production loop (:class:`securemed.hospital.HospitalSite`) in threads;
the aggregator is the production server with every request recorded on arrival."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from google.protobuf.message import Message

import securemed.transport.threaded as threaded
from securemed.config import parse_config
from securemed.federation.coordinator import FederationCoordinator
from securemed.federation.from_config import secure_settings
from securemed.hospital import HospitalSite
from securemed.models import build_model
from securemed.privacy.client_dp import client_dp_policy
from securemed.secagg.params import SecAggParams
from securemed.secagg.quantize import level_scale
from securemed.transport.client import FederationClient
from securemed.transport.server import FederationServer

pytestmark = pytest.mark.slow  # two hospitals train a small CNN over real gRPC (seconds)

LIMIT = 1 << 24
RPCS = (
    "Join",
    "GetRoundStatus",
    "GetGlobalModel",
    "SubmitUpdate",
    "DeclineRound",
    "AdvertiseKeys",
    "ShareKeys",
    "SubmitMaskedUpdate",
    "Unmask",
)


class RecordingServer(FederationServer):
    """The production server, keeping a copy of every request as it arrives."""

    received: ClassVar[list[tuple[str, Message]]] = []


def _recording(name: str) -> Any:
    original = getattr(FederationServer, name)

    async def record(self: FederationServer, request: Message, context: Any) -> Any:
        copy = type(request)()
        copy.CopyFrom(request)
        RecordingServer.received.append((name, copy))
        return await original(self, request, context)

    return record


for _rpc in RPCS:
    setattr(RecordingServer, _rpc, _recording(_rpc))


def _config(secure: dict[str, Any]) -> Any:
    return parse_config(
        {
            "training": {"batch_size": 8, "local_epochs": 1},
            "privacy": {"target_epsilon": 8.0, "accountant": "rdp", "unit": "record"},
            "federation": {"hospitals": 2, "rounds": 1},
            "secure_aggregation": {"min_participants": 2, **secure},
        }
    )


def _data(index: int) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(index)
    images = torch.from_numpy(rng.random((64, 1, 16, 16), dtype=np.float32))
    labels = (rng.random((64, 3)) < 0.5).astype(np.float32)
    return images, labels


def _run(config: Any, pki, tmp_path, monkeypatch) -> dict[str, Any]:
    """One secure round of two hospitals; returns what both sides saw."""
    RecordingServer.received = []
    monkeypatch.setattr(threaded, "FederationServer", RecordingServer)
    torch.manual_seed(0)
    initial = build_model("simple_cnn", num_classes=3, in_channels=1).state_dict()
    names = ["hospital-1", "hospital-2"]
    coordinator = FederationCoordinator(
        hospitals=names,
        global_state=initial,
        total_rounds=1,
        secure=secure_settings(config.secure_aggregation),
    )
    results: dict[str, Any] = {}
    with threaded.ThreadedFederationServer(
        coordinator, identity=pki.aggregator, max_message_bytes=LIMIT
    ) as served:

        def hospital(index: int) -> None:
            name = names[index]
            images, labels = _data(index)
            with (
                HospitalSite(
                    config,
                    hospital=name,
                    images=images,
                    labels=labels,
                    patient_ids=None,
                    run_id="curious",
                    data_file=None,
                    run_folder=tmp_path,
                ) as site,
                FederationClient(served.target, pki.identity(name), max_message_bytes=LIMIT) as c,
            ):
                site.run(
                    c,
                    poll_seconds=1.0,
                    on_round=lambda _round, result: results.__setitem__(name, result),
                )

        with ThreadPoolExecutor(2) as pool:
            running = [pool.submit(hospital, i) for i in range(2)]
            served.call(served.server.wait_for_hospitals(2, timeout_s=60), timeout_s=70)
            outcome = served.call(served.server.run_round(deadline_s=120), timeout_s=180)
            served.call(served.server.finish())
            for future in running:
                future.result(120)
        final = served.server.coordinator.global_state
    return {
        "initial": initial,
        "final": final,
        "outcome": outcome,
        "results": results,
        "received": list(RecordingServer.received),
    }


def _numbers(message: Message) -> list[float]:
    """Every number a message carries, at any depth (what a curious reader can look at)."""
    found: list[float] = []
    for _field, value in message.ListFields():
        scalar = isinstance(value, str | bytes | Message) or not hasattr(value, "__iter__")
        for item in [value] if scalar else value:
            if isinstance(item, Message):
                found += _numbers(item)
            elif isinstance(item, int | float) and not isinstance(item, bool):
                found.append(float(item))
    return found


def _flat(state: dict[str, torch.Tensor]) -> np.ndarray:
    return np.concatenate([t.detach().double().flatten().numpy() for t in state.values()])


def test_no_loss_or_raw_norm_reaches_the_aggregator(pki, tmp_path, monkeypatch) -> None:
    seen = _run(_config({"enabled": True}), pki, tmp_path, monkeypatch)
    assert seen["outcome"].participants == ("hospital-1", "hospital-2")
    uploads = [m for name, m in seen["received"] if name == "SubmitMaskedUpdate"]
    assert len(uploads) == 2
    for upload in uploads:
        assert {f.name for f, _ in upload.report.ListFields()} == {
            "num_samples",
            "epsilon",
            "privacy_unit",
        }
    numbers = [x for _, message in seen["received"] for x in _numbers(message)]
    initial = _flat(seen["initial"])
    for result in seen["results"].values():
        secrets = [result.loss, float(np.linalg.norm(_flat(result.state) - initial))]
        secrets.append(result.train_seconds)
        for secret in secrets:
            assert all(not math.isclose(x, secret, rel_tol=1e-6) for x in numbers), secret


def test_a_client_dp_round_hides_each_update_as_well_as_its_noise_allows(
    pki, tmp_path, monkeypatch
) -> None:
    """Two survivors, each adding half the Skellam variance. The aggregator's best estimate of
    hospital 1's (norm-bounded) update u from the released sum S = u + v + N is S itself, and

        cos(S, u) <= (2C + 6 sigma) / (sigma (sqrt(d) - 6) - 2C)

    with probability above 1 - 1e-8: |<N, u>| <= 6 sigma ||u||, ||N|| >= sigma (sqrt(d) - 6),
    and ||u||, ||v|| <= C, where sigma is the noise's standard deviation in update units."""
    config = _config({"norm_bound": 1.0, "client_dp_noise_multiplier": 1.0, "min_survivors": 2})
    seen = _run(config, pki, tmp_path, monkeypatch)
    assert seen["outcome"].participants == ("hospital-1", "hospital-2")
    initial = _flat(seen["initial"])
    # the coordinator applies the mean: the released sum is twice the step it took
    released = 2 * (_flat(seen["final"]) - initial)
    own = _flat(seen["results"]["hospital-1"].state) - initial
    own = own * min(1.0, 1.0 / float(np.linalg.norm(own)))  # the bound the hospital enforced
    d = released.size
    policy = client_dp_policy(config.secure_aggregation, delta=config.privacy.delta)
    assert policy is not None
    params = secure_settings(config.secure_aggregation).params_for(2)  # type: ignore[union-attr]
    assert isinstance(params, SecAggParams)
    parameters = policy.round_parameters(params, d)
    sigma = math.sqrt(parameters["variance"]) / level_scale(clip=params.clip, bits=params.bits)
    bound = (2 * 1.0 + 6 * sigma) / (sigma * (math.sqrt(d) - 6) - 2 * 1.0)
    cosine = float(released @ own / (np.linalg.norm(released) * np.linalg.norm(own)))
    assert abs(cosine) <= bound, (cosine, bound)
    assert bound < 0.2  # the bound says something: the sum of two bare updates scores ~0.7
