"""Privacy audits: what a membership-inference attacker learns from SecureMed's models.

    python jobs/audit.py notes --output DIR [--config FILE] [--model-path DIR] [--models K]
    python jobs/audit.py notes --resume DIR
    ray job submit --working-dir . -- python jobs/audit.py notes --output DIR

``notes``: the clinical-notes language-model study (:mod:`securemed.audit.notes_study`).
Generate the notes and canaries, pretrain the base LM on public notes (or load one from
``--model-path``), then fine-tune ``K`` copies per variant (baseline, regularized, DP-SGD) on
random halves of the audited notes, each copy a Ray task, two at a time on a 2-core laptop
and as many as the cluster has CPUs elsewhere. Every copy is attacked in turn with the others
as its shadow models (loss threshold, NLL gap, LiRA online and offline), canaries give an
empirical epsilon lower bound beside the accountant's, and ``DIR`` receives ``REPORT.md``,
``comparison.json``, ``metadata.json``, per-variant score CSVs and log-scale ROC plots.

Nothing is lost on a crash: each finished copy's NLLs are saved under ``DIR/models`` as it
lands, and ``--resume DIR`` trains only the copies still missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import opacus
import ray
import torch
import transformers

from jobs.ray_setup import connect_ray
from jobs.run_folder import resolve_run
from securemed.audit.notes_study import (
    BaseTraining,
    MemberOutcome,
    NotesAuditConfig,
    NotesStudy,
    prepare_study,
    pretrain_base,
    reference_nll,
    train_member_model,
)
from securemed.audit.study_analysis import audit_variant
from securemed.audit.study_report import VariantRecord, write_study
from securemed.config import load_as, validate_as
from securemed.durable import atomic_write
from securemed.errors import SecureMedError

MODELS_DIR = "models"
BASE_FILE = "base.pt"


# -- Ray tasks -------------------------------------------------------------------------------


@ray.remote(num_cpus=1, max_retries=1)
def pretrain_task(study: NotesStudy) -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    return pretrain_base(study).state


@ray.remote(num_cpus=1, max_retries=1)
def member_task(study: NotesStudy, variant: str, index: int) -> MemberOutcome:
    """One fine-tuned copy, as a Ray task: a whole CPU, one torch thread."""
    torch.set_num_threads(1)
    return train_member_model(study, variant, index)


# -- the driver ------------------------------------------------------------------------------


def run_notes(config: NotesAuditConfig, output: Path) -> dict[str, Any]:
    """The whole notes study; returns ``comparison.json``'s content."""
    started = time.perf_counter()
    study = prepare_study(config)
    study = _with_base(study, output)
    reference = reference_nll(study)
    base_test_nll = float(np.mean(reference_nll(dataclasses.replace(study, audit_set=study.test))))
    outcomes = _train_copies(study, output)
    records = []
    for variant in config.variants:
        mine = sorted(outcomes[variant.name], key=lambda outcome: outcome.index)
        statistic = -np.stack([outcome.audit_nll for outcome in mine])
        epsilons = [outcome.epsilon for outcome in mine if outcome.epsilon is not None]
        audit = audit_variant(
            variant.name,
            statistic,
            study.masks,
            population=config.population,
            reference=-reference,
            accountant_epsilon=max(epsilons) if epsilons else None,
            delta=config.delta,
            alpha=config.alpha,
            seed=config.seed,
        )
        records.append(VariantRecord(audit, mine))
    metadata = {
        "command": "python jobs/audit.py " + " ".join(sys.argv[1:]),
        "config": config.model_dump(mode="json"),
        "parameters": sum(p.numel() for p in study.lm.model.parameters()),
        "wall_seconds": time.perf_counter() - started,
        "copies": {
            f"{outcome.variant}-{outcome.index}": {
                "seconds": outcome.seconds,
                "epochs_run": outcome.epochs_run,
                "best_epoch": outcome.best_epoch,
                "noise_multiplier": outcome.noise_multiplier,
                "pid": outcome.pid,
            }
            for group in outcomes.values()
            for outcome in group
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "opacus": opacus.__version__,
            "ray": ray.__version__,
        },
        "cpus": os.cpu_count(),
    }
    return write_study(
        output,
        records,
        base_test_nll=base_test_nll,
        reference=-reference,
        masks=study.masks,
        population=config.population,
        metadata=metadata,
    )


def _with_base(study: NotesStudy, output: Path) -> NotesStudy:
    """The base model: loaded from a folder as it is, or pretrained once (saved for resuming)."""
    if study.config.model.path is not None:
        return study
    saved = output / MODELS_DIR / BASE_FILE
    if saved.is_file():
        return study.with_base(torch.load(saved, weights_only=True))
    print(
        f"[audit] pretraining the base LM on {study.config.public_notes} public notes", flush=True
    )
    begun = time.perf_counter()
    state = ray.get(pretrain_task.remote(study))
    atomic_write(saved, lambda temporary: torch.save(state, temporary))
    print(f"[audit] base ready in {time.perf_counter() - begun:.0f} s", flush=True)
    return study.with_base(state)


def _train_copies(study: NotesStudy, output: Path) -> dict[str, list[MemberOutcome]]:
    """Every (variant, copy) as a Ray task; finished copies are saved as they land."""
    folder = output / MODELS_DIR
    outcomes: dict[str, list[MemberOutcome]] = {v.name: [] for v in study.config.variants}
    pending = {}
    shared = ray.put(study)
    for variant in study.config.variants:
        for index in range(study.config.models):
            saved = folder / f"{variant.name}-{index}.npz"
            if saved.is_file():
                outcomes[variant.name].append(_load_outcome(saved))
                continue
            task = member_task.options(name=f"audit-{variant.name}-{index}")
            pending[task.remote(shared, variant.name, index)] = saved
    total = len(pending)
    if total < len(study.config.variants) * study.config.models:
        print(f"[audit] resuming: {len(study.config.variants) * study.config.models - total} "
              "copies already trained")  # fmt: skip
    begun = time.perf_counter()
    done = 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        saved = pending.pop(ready[0])
        try:
            outcome = ray.get(ready[0])
        except ray.exceptions.RayError as error:
            for ref in pending:
                ray.cancel(ref)
            raise SecureMedError(
                f"training {saved.stem} failed ({type(error).__name__}); finished copies are "
                f"kept: rerun with --resume {output}"
            ) from error
        _save_outcome(saved, outcome)
        outcomes[outcome.variant].append(outcome)
        done += 1
        elapsed = time.perf_counter() - begun
        eta = elapsed / done * (total - done)
        epsilon = "" if outcome.epsilon is None else f", epsilon {outcome.epsilon:.2f}"
        print(
            f"[audit] {done}/{total} {outcome.variant} copy {outcome.index}: "
            f"{outcome.epochs_run} epochs in {outcome.seconds:.0f} s, test NLL "
            f"{outcome.test_nll:.3f}{epsilon}; about {eta:.0f} s left",
            flush=True,
        )
    return outcomes


def _save_outcome(path: Path, outcome: MemberOutcome) -> None:
    fields = dataclasses.asdict(outcome)
    fields = {key: np.nan if value is None else value for key, value in fields.items()}
    atomic_write(path, lambda temporary: _savez(temporary, fields))


def _savez(path: Path, fields: dict[str, Any]) -> None:
    with path.open("wb") as handle:
        np.savez(handle, **fields)


def _load_outcome(path: Path) -> MemberOutcome:
    with np.load(path) as saved:
        fields: dict[str, Any] = {key: saved[key] for key in saved.files}
    values: dict[str, Any] = {}
    for field in dataclasses.fields(MemberOutcome):
        value = fields[field.name]
        if field.name == "audit_nll":
            values[field.name] = np.asarray(value, dtype=float)
        elif field.name == "variant":
            values[field.name] = str(value)
        elif field.name in ("epsilon", "noise_multiplier"):
            values[field.name] = None if np.isnan(value) else float(value)
        elif field.name in ("index", "epochs_run", "best_epoch", "pid"):
            values[field.name] = int(value)
        else:
            values[field.name] = float(value)
    return MemberOutcome(**values)


# -- command line ----------------------------------------------------------------------------


def smoke_config(config: NotesAuditConfig) -> NotesAuditConfig:
    """Tiny notes, model and epochs: the study's whole path in a couple of minutes."""
    return config.model_copy(
        update={
            "population": 48,
            "canaries": 16,
            "public_notes": 200,
            "validation_notes": 30,
            "test_notes": 30,
            "models": 6,
            "base": BaseTraining(epochs=2),
            # a batch under a quarter of the ~32 notes a copy trains on: DP-SGD's sampling
            # rate stays well below 1
            "variants": tuple(
                v.model_copy(update={"epochs": 3, "batch_size": 8}) for v in config.variants
            ),
        }
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="study", required=True)
    notes = commands.add_parser("notes", help="the clinical-notes language-model study")
    notes.add_argument("--config", type=Path, help="YAML config (defaults apply when omitted)")
    notes.add_argument("--output", type=Path, help="results folder (default runs/audit-<time>)")
    notes.add_argument("--resume", type=Path, help="continue the stopped study in this folder")
    notes.add_argument("--model-path", type=Path, help="a local causal-LM folder as the base")
    notes.add_argument("--models", type=int, help="fine-tuned copies per variant (even, >= 6)")
    notes.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
    notes.add_argument("--smoke-test", action="store_true", help="tiny study: a few minutes")
    args = parser.parse_args(argv)
    if args.resume and (args.model_path or args.models):
        parser.error("--resume continues the study as configured: drop --model-path/--models")
    if args.model_path and not args.model_path.is_dir():
        parser.error(f"--model-path {args.model_path} is not a folder")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def load(path: Path | None) -> NotesAuditConfig:
        config = load_as(NotesAuditConfig, path)
        updates: dict[str, Any] = {}
        if args.models is not None:
            updates["models"] = args.models
        if args.model_path is not None:
            updates["model"] = config.model.model_copy(
                update={"path": str(args.model_path.resolve())}
            )
        # validated again: a CLI value obeys the same rules as the file's
        return validate_as(
            NotesAuditConfig, {**config.model_dump(), **updates}, origin="the command line"
        )

    try:
        config, output = resolve_run(args, load=load, smoke=smoke_config, prefix="audit")
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started_ray = connect_ray(args.address)
    try:
        result = run_notes(config, output)
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if started_ray:
            ray.shutdown()
    print((output / "REPORT.md").read_text())
    headline = result["headline"]
    print(f"[audit] TPR at 1% FPR ({headline['attack']}): {headline['tpr_at_1%_fpr']}")
    print(f"[audit] results: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
