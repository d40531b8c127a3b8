"""Federated DP training of a chest X-ray classifier, on Ray, over gRPC.

    python jobs/federated.py [--config configs/federated.yaml] [--output DIR]
    python jobs/federated.py --resume DIR
    ray job submit --working-dir . -- python jobs/federated.py --config configs/federated.yaml

Reads as the story of a run: validate the config, connect to Ray (or start a local one), make
(or load) the federation's certificates, split the training set across hospital actors, start
the aggregator's gRPC server (mutual TLS 1.3, secure aggregation by default), run the rounds
(evaluating and checkpointing after each), train the central non-DP baseline on the same
data, then write metrics.json, a checkpoint per round, progress.png and the audit log to the
output folder (and, round by round, TensorBoard scalars under its ``tensorboard/``).

Privacy is each hospital's own business, decided by the core hospital loop it shares with
``python -m securemed.hospital``: its own ledger (for generated data, which is public by
construction, one per hospital under ``privacy/`` in the run folder; for a real data file, in
its state folder, shared by every run on that data), its budget, its policy, its secret noise.
This job only wires actors together and reads what the aggregator sees and what hospitals
publish. A crash never lets a hospital overspend: a hospital writes its round to its ledger
before its update leaves, rebuilds its accountant from the ledger when it restarts, and sits
out a round it had already reserved, so ``--resume`` neither charges a round twice nor
skips one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import ray
import torch

from actors.aggregator import Aggregator
from actors.hospital import HospitalNode
from jobs.ray_setup import connect_ray
from jobs.run_folder import resolve_run
from securemed.config import JobConfig, load_config
from securemed.data.from_config import build_source, partition_for
from securemed.data.sources import ImageSource
from securemed.errors import SecureMedError
from securemed.evaluation import evaluate
from securemed.evaluation.tensorboard_log import TENSORBOARD_DIR, ScalarLog
from securemed.federation.results import (
    evaluation_scalars,
    latest_checkpoint,
    plot_progress,
    round_scalars,
    save_checkpoint,
    write_json,
)
from securemed.models import build_model
from securemed.pki import FederationIdentity, PkiLayout, init_pki, load_identity
from securemed.privacy import train_central
from securemed.privacy.randomness import NOT_A_GUARANTEE
from securemed.transport import (
    CIPHER_SUITES_VARIABLE,
    QUIET_VERBOSITY,
    TLS12_DISABLED_SUITES,
    VERBOSITY_VARIABLE,
)

AUDIT_FILE = "audit.jsonl"
JOIN_TIMEOUT_S = 600.0
#: every actor that speaks gRPC gets the TLS 1.3-only setting before it imports grpc, and this
#: process's gRPC verbosity (quiet unless the operator chose one; see securemed.transport)
GRPC_ENV = {
    "env_vars": {
        CIPHER_SUITES_VARIABLE: TLS12_DISABLED_SUITES,
        VERBOSITY_VARIABLE: os.environ.get(VERBOSITY_VARIABLE, QUIET_VERBOSITY),
    }
}


def smoke_config(config: JobConfig) -> JobConfig:
    """Shrink a config to a seconds-long run (same code paths, tiny data)."""
    return config.model_copy(
        update={
            "data": config.data.model_copy(update={"train_samples": 240, "test_samples": 120}),
            "partition": config.partition.model_copy(update={"min_samples": 16}),
            # a batch counts patients under patient-level DP; a smoke hospital has ~20
            "training": config.training.model_copy(update={"batch_size": 4}),
            "federation": config.federation.model_copy(update={"rounds": 2}),
            "baseline": config.baseline.model_copy(update={"epochs": 1}),
        }
    )


def hospital_names(count: int) -> list[str]:
    return [f"hospital-{i + 1}" for i in range(count)]


def initial_model_state(config: JobConfig, num_classes: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(config.federation.seed)
    model = build_model(config.training.model, num_classes=num_classes)
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def evaluate_state(
    config: JobConfig,
    state: dict[str, torch.Tensor],
    test: tuple[torch.Tensor, np.ndarray],
    class_names: tuple[str, ...],
) -> dict[str, Any]:
    model = build_model(config.training.model, num_classes=len(class_names))
    model.load_state_dict(state)
    images, labels = test
    return evaluate(model, images, labels, class_names=class_names).to_dict()


@ray.remote
def central_baseline(
    config: JobConfig, source: ImageSource, indices: np.ndarray, num_classes: int
) -> dict[str, torch.Tensor]:
    """The centrally trained, non-private model on the union of the hospitals' data."""
    torch.set_num_threads(
        max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
    )
    torch.manual_seed(config.federation.seed)
    model = build_model(config.training.model, num_classes=num_classes)
    images = torch.from_numpy(source.images("train", indices))
    labels = torch.from_numpy(source.labels("train")[indices])
    trained = train_central(
        model,
        images,
        labels,
        training=config.training,
        epochs=config.baseline.epochs,
        seed=config.federation.seed,
    )
    return {name: tensor.detach().clone() for name, tensor in trained.state_dict().items()}


def federation_pki(config: JobConfig, output: Path) -> PkiLayout:
    """The configured certificates, or a CA made for this run (kept in the run folder)."""
    if config.security.pki_dir is not None:
        return PkiLayout(config.security.pki_dir)
    layout = PkiLayout(output / "pki")
    if not layout.ca_cert.exists():
        init_pki(layout.root, hospital_names(config.federation.hospitals))
        print(f"made a federation CA and certificates in {layout.root}", flush=True)
    return layout


#: what a pinned actor asks of its site's resource: a marker, not a capacity, so any number of
#: one site's actors fit on its nodes while no other site's node can take them
SITE_RESOURCE_DEMAND = 0.001


def site_resources(config: JobConfig, name: str) -> dict[str, float]:
    """The custom Ray resource that pins ``name``'s actor (a hospital or "aggregator") to its
    own site's nodes; empty when the config does not pin."""
    prefix = config.federation.site_resource_prefix
    return {} if prefix is None else {f"{prefix}{name}": SITE_RESOURCE_DEMAND}


def hospital_identity(
    config: JobConfig, pki: PkiLayout, name: str
) -> FederationIdentity | Callable[[], FederationIdentity]:
    """A hospital's identity, or, when it is pinned to its site, the way to read it there: the
    key then stays on its site's nodes (its own mounted secret) and never passes this driver."""
    if config.federation.site_resource_prefix is None:
        return load_identity(pki, name)
    return partial(load_identity, pki, name)


def hospital_options(config: JobConfig, name: str, num_cpus: float) -> dict[str, Any]:
    """The Ray actor options of hospital ``name``."""
    return {
        "num_cpus": num_cpus,
        "max_concurrency": 2,
        "name": None,
        "runtime_env": GRPC_ENV,
        "resources": site_resources(config, name),
    }


def start_hospitals(
    config: JobConfig,
    source: ImageSource,
    partitions: list[np.ndarray],
    pki: PkiLayout,
    output: Path,
) -> dict[str, Any]:
    names = hospital_names(config.federation.hospitals)
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    share = max(0.05, min(1.0, (cpus - 0.25) / len(names)))
    return {
        name: HospitalNode.options(**hospital_options(config, name, share)).remote(
            identity=hospital_identity(config, pki, name),
            config=config,
            source=source,
            indices=indices,
            run_id=output.name,
            run_folder=output,
            attacks=[a for a in config.attacks if a.hospital == i + 1],
        )
        for i, (name, indices) in enumerate(zip(names, partitions, strict=True))
    }


def round_record(result: dict[str, Any], test_metrics: dict[str, Any]) -> dict[str, Any]:
    """One round as the aggregator saw it: who took part, what it cost, how good the model is.

    Epsilons are what each hospital reported with its update (computed from public values);
    nothing here comes from inside a hospital.
    """
    outcome = result["outcome"]
    reports = outcome.reports
    return {
        "round": outcome.round,
        "participants": list(outcome.participants),
        "selected": list(outcome.selected),
        "declined": list(outcome.declined),
        "missed_deadline": list(outcome.missing),
        "aborted": outcome.aborted,
        "culprits": [
            {"hospital": culprit.hospital, "fault": culprit.fault} for culprit in outcome.culprits
        ],
        "flagged_update_norms": list(outcome.anomalies.flagged) if outcome.anomalies else [],
        "secure_buckets": [list(bucket) for bucket in outcome.buckets],
        "test": test_metrics,
        "epsilon": {name: report.epsilon for name, report in reports.items()},
        "seconds": result["seconds"],
        "update_bytes": sum(report.update_bytes for report in reports.values()),
        "aggregation_seconds": outcome.aggregation_seconds,
    }


def _score(value: float | None) -> str:
    """A metric for people: macro-AUROC is undefined when a class has one label value only."""
    return "n/a" if value is None else f"{value:.3f}"


def print_round(record: dict[str, Any], total_rounds: int) -> None:
    spent = [value for value in record["epsilon"].values() if value is not None]
    eps = f"max epsilon {max(spent):.2f}" if spent else "no DP"
    print(
        f"round {record['round']}/{total_rounds}  "
        f"participants {len(record['participants'])}/{len(record['selected'])}  "
        f"macro-AUROC {_score(record['test']['macro_auroc'])}  "
        f"accuracy {record['test']['accuracy']:.3f}  {eps}  {record['seconds']:.1f} s",
        flush=True,
    )


def run_federation(config: JobConfig, output: Path, *, resume: bool) -> dict[str, Any]:
    """Run (or continue) the federation described by ``config``, writing into ``output``."""
    started = time.perf_counter()
    source = build_source(config.data)
    class_names = source.class_names
    patient_ids = source.patient_ids("train") if config.privacy.unit == "patient" else None
    partitions = partition_for(
        config.partition, source.labels("train"), config.federation, patient_ids=patient_ids
    )
    test = (
        torch.from_numpy(source.images("test", np.arange(len(source.labels("test"))))),
        source.labels("test"),
    )

    checkpoint = latest_checkpoint(output) if resume else None
    if checkpoint:
        completed, saved = checkpoint
        global_state, records, initial_test = (
            saved["global_state"],
            saved["rounds"],
            saved["initial_test"],
        )
        print(f"resuming after round {completed} from {output}", flush=True)
    else:
        completed, records = 0, []
        global_state = initial_model_state(config, len(class_names))
        initial_test = evaluate_state(config, global_state, test, class_names)
    if config.privacy.insecure_reproducible_seed is not None:
        print(f"warning: {NOT_A_GUARANTEE}", flush=True)

    names = hospital_names(config.federation.hospitals)
    pki = federation_pki(config, output)
    # Each hospital rebuilds its accountant from its own ledger: after a crash it continues
    # from what it reserved, and sits out any round it had already reserved.
    hospitals = start_hospitals(config, source, partitions, pki, output)
    max_message_bytes = config.federation.max_message_mb * 1024 * 1024
    aggregator = Aggregator.options(
        num_cpus=0.25, runtime_env=GRPC_ENV, resources=site_resources(config, "aggregator")
    ).remote(
        hospitals=names,
        global_state=global_state,
        total_rounds=config.federation.rounds,
        participation=config.federation.participation,
        seed=config.federation.seed,
        completed_rounds=completed,
        max_message_bytes=max_message_bytes,
        bind_host=config.federation.bind_host,
        identity=load_identity(pki, "aggregator"),
        robust=config.robust,
        secure=config.secure_aggregation,
        audit_log=output / AUDIT_FILE,
        # `securemed pki revoke` on this CA folder refuses a hospital from its next call
        revocation_list=pki.revocation_list if pki.revocation_list.exists() else None,
    )
    target = ray.get(aggregator.start.remote())
    runs = [
        actor.run.remote(target, max_message_bytes, config.security.server_name)
        for actor in hospitals.values()
    ]
    print(f"aggregator at {target}; waiting for {len(names)} hospitals", flush=True)
    join = aggregator.wait_for_hospitals.remote(len(names), JOIN_TIMEOUT_S)
    ready, _ = ray.wait([join, *runs], num_returns=1)
    if ready[0] != join:  # a hospital stopped before the federation began: say why
        try:
            ray.get(ready[0])
        except ray.exceptions.RayError as error:
            raise SecureMedError(f"a hospital failed before the first round: {error}") from None
    ray.get(join)

    # TensorBoard, by round (0: the initial model); a resumed run redoes the rounds after its
    # checkpoint, and its marker makes TensorBoard drop what the stopped run logged of them
    board = ScalarLog(output / TENSORBOARD_DIR, purge_step=completed + 1 if completed else 0)
    if not completed:
        board.write(0, evaluation_scalars(initial_test))
    for _ in range(completed + 1, config.federation.rounds + 1):
        result = ray.get(aggregator.run_round.remote(config.federation.round_deadline_s))
        global_state = result["global_state"]
        test_metrics = evaluate_state(config, global_state, test, class_names)
        aggregator.record_evaluation.remote(test_metrics)
        record = round_record(result, test_metrics)
        records.append(record)
        print_round(record, config.federation.rounds)
        board.write(record["round"], round_scalars(record))
        save_checkpoint(
            output,
            record["round"],
            {"global_state": global_state, "rounds": records, "initial_test": initial_test},
        )
        write_json(output / "metrics.json", {"initial": {"test": initial_test}, "rounds": records})
    board.close()

    ray.get(aggregator.finish.remote())
    summaries = ray.get(runs)
    # which Ray node each actor ran on: with site pinning, every hospital on its own site's
    placement = dict(
        zip(
            ["aggregator", *hospitals],
            ray.get(
                [aggregator.node_id.remote(), *(a.node_id.remote() for a in hospitals.values())]
            ),
            strict=True,
        )
    )
    ray.get(aggregator.stop.remote())
    ray.get([actor.stop.remote() for actor in hospitals.values()])
    for actor in [*hospitals.values(), aggregator]:
        ray.kill(actor)

    baseline = None
    if config.baseline.enabled:
        print("training the central non-DP baseline on the same data", flush=True)
        union = np.sort(np.concatenate(partitions))
        baseline_state = ray.get(
            central_baseline.options(num_cpus=1).remote(config, source, union, len(class_names))
        )
        baseline = evaluate_state(config, baseline_state, test, class_names)

    accounting = {summary.hospital: summary.accounting for summary in summaries}
    guarantee = config.privacy.insecure_reproducible_seed is None and all(
        entry is None or entry.get("epsilon_is_guarantee", True) for entry in accounting.values()
    )
    metrics = {
        "initial": {"test": initial_test},
        "rounds": records,
        "final": records[-1]["test"] if records else initial_test,
        "baseline": {"central_non_dp": baseline} if baseline else {},
        "privacy": {
            "enabled": config.privacy.enabled,
            "delta": config.privacy.delta,
            "accountant": config.privacy.accountant,
            "unit": config.privacy.unit,
            "budget_epsilon": config.privacy.budget,
            "epsilon_is_guarantee": guarantee,
            **({} if guarantee else {"warning": NOT_A_GUARANTEE}),
            # each hospital's lifetime epsilon on its data, from its own ledger
            "epsilon": {
                name: entry["epsilon"] if entry else None for name, entry in accounting.items()
            },
            "client_level_epsilon": {
                name: entry.get("client_level_epsilon") if entry else None
                for name, entry in accounting.items()
            }
            if config.secure_aggregation.client_dp_noise_multiplier is not None
            else None,
            # what each hospital publishes to let anyone recompute its epsilon
            "hospitals": accounting,
        },
        "secure_aggregation": config.secure_aggregation.enabled,
        "aggregation_rule": config.robust.rule,
        "hospitals": {
            s.hospital: {
                "rounds_submitted": s.rounds_submitted,
                "rounds_missed": s.rounds_missed,
                "rounds_aborted": s.rounds_aborted,
                "rounds_declined": s.rounds_declined,
            }
            for s in summaries
        },
        "placement": placement,
        "wall_seconds": time.perf_counter() - started,
    }
    write_json(output / "metrics.json", metrics)
    plot_progress(records, baseline["macro_auroc"] if baseline else None, output / "progress.png")
    return metrics


def print_summary(metrics: dict[str, Any], output: Path) -> None:
    final = metrics["final"]
    print("\n== SecureMed federated run ==")
    label = "federated (DP):" if metrics["privacy"]["enabled"] else "federated (no DP):"
    print(
        f"{label:<20}macro-AUROC {_score(final['macro_auroc'])}  accuracy {final['accuracy']:.3f}"
    )
    baseline = metrics["baseline"].get("central_non_dp")
    if baseline:
        print(
            f"{'central (non-DP):':<20}macro-AUROC {_score(baseline['macro_auroc'])}  "
            f"accuracy {baseline['accuracy']:.3f}"
        )
    privacy = metrics["privacy"]
    for hospital, epsilon in privacy["epsilon"].items():
        shown = f"{epsilon:.2f}" if epsilon is not None else "n/a (DP off)"
        print(
            f"epsilon {hospital}: {shown} at delta {privacy['delta']:g} ({privacy['unit']}-level)"
        )
    if not privacy["epsilon_is_guarantee"]:
        print(f"warning: {NOT_A_GUARANTEE}")
    print(f"wall time: {metrics['wall_seconds']:.1f} s")
    print(f"results: {output}/metrics.json, {output}/progress.png, {output}/checkpoints/")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="YAML config (defaults apply when omitted)")
    parser.add_argument(
        "--output", type=Path, help="results folder (default runs/federated-<time>)"
    )
    parser.add_argument("--resume", type=Path, help="continue the stopped run in this folder")
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
    parser.add_argument("--smoke-test", action="store_true", help="tiny data, 2 rounds: seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config, output = resolve_run(args, load=load_config, smoke=smoke_config, prefix="federated")
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started_ray = connect_ray(args.address)
    try:
        metrics = run_federation(config, output, resume=args.resume is not None)
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if started_ray:
            ray.shutdown()
    print_summary(metrics, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
