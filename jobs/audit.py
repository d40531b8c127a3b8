"""Privacy audits: what a membership-inference attacker learns from SecureMed's models.

    python jobs/audit.py notes --output DIR [--config FILE] [--model-path DIR] [--models K]
    python jobs/audit.py classifier --output DIR [--config FILE] [--models K]
    python jobs/audit.py report --output DIR [--config FILE] [--models K]
    python jobs/audit.py {notes,classifier,report} --resume DIR
    ray job submit --working-dir . -- python jobs/audit.py notes --output DIR

``notes``: the clinical-notes language-model study (:mod:`securemed.audit.notes_study`).
Generate the notes and canaries, pretrain the base LM on public notes (or load one from
``--model-path``), then fine-tune ``K`` copies per variant (baseline, regularized, DP-SGD) on
random halves of the audited notes. ``classifier``: the chest X-ray classifier study
(:mod:`securemed.audit.classifier_study`), ``K`` copies per variant trained from scratch on
random halves of synthetic films and mislabeled canary films. ``report``: the report
generator study (:mod:`securemed.audit.report_study`), a start trained on public films (or
loaded) fine-tuned ``K`` times per variant on random halves of private films and canaries
paired with the wrong report; the start is the NLL-gap attack's reference.

Each copy is a Ray task, two at a time on a 2-core laptop and as many as the cluster has CPUs
elsewhere. Every copy is attacked in turn with the others as its shadow models (loss
threshold, NLL gap where there is a reference model, LiRA online and offline, RMIA), canaries give
an empirical epsilon lower bound beside the accountant's, and ``DIR`` receives ``REPORT.md``,
``comparison.json``, ``metadata.json``, per-variant score CSVs and log-scale ROC plots, and
TensorBoard scalars in ``DIR/tensorboard/<variant>`` (each copy as it lands, then the results).

Nothing is lost on a crash: each finished copy's losses are saved under ``DIR/models`` as it
lands, and ``--resume DIR`` trains only the copies still missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import platform
import sys
import time
from collections.abc import Callable
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
from securemed.audit import classifier_study, notes_study, report_study
from securemed.audit.classifier_study import ClassifierAuditConfig, ClassifierStudy
from securemed.audit.notes_study import BaseTraining, NotesAuditConfig, NotesStudy
from securemed.audit.report_study import ReportAuditConfig, ReportStudy
from securemed.audit.study_analysis import MemberOutcome, audit_variant
from securemed.audit.study_config import StudyConfig
from securemed.audit.study_report import (
    StudyDescription,
    VariantRecord,
    copy_scalars,
    variant_scalars,
    write_study,
)
from securemed.config import load_as, validate_as
from securemed.durable import atomic_write
from securemed.errors import SecureMedError
from securemed.evaluation.tensorboard_log import TENSORBOARD_DIR, ScalarLog
from securemed.models import build_model
from securemed.models.report_checkpoint import checkpoint_digest
from securemed.models.snapshot import weights_fingerprint

MODELS_DIR = "models"
BASE_FILE = "base.pt"
START_DIR = "start"
#: any study's config
AuditConfig = NotesAuditConfig | ClassifierAuditConfig | ReportAuditConfig


# -- Ray tasks -------------------------------------------------------------------------------


#: how a study trains one copy: ``train(study, variant, index)``
TrainCopy = Callable[[Any, str, int], MemberOutcome]


@ray.remote(num_cpus=1, max_retries=1)
def pretrain_task(study: NotesStudy) -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    return notes_study.pretrain_base(study).state


@ray.remote(num_cpus=1, max_retries=1)
def report_start_task(config: ReportAuditConfig, folder: str) -> str:
    torch.set_num_threads(1)
    return str(report_study.pretrain_start(config, Path(folder)))


@ray.remote(num_cpus=1, max_retries=1)
def member_task(train: TrainCopy, study: Any, variant: str, index: int) -> MemberOutcome:
    """One trained copy, as a Ray task: a whole CPU, one torch thread."""
    torch.set_num_threads(1)
    return train(study, variant, index)


# -- the driver ------------------------------------------------------------------------------


def run_notes(config: NotesAuditConfig, output: Path) -> dict[str, Any]:
    """The whole notes study; returns ``comparison.json``'s content."""
    started = time.perf_counter()
    study = _with_base(notes_study.prepare_study(config), output)
    reference = notes_study.reference_nll(study)
    test = dataclasses.replace(study, audit_set=study.test)
    base_test_nll = float(np.mean(notes_study.reference_nll(test)))
    parameters = sum(p.numel() for p in study.lm.model.parameters())
    description = notes_study.describe_study(
        config, parameters=parameters, base_test_nll=base_test_nll
    )
    outcomes = _train_copies(notes_study.train_member_model, study, config, output, description)
    return _write(
        config, outcomes, output, description, masks=study.masks, reference_nll=reference,
        started=started, parameters=parameters,
        versions={"transformers": transformers.__version__},
    )  # fmt: skip


def run_classifier(config: ClassifierAuditConfig, output: Path) -> dict[str, Any]:
    """The whole classifier study; returns ``comparison.json``'s content."""
    started = time.perf_counter()
    print(f"[audit] rendering {config.population + config.canaries} audited films", flush=True)
    study: ClassifierStudy = classifier_study.prepare_study(config)
    model = build_model(config.model, num_classes=len(study.class_names))
    parameters = sum(p.numel() for p in model.parameters())
    description = classifier_study.describe_study(config, parameters=parameters)
    outcomes = _train_copies(
        classifier_study.train_member_model, study, config, output, description
    )
    return _write(
        config, outcomes, output, description, masks=study.masks, reference_nll=None,
        started=started, parameters=parameters, versions={},
    )  # fmt: skip


def run_report(config: ReportAuditConfig, output: Path) -> dict[str, Any]:
    """The whole report-generator study; returns ``comparison.json``'s content."""
    started = time.perf_counter()
    print(f"[audit] rendering {config.population + config.canaries} private films", flush=True)
    study = _with_start(report_study.prepare_study(config), output)
    start = report_study.measure_start(study)
    parameters = start.parameters
    description = report_study.describe_study(
        config, parameters=parameters, start_f1=start.clinical_f1
    )
    print(f"[audit] the start's clinical F1: {start.clinical_f1:.3f}", flush=True)
    outcomes = _train_copies(report_study.train_member_model, study, config, output, description)
    return _write(
        config, outcomes, output, description, masks=study.masks, reference_nll=start.losses,
        started=started, parameters=parameters, versions={},
    )  # fmt: skip


def _with_start(study: ReportStudy, output: Path) -> ReportStudy:
    """The start: the configured checkpoint, or one trained once on public films (kept)."""
    if study.config.init_checkpoint is not None:
        checkpoint = study.config.init_checkpoint
        pin_model_digest(output, "start", checkpoint_digest(checkpoint), source=str(checkpoint))
        return study.with_start(checkpoint)
    folder = output / MODELS_DIR / START_DIR
    # the checkpoint is written beside and renamed into place: a folder there is complete
    if not folder.is_dir():
        print(
            f"[audit] training the start on {study.config.public_films} public films "
            f"({study.config.pretrain_epochs} epochs)",
            flush=True,
        )
        begun = time.perf_counter()
        ray.get(report_start_task.remote(study.config, str(folder)))
        print(f"[audit] start ready in {time.perf_counter() - begun:.0f} s", flush=True)
    return study.with_start(folder)


def _write(
    config: AuditConfig,
    outcomes: dict[str, list[MemberOutcome]],
    output: Path,
    description: StudyDescription,
    *,
    masks: np.ndarray,
    reference_nll: np.ndarray | None,
    started: float,
    parameters: int,
    versions: dict[str, str],
) -> dict[str, Any]:
    """Attack every variant's copies and write the study's files; ``reference_nll`` is the
    reference model's loss on every audited example (None: no NLL-gap attack)."""
    reference = None if reference_nll is None else -reference_nll
    records = []
    for variant in config.variants:
        mine = sorted(outcomes[variant.name], key=lambda outcome: outcome.index)
        statistic = -np.stack([outcome.audit_nll for outcome in mine])
        epsilons = [outcome.epsilon for outcome in mine if outcome.epsilon is not None]
        audit = audit_variant(
            variant.name,
            statistic,
            masks,
            population=config.population,
            reference=reference,
            accountant_epsilon=max(epsilons) if epsilons else None,
            delta=config.delta,
            alpha=config.alpha,
            seed=config.seed,
        )
        records.append(VariantRecord(audit, mine))
    metadata = {
        "command": "python jobs/audit.py " + " ".join(sys.argv[1:]),
        "config": config.model_dump(mode="json"),
        "parameters": parameters,
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
            "opacus": opacus.__version__,
            "ray": ray.__version__,
            **versions,
        },
        "cpus": os.cpu_count(),
    }
    for record in records:  # TensorBoard: a variant's results after its copies 0..models-1
        with ScalarLog(output / TENSORBOARD_DIR / record.name, purge_step=config.models) as board:
            board.write(config.models, variant_scalars(record))
    return write_study(
        output,
        records,
        description,
        reference=reference_nll,
        masks=masks,
        population=config.population,
        metadata=metadata,
    )


def _with_base(study: NotesStudy, output: Path) -> NotesStudy:
    """The base model: loaded from a folder as it is, or pretrained once (saved for resuming)."""
    if study.config.model.path is not None:
        fingerprint = weights_fingerprint(study.lm.model) + study.lm.tokenizer.to_str()
        digest = hashlib.sha256(fingerprint.encode()).hexdigest()
        pin_model_digest(output, "base", digest, source=study.config.model.path)
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


def pin_model_digest(output: Path, name: str, digest: str, *, source: str) -> None:
    """Record the digest of a model loaded from outside the run folder on the first run, and
    refuse to resume if it has changed since: copies fine-tuned from two different models
    cannot be attacked as one study."""
    pinned = output / MODELS_DIR / f"{name}.sha256"
    if pinned.is_file():
        if pinned.read_text().strip() != digest:
            raise SecureMedError(
                f"the {name} model at {source} changed since this study began; its copies "
                "cannot be mixed: start the study in a new --output"
            )
        return
    atomic_write(pinned, lambda temporary: temporary.write_text(digest + "\n"))


def _train_copies(
    train: TrainCopy,
    study: Any,
    config: StudyConfig,
    output: Path,
    description: StudyDescription,
) -> dict[str, list[MemberOutcome]]:
    """Every (variant, copy) as a Ray task; finished copies are saved as they land."""
    folder = output / MODELS_DIR
    outcomes: dict[str, list[MemberOutcome]] = {name: [] for name in config.variant_names}
    pending = {}
    shared = ray.put(study)
    for variant in config.variants:
        for index in range(config.models):
            saved = folder / f"{variant.name}-{index}.npz"
            if saved.is_file():
                outcomes[variant.name].append(_load_outcome(saved))
                continue
            task = member_task.options(name=f"audit-{variant.name}-{index}")
            pending[task.remote(train, shared, variant.name, index)] = saved
    total = len(pending)
    copies = len(config.variants) * config.models
    if total < copies:
        print(f"[audit] resuming: {copies - total} copies already trained")
    begun = time.perf_counter()
    done = 0
    boards: dict[str, ScalarLog] = {}  # TensorBoard, a run per variant, a step per copy
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        saved = pending.pop(ready[0])
        try:
            outcome = ray.get(ready[0])
            refuse_diverged(outcome)
        except ray.exceptions.RayError as error:
            for ref in pending:
                ray.cancel(ref)
            raise SecureMedError(
                f"training {saved.stem} failed ({type(error).__name__}); finished copies are "
                f"kept: rerun with --resume {output}"
            ) from error
        except SecureMedError:
            for ref in pending:
                ray.cancel(ref)
            raise
        _save_outcome(saved, outcome)
        outcomes[outcome.variant].append(outcome)
        if outcome.variant not in boards:
            boards[outcome.variant] = ScalarLog(output / TENSORBOARD_DIR / outcome.variant)
        board = boards[outcome.variant]
        board.write(outcome.index, copy_scalars(outcome, study.masks[outcome.index]))
        done += 1
        elapsed = time.perf_counter() - begun
        eta = elapsed / done * (total - done)
        epsilon = "" if outcome.epsilon is None else f", epsilon {outcome.epsilon:.2f}"
        print(
            f"[audit] {done}/{total} {outcome.variant} copy {outcome.index}: "
            f"{outcome.epochs_run} epochs in {outcome.seconds:.0f} s, "
            f"{description.utility_name} {outcome.utility:.3f}{epsilon}; about {eta:.0f} s left",
            flush=True,
        )
    for board in boards.values():
        board.close()
    return outcomes


def refuse_diverged(outcome: MemberOutcome) -> None:
    """A copy whose losses are not finite diverged: nothing can be attacked, and saving it
    would make every resume fail the same way, so the study stops and says what to change."""
    if not np.all(np.isfinite(outcome.audit_nll)):
        raise SecureMedError(
            f"{outcome.variant} copy {outcome.index} diverged (its losses are not finite): "
            "lower that variant's learning_rate and start the study in a new --output"
        )


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


def _shrunk(config: Any, sizes: dict[str, Any], *, epochs: int, batch_size: int) -> Any:
    """``config`` at smoke size: six copies, ``sizes``, and every variant cut short. The batch
    stays under a quarter of what a copy trains on, so DP-SGD's sampling rate stays below 1."""
    variants = tuple(
        v.model_copy(update={"epochs": epochs, "batch_size": batch_size}) for v in config.variants
    )
    return config.model_copy(update={**sizes, "models": 6, "variants": variants})


def smoke_notes(config: NotesAuditConfig) -> NotesAuditConfig:
    """Tiny notes, model and epochs: the study's whole path in a couple of minutes."""
    sizes = {"population": 48, "canaries": 16, "public_notes": 200, "validation_notes": 30,
             "test_notes": 30, "base": BaseTraining(epochs=2)}  # fmt: skip
    return _shrunk(config, sizes, epochs=3, batch_size=8)


def smoke_classifier(config: ClassifierAuditConfig) -> ClassifierAuditConfig:
    """Few films and epochs: the classifier study's whole path in about a minute."""
    sizes = {"population": 80, "canaries": 16, "validation_films": 32, "test_films": 64}
    return _shrunk(config, sizes, epochs=4, batch_size=12)


def smoke_report(config: ReportAuditConfig) -> ReportAuditConfig:
    """A small start and few films and epochs: the report study's path in a few minutes."""
    sizes = {"public_films": 300, "population": 48, "canaries": 12, "validation_films": 16,
             "test_films": 24, "pretrain_epochs": 1}  # fmt: skip
    return _shrunk(config, sizes, epochs=2, batch_size=8)


@dataclasses.dataclass(frozen=True)
class StudyCommand:
    """What ``jobs/audit.py <study>`` loads, shrinks for a smoke test, and runs."""

    config: type[NotesAuditConfig] | type[ClassifierAuditConfig] | type[ReportAuditConfig]
    smoke: Callable[[Any], Any]
    run: Callable[[Any, Path], dict[str, Any]]
    help: str


STUDIES = {
    "notes": StudyCommand(
        NotesAuditConfig, smoke_notes, run_notes, "the clinical-notes language-model study"
    ),
    "classifier": StudyCommand(
        ClassifierAuditConfig, smoke_classifier, run_classifier, "the chest X-ray classifier"
    ),
    "report": StudyCommand(
        ReportAuditConfig, smoke_report, run_report, "the chest X-ray report generator"
    ),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="study", required=True)
    for name, command in STUDIES.items():
        study = commands.add_parser(name, help=command.help)
        study.add_argument("--config", type=Path, help="YAML config (defaults when omitted)")
        study.add_argument("--output", type=Path, help="results folder (default runs/audit-<time>)")
        study.add_argument("--resume", type=Path, help="continue the stopped study in this folder")
        study.add_argument("--models", type=int, help="trained copies per variant (even, >= 6)")
        study.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
        study.add_argument("--smoke-test", action="store_true", help="tiny study: a few minutes")
        if name == "notes":
            study.add_argument("--model-path", type=Path, help="a local causal-LM folder as base")
    args = parser.parse_args(argv)
    model_path = getattr(args, "model_path", None)
    if args.resume and (model_path or args.models):
        parser.error("--resume continues the study as configured: drop --model-path/--models")
    if model_path and not model_path.is_dir():
        parser.error(f"--model-path {model_path} is not a folder")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = STUDIES[args.study]

    def load(path: Path | None) -> Any:
        config = load_as(command.config, path)
        updates: dict[str, Any] = {}
        if args.models is not None:
            updates["models"] = args.models
        if getattr(args, "model_path", None) is not None:
            updates["model"] = config.model.model_copy(
                update={"path": str(args.model_path.resolve())}
            )
        # validated again: a CLI value obeys the same rules as the file's
        return validate_as(
            command.config, {**config.model_dump(), **updates}, origin="the command line"
        )

    try:
        config, output = resolve_run(
            args, load=load, smoke=command.smoke, prefix=f"audit-{args.study}"
        )
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started_ray = connect_ray(args.address)
    try:
        result = command.run(config, output)
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
