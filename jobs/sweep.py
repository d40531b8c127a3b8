"""Privacy-utility sweeps with Ray Tune: the frontier of utility against epsilon.

    python jobs/sweep.py classifier --output DIR [--trials N] [--max-concurrent N]
        [--time-budget-s S] [--budgets 1 2 4 8] [--config FILE] [--seed N] [--smoke]
    python jobs/sweep.py report --output DIR [...]
    ray job submit --working-dir . -- python jobs/sweep.py classifier --output DIR

The story of a sweep: validate the config (the search space, what every trial shares, ASHA),
connect to Ray (or start a local one), prepare what every trial needs once (the classifier's
films and partitions, shipped through the object store; the report model's starting
checkpoint), then let Ray Tune sample ``--trials`` settings of noise multiplier, clipping norm,
learning rate, sampling rate and length (rounds or epochs) and run them, at most
``--max-concurrent`` at a time, with ASHA stopping trials whose utility trails at a rung.
Each trial reports once per round or epoch: utility (macro-AUROC or clinical F1), epsilon, and
the loss attack's TPR at 1 % FPR. A line per report shows progress.

Every report is a model that could be released, so the frontier is built from all of them,
including trials ASHA stopped (see :mod:`securemed.tuning.frontier`). ``DIR`` receives
``trials.csv`` (every reported point with its parameters), ``frontier.csv``, ``frontier.md``,
``frontier.png``, ``recommendation.json`` (the best setting within each ``--budgets`` epsilon)
and ``metadata.json`` (parameters, seeds, versions, timing); Tune's own records go to
``DIR/tune``, among them each trial's TensorBoard events in its trial folder (Tune's default
TensorBoard logger: every report under ``ray/tune/<metric>``). The trial bodies live in
:mod:`securemed.tuning.trials`, Ray-free; this file only wires them to Tune. On a multi-node
cluster ``DIR`` must be storage every node sees (the report trials read their starting
checkpoint from it).
"""

from __future__ import annotations

import argparse
import math
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

import opacus
import ray
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import BasicVariantGenerator

import securemed
from jobs.ray_setup import connect_ray
from securemed.config import load_as
from securemed.errors import SecureMedError
from securemed.federation.results import write_json
from securemed.privacy.randomness import NOT_A_GUARANTEE
from securemed.tuning import (
    CLASSIFIER,
    REPORT,
    ClassifierData,
    ClassifierSettings,
    ClassifierSweepConfig,
    Dimension,
    ReportSettings,
    ReportSweepConfig,
    SweepPoint,
    TrialKind,
    measure_report_start,
    point_from_report,
    prepare_classifier_data,
    prepare_report_start,
    run_classifier_trial,
    run_report_trial,
    write_frontier_outputs,
)
from securemed.tuning.frontier import json_safe

KINDS: dict[str, tuple[TrialKind, type[ClassifierSweepConfig] | type[ReportSweepConfig]]] = {
    "classifier": (CLASSIFIER, ClassifierSweepConfig),
    "report": (REPORT, ReportSweepConfig),
}
DEFAULT_TRIALS = 64
SMOKE_TRIALS = 8
DEFAULT_TIME_BUDGET_S = 1200.0
#: the trial id of the report model's starting checkpoint in trials.csv (epoch 0, epsilon 0)
START_TRIAL = "start"
OUTPUT_FILES = ("trials.csv", "frontier.csv", "frontier.md", "frontier.png", "metadata.json")


# -- on every trial's worker -----------------------------------------------------------------


def classifier_trainable(
    config: dict[str, Any], settings: ClassifierSettings, data: ClassifierData
) -> None:
    """One classifier trial under Tune: one torch thread, one report per round."""
    torch.set_num_threads(1)
    run_classifier_trial(config, tune.report, settings=settings, data=data)


def report_trainable(config: dict[str, Any], settings: ReportSettings, start: str) -> None:
    """One report-model trial under Tune: one torch thread, one report per epoch."""
    torch.set_num_threads(1)
    run_report_trial(config, tune.report, settings=settings, start=Path(start))


@ray.remote(num_cpus=1)
def pretrain_report_start(settings: ReportSettings, folder: str) -> tuple[str, dict[str, Any]]:
    """The report trials' starting model and its measurement (epoch 0, epsilon 0), made once
    in a one-CPU task (on a cluster, on a worker; on a laptop, without oversubscribing the
    driver's cores)."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    start = prepare_report_start(
        settings, Path(folder), progress=lambda line: print(line, flush=True)
    )
    return str(start.resolve()), measure_report_start(settings, start)


# -- on the driver ---------------------------------------------------------------------------


def tune_distribution(dimension: Dimension, *, integer: bool) -> Any:
    """The Tune distribution a validated dimension stands for."""
    if dimension.values is not None:
        return tune.choice([int(v) if integer else float(v) for v in dimension.values])
    low, high = dimension.smallest, dimension.largest
    if integer:
        sample = tune.lograndint if dimension.log else tune.randint
        return sample(int(low), int(high) + 1)  # Tune's upper bound is exclusive
    if low == high:
        return tune.choice([low])
    return (tune.loguniform if dimension.log else tune.uniform)(low, high)


def param_space(config: ClassifierSweepConfig | ReportSweepConfig) -> dict[str, Any]:
    space = config.space
    return {
        name: tune_distribution(dimension, integer=name in space.integers)
        for name, dimension in space.dimensions().items()
    }


class SweepProgress(tune.Callback):
    """Collects every reported point on the driver and prints a line for each."""

    def __init__(self, kind: TrialKind) -> None:
        self.kind = kind
        self.started = time.perf_counter()
        self.points: list[SweepPoint] = []
        #: points every trial starts from (not Tune trials): the report model's start
        self.reference: list[SweepPoint] = []
        self.errored: set[str] = set()

    def _prefix(self, trial_id: str) -> str:
        elapsed = time.perf_counter() - self.started
        return f"[{elapsed:5.0f} s] trial {trial_id}"

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any
    ) -> None:
        kind = self.kind
        metrics = {key: result[key] for key in kind.reports if key in result}
        params = dict(trial.config)
        point = point_from_report(
            trial.trial_id, params, metrics, utility=kind.utility, step=kind.step,
            length=kind.length,
        )  # fmt: skip
        self.points.append(point)
        epsilon = f"{point.epsilon:.2f}" if point.private else "inf (no DP)"
        print(
            f"{self._prefix(trial.trial_id)}  {kind.step} {point.step}/{params[kind.length]}  "
            f"{kind.utility} {point.utility:.3f}  epsilon {epsilon}  "
            f"TPR@1%FPR {point.tpr_at_1pct_fpr:.3f}  (z {params['noise_multiplier']:.2f}, "
            f"C {params['max_grad_norm']:.2f}, lr {params['learning_rate']:.3g}, "
            f"q {params['sampling_rate']:.3f})",
            flush=True,
        )

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        steps = [p.step for p in self.points if p.trial == trial.trial_id]
        planned = trial.config[self.kind.length]
        if steps and max(steps) < planned:
            print(
                f"{self._prefix(trial.trial_id)}  stopped early after {self.kind.step} "
                f"{max(steps)} of {planned}",
                flush=True,
            )

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.errored.add(trial.trial_id)
        print(f"{self._prefix(trial.trial_id)}  failed: {trial.error_file}", flush=True)

    def trial_notes(self) -> dict[str, dict[str, Any]]:
        """Per trial: how long it was planned, how far it got, whether it ended early."""
        planned, last = f"planned_{self.kind.length}", f"last_{self.kind.step}"
        notes: dict[str, dict[str, Any]] = {}
        for point in self.points:
            note = notes.setdefault(
                point.trial, {planned: int(point.params[self.kind.length]), last: 0}
            )
            note[last] = max(note[last], point.step)
        for trial_id, note in notes.items():
            note["failed"] = trial_id in self.errored
            note["stopped_early"] = not note["failed"] and note[last] < note[planned]
        return notes


def prepare_trainable(
    kind: TrialKind, config: ClassifierSweepConfig | ReportSweepConfig, output: Path
) -> tuple[Any, list[SweepPoint]]:
    """The trainable with what every trial shares bound to it, prepared once here, and any
    reference point every trial starts from (the report model's starting checkpoint, which
    has spent no privacy on the private split)."""
    if isinstance(config, ClassifierSweepConfig):
        print("rendering the films and splitting them among the hospitals", flush=True)
        data = prepare_classifier_data(config.settings)
        trainable = tune.with_parameters(classifier_trainable, settings=config.settings, data=data)
        return trainable, []
    if config.settings.init_checkpoint is None:
        print(
            f"pretraining the starting report model on the public split "
            f"({config.settings.pretrain_epochs} epochs)",
            flush=True,
        )
    folder = str((output / "start-model").resolve())
    start, metrics = ray.get(pretrain_report_start.remote(config.settings, folder))
    reference = point_from_report(
        START_TRIAL, {kind.length: 0}, metrics, utility=kind.utility, step=kind.step,
        length=kind.length,
    )  # fmt: skip
    print(
        f"starting model (epsilon 0 on the private split): {kind.utility} "
        f"{reference.utility:.3f}  TPR@1%FPR {reference.tpr_at_1pct_fpr:.3f}",
        flush=True,
    )
    trainable = tune.with_parameters(report_trainable, settings=config.settings, start=start)
    return trainable, [reference]


def run_sweep(
    kind: TrialKind,
    config: ClassifierSweepConfig | ReportSweepConfig,
    output: Path,
    *,
    trials: int,
    max_concurrent: int,
    cpus_per_trial: float,
    time_budget_s: float,
    seed: int,
) -> tuple[SweepProgress, Any]:
    """Run the trials under Tune with ASHA; returns the collected points and Tune's results."""
    trainable, reference = prepare_trainable(kind, config, output)
    asha = ASHAScheduler(
        metric=kind.utility,
        mode="max",
        time_attr="training_iteration",  # one iteration = one report = one round or epoch
        max_t=config.space.max_length,
        grace_period=config.asha.grace_period,
        reduction_factor=config.asha.reduction_factor,
    )
    progress = SweepProgress(kind)
    progress.reference = reference
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": cpus_per_trial}),
        param_space=param_space(config),
        tune_config=tune.TuneConfig(
            # seeded random search; the cap on concurrency belongs to the search algorithm
            # when one is given (Tune ignores TuneConfig.max_concurrent_trials then)
            search_alg=BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent),
            scheduler=asha,
            num_samples=trials,
            time_budget_s=time_budget_s,
            reuse_actors=True,  # a fresh worker per trial would re-import torch each time
        ),
        run_config=tune.RunConfig(
            name=f"sweep-{kind.name}",
            storage_path=str((output / "tune").resolve()),
            failure_config=tune.FailureConfig(max_failures=1),
            callbacks=[progress],
            verbose=0,
        ),
    )
    results = tuner.fit()
    return progress, results


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "securemed": getattr(securemed, "__version__", "unknown"),
        "ray": ray.__version__,
        "torch": torch.__version__,
        "opacus": opacus.__version__,
    }


# -- command line ----------------------------------------------------------------------------


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``, or a clear message."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_seed = _int_at_least(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(KINDS), help="what to sweep")
    parser.add_argument("--output", type=Path, required=True, help="results folder (new)")
    parser.add_argument("--config", type=Path, help="YAML: space, settings, asha (optional)")
    parser.add_argument(
        "--trials",
        type=_positive_int,
        help=f"settings to sample (default {DEFAULT_TRIALS}, {SMOKE_TRIALS} with --smoke)",
    )
    parser.add_argument(
        "--max-concurrent",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="trials at a time (default: the machine's cores)",
    )
    parser.add_argument(
        "--cpus-per-trial", type=_positive_float, default=1.0, help="Ray CPUs per trial"
    )
    parser.add_argument(
        "--time-budget-s",
        type=_positive_float,
        default=DEFAULT_TIME_BUDGET_S,
        help=f"stop starting and running trials after this (default {DEFAULT_TIME_BUDGET_S:g})",
    )
    parser.add_argument(
        "--budgets",
        type=_positive_float,
        nargs="+",
        default=[1.0, 2.0, 4.0, 8.0],
        help="epsilon budgets to recommend a setting for (default 1 2 4 8)",
    )
    parser.add_argument("--seed", type=_seed, default=0, help="the search's sampling seed")
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
    parser.add_argument("--smoke", action="store_true", help="tiny data and trials: seconds each")
    return parser.parse_args(argv)


def load_sweep_config(args: argparse.Namespace) -> ClassifierSweepConfig | ReportSweepConfig:
    _, config_class = KINDS[args.kind]
    config = load_as(config_class, args.config)
    return config.smoke() if args.smoke else config


def prepare_output(output: Path) -> None:
    held = [name for name in OUTPUT_FILES if (output / name).exists()]
    if held:
        raise SecureMedError(
            f"{output} already holds a sweep ({', '.join(held)}); choose a new --output"
        )
    output.mkdir(parents=True, exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kind, _ = KINDS[args.kind]
    trials = args.trials or (SMOKE_TRIALS if args.smoke else DEFAULT_TRIALS)
    try:
        config = load_sweep_config(args)
        prepare_output(args.output)
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    started = time.perf_counter()
    # logical CPUs beyond the trials' own: a finished trial's resources are released lazily,
    # and Tune hung here with exactly as many CPUs as trials (see RAY_NOTES.md)
    needed = math.ceil(args.max_concurrent * args.cpus_per_trial)
    started_ray = connect_ray(args.address, num_cpus=max(os.cpu_count() or 1, 2 * needed))
    try:
        cluster_cpus = float(ray.cluster_resources().get("CPU", 0.0))
        print(
            f"sweeping the {kind.name} ({trials} trials, at most {args.max_concurrent} at a time, "
            f"time budget {args.time_budget_s:g} s, ASHA on {kind.utility}); Ray CPUs "
            f"{cluster_cpus:g}",
            flush=True,
        )
        progress, results = run_sweep(
            kind,
            config,
            args.output,
            trials=trials,
            max_concurrent=args.max_concurrent,
            cpus_per_trial=args.cpus_per_trial,
            time_budget_s=args.time_budget_s,
            seed=args.seed,
        )
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if started_ray:
            ray.shutdown()
    wall = time.perf_counter() - started

    notes = progress.trial_notes()
    files = write_frontier_outputs(
        args.output,
        [*progress.reference, *progress.points],
        utility=kind.utility,
        step=kind.step,
        setting_keys=list(config.space.dimensions()),
        budgets=args.budgets,
        trial_notes=notes,
        title=f"Privacy-utility frontier: {kind.name} ({len(notes)} trials)",
    )
    write_json(
        args.output / "metadata.json",
        json_safe(
            {
                "kind": kind.name,
                "command": [sys.executable, *sys.argv]
                if argv is None
                else ["jobs/sweep.py", *argv],
                "config": config.model_dump(mode="json"),
                "trials_requested": trials,
                "max_concurrent": args.max_concurrent,
                "cpus_per_trial": args.cpus_per_trial,
                "time_budget_s": args.time_budget_s,
                "time_budget_reached": wall >= args.time_budget_s,
                "budgets": args.budgets,
                "search_seed": args.seed,
                "trial_seed": config.settings.seed,
                # trials draw their DP noise from trial_seed (the insecure reproducible
                # mode): their epsilons describe the settings, they are no guarantee
                "epsilon_is_guarantee": False,
                "warning": NOT_A_GUARANTEE,
                "smoke": args.smoke,
                "utility": kind.utility,
                "ray": {
                    "address": args.address or os.environ.get("RAY_ADDRESS"),
                    "local": started_ray,
                    "cpus": cluster_cpus,
                },
                "versions": versions(),
                "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
                "started_at": started_at,
                "wall_seconds": wall,
                "trials": {
                    "reported": len(notes),
                    "finished": sum(1 for n in notes.values() if not n["stopped_early"]),
                    "stopped_early": sum(1 for n in notes.values() if n["stopped_early"]),
                    "failed": len(progress.errored),
                    "never_started": max(0, trials - len(results)),
                },
                "reported_points": len(progress.points),
                "frontier_points": len(files.frontier),
            }
        ),
    )
    print(f"\n== {kind.name} sweep: {len(notes)} trials, {len(progress.points)} reported models ==")
    print(files.table)
    print(files.recommendations_table)
    print(f"wall time: {wall:.0f} s; results: {args.output}/ (frontier.md, frontier.png, ...)")
    if not progress.points:
        print("error: no trial reported a result (raise --time-budget-s?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
