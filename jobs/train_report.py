"""Fine-tune the chest X-ray report model with Ray Train: standard, adversarial and DP-SGD.

    python jobs/train_report.py [--config configs/report.yaml] --output DIR
    python jobs/train_report.py --resume DIR
    ray job submit --working-dir . -- python jobs/train_report.py --output DIR

The story of a run: validate the config, learn the tokenizer from the training reports,
connect to Ray (or start a local one), then train each variant of the config in turn with a
``TorchTrainer`` (CPU workers, checkpoints through Ray Train every epoch), evaluate every
variant on the test films, clean and under PGD, beside the most-common-report baseline, and
write ``DIR/metrics.json`` and ``DIR/REPORT.md``. Each variant's model lands in
``DIR/<variant>/model`` in the serving checkpoint format, and TensorBoard's event files land in
``DIR/tensorboard/<variant>`` (each epoch's loss and epsilon) and ``.../<variant>/evaluation``.

``--resume DIR`` continues a stopped run: finished variants are kept, an interrupted one picks
up from its last Ray Train checkpoint (weights, optimizer, accountant, position).

On a multi-node cluster ``DIR`` must be on storage every node sees (NFS or similar): workers
read the tokenizer and a fine-tuned variant's starting weights from it, and Ray Train keeps
its checkpoints under ``DIR/ray``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import ray
import ray.train
import torch
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from jobs.ray_setup import connect_ray
from jobs.run_folder import resolve_run
from securemed.errors import SecureMedError
from securemed.evaluation.report_evaluation import (
    generate_reports,
    most_common_report,
    pgd_attack_reports,
    score_reports,
)
from securemed.evaluation.tensorboard_log import TENSORBOARD_DIR, ScalarLog
from securemed.federation.results import write_json
from securemed.models.report_checkpoint import (
    TrainingFacts,
    copy_report_checkpoint,
    load_report_checkpoint,
    save_report_checkpoint,
)
from securemed.report_training.config import (
    ReportJobConfig,
    VariantConfig,
    load_report_config,
    parse_report_config,
)
from securemed.report_training.dataset import Split, load_split, load_texts
from securemed.report_training.model_setup import build_job_model, job_tokenizer
from securemed.report_training.trainer import EpochStats, ReportTrainer
from securemed.text.tokenizer import ReportTokenizer

#: Ray Train forwards its workers' log records to the driver (a worker's print, patched into
#: the same logger and also teed to its stdout, would show twice)
log = logging.getLogger("securemed.train_report")
TOKENIZER_FILE = "tokenizer.json"
STATE_FILE = "train_state.pt"
MODEL_DIR = "model"


# -- on every Ray Train worker --------------------------------------------------------------


def train_variant_loop(loop_config: dict[str, Any]) -> None:
    """Ray Train's per-worker loop: build, resume if a checkpoint exists, train, report."""
    torch.set_num_threads(1)
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    job = parse_report_config(loop_config["job"])
    variant = job.variant(loop_config["variant"])
    tokenizer = ReportTokenizer.load(loop_config["tokenizer_path"])
    torch.manual_seed(job.optimisation.seed)
    if variant.init_from is None:
        model = build_job_model(job, tokenizer)
    else:
        model = load_report_checkpoint(Path(loop_config["init_checkpoint"])).model
    epochs = variant.epochs or job.optimisation.epochs
    data = load_split(job.data, training_split(variant))
    trainer = ReportTrainer(
        model,
        data,
        tokenizer,
        optimisation=job.optimisation,
        epochs=epochs,
        adversarial=variant.adversarial_config(job.adversarial),
        privacy=job.privacy if variant.dp else None,
        rank=rank,
        world_size=world_size,
    )
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load_state_dict(torch.load(Path(folder) / STATE_FILE, weights_only=True))
        if rank == 0:
            log.info("[%s] resumed after epoch %d", variant.name, trainer.epoch)
    # rank 0 logs each epoch for TensorBoard; a resumed variant redoes the epochs after its
    # checkpoint, and the marker makes TensorBoard drop what the stopped run logged of them
    board = (
        ScalarLog(Path(loop_config["tensorboard_path"]), purge_step=trainer.epoch + 1)
        if rank == 0
        else None
    )

    def progress(step: int, steps: int, loss: float) -> None:
        if rank == 0:
            log.info(
                "[%s] epoch %d/%d step %d/%d loss %.3f",
                variant.name, trainer.epoch + 1, epochs, step, steps, loss,
            )  # fmt: skip

    while trainer.epoch < epochs:
        stats = trainer.train_epoch(progress)
        if rank == 0:
            spent = f", epsilon {stats.epsilon:.2f}" if stats.epsilon is not None else ""
            log.info(
                "[%s] epoch %d/%d done in %.0f s: loss %.3f, %d adversarial films%s",
                variant.name, stats.epoch, epochs, stats.seconds, stats.loss,
                stats.adversarial_examples, spent,
            )  # fmt: skip
        if board is not None:
            board.write(stats.epoch, epoch_scalars(stats))
        metrics = {
            "epoch": stats.epoch,
            "loss": stats.loss,
            "steps": trainer.global_step,
            "seconds": stats.seconds,
            "adversarial_examples": stats.adversarial_examples,
            "epsilon": stats.epsilon,
        }
        with tempfile.TemporaryDirectory() as folder:
            saved = None
            if rank == 0:
                torch.save(trainer.state_dict(), Path(folder) / STATE_FILE)
                if trainer.epoch == epochs:
                    save_report_checkpoint(
                        Path(folder) / MODEL_DIR,
                        model,
                        tokenizer,
                        training_facts(job, variant, trainer, len(data), epochs),
                    )
                saved = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=saved)
    if board is not None:
        board.close()


def epoch_scalars(stats: EpochStats) -> dict[str, float | None]:
    """An epoch's TensorBoard scalars (rank 0's shard: its mean loss, the run's epsilon)."""
    return {
        "report/train_loss": stats.loss,
        "report/epsilon": stats.epsilon,
        "report/epoch_seconds": stats.seconds,
        "report/adversarial_films": stats.adversarial_examples,
    }


def training_split(variant: VariantConfig) -> Split:
    """DP variants train on the private split (epsilon covers it), the others on train."""
    return "private" if variant.dp else "train"


def training_facts(
    job: ReportJobConfig,
    variant: VariantConfig,
    trainer: ReportTrainer,
    examples: int,
    epochs: int,
) -> TrainingFacts:
    privacy = trainer.privacy_facts()
    adversarial = variant.adversarial_config(job.adversarial)
    return TrainingFacts(
        modes=variant.modes,
        **(dataclasses.asdict(privacy) if privacy else {}),  # the DP guarantee, field by field
        steps=trainer.global_step,
        epochs=epochs,
        train_examples=examples,
        workers=trainer.world_size,
        data={
            **job.data.model_dump(mode="json"),
            "split": training_split(variant),
            "init_from": variant.init_from,
        },
        adversarial=adversarial.model_dump(mode="json") if adversarial else None,
    )


# -- on the driver ---------------------------------------------------------------------------


def train_variant(job: ReportJobConfig, variant: VariantConfig, output: Path) -> Path:
    """Train one variant with Ray Train (or keep it if already done); its model folder."""
    final = output / variant.name / MODEL_DIR
    if (final / "manifest.json").is_file():
        print(f"[{variant.name}] already trained: {final}", flush=True)
        return final
    workers = job.optimisation.workers
    loop_config: dict[str, Any] = {
        "job": job.model_dump(mode="json"),
        "variant": variant.name,
        # by path: Ray keeps the loop config in its run state, and a vocabulary learnt from
        # reports is data, not settings
        "tokenizer_path": str((output / TOKENIZER_FILE).resolve()),
        "tensorboard_path": str((output / TENSORBOARD_DIR / variant.name).resolve()),
    }
    if variant.init_from is not None:
        loop_config["init_checkpoint"] = str((output / variant.init_from / MODEL_DIR).resolve())
    trainer = TorchTrainer(
        train_variant_loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=workers,
            use_gpu=False,
            resources_per_worker={"CPU": job.optimisation.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=variant.name,
            storage_path=str((output / "ray").resolve()),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            failure_config=FailureConfig(max_failures=0),
        ),
    )
    print(f"[{variant.name}] training ({', '.join(variant.modes)}) on {workers} workers")
    result = trainer.fit()
    if result.checkpoint is None:
        raise SecureMedError(f"variant {variant.name} finished without a checkpoint")
    with result.checkpoint.as_directory() as folder:
        copy_report_checkpoint(Path(folder) / MODEL_DIR, final)
    return final


def evaluate_variants(job: ReportJobConfig, models: dict[str, Path]) -> dict[str, Any]:
    """Clean and PGD-robust metrics of every variant, and the most-common-report baseline."""
    evaluation = job.evaluation
    test = load_split(job.data, "test")
    train_texts = load_texts(job.data, "train")
    baseline_text = most_common_report(train_texts)
    results: dict[str, Any] = {
        "baseline_most_common_report": score_reports(
            [baseline_text] * len(test), test.texts, test.findings
        )
    }
    robust = test.subset(range(min(evaluation.robust_samples, len(test))))
    for name, folder in models.items():
        started = time.perf_counter()
        loaded = load_report_checkpoint(folder)
        model = loaded.model
        kwargs = {"batch_size": evaluation.batch_size, "num_beams": evaluation.num_beams}
        clean = score_reports(
            generate_reports(model, loaded.tokenizer, test.images, **kwargs),
            test.texts,
            test.findings,
        )
        attacked = pgd_attack_reports(
            model,
            robust.images,
            robust.tokens(loaded.tokenizer, model.config.max_report_tokens),
            epsilon=evaluation.pgd_epsilon,
            steps=evaluation.pgd_steps,
            batch_size=evaluation.batch_size,
            seed=job.optimisation.seed,
        )
        robust_scores = score_reports(
            generate_reports(model, loaded.tokenizer, attacked, **kwargs),
            robust.texts,
            robust.findings,
        )
        facts = loaded.facts
        results[name] = {
            "modes": list(facts.modes),
            "clean": clean,
            "robust": robust_scores,
            "epsilon": facts.epsilon,
            "delta": facts.delta,
            "dp_parameters": len(facts.dp_parameters),
            "frozen_parameters": list(facts.frozen_parameters),
            "init_from": facts.data.get("init_from"),
            "steps": facts.steps,
            "digest": loaded.digest,
        }
        print(
            f"[{name}] clinical F1 {clean['clinical_macro_f1']:.3f} BLEU-4 {clean['bleu4']:.3f}"
            f" | under PGD: clinical F1 {robust_scores['clinical_macro_f1']:.3f} "
            f"BLEU-4 {robust_scores['bleu4']:.3f} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    return {
        "test_films": len(test),
        "robust_films": len(robust),
        "pgd": {"epsilon": evaluation.pgd_epsilon, "steps": evaluation.pgd_steps},
        "results": results,
    }


def log_evaluation(job: ReportJobConfig, evaluation: dict[str, Any], output: Path) -> None:
    """Each variant's test metrics, clean and under PGD, at its last epoch, for TensorBoard: a
    run of their own beside the variant's training curves, replaced by every evaluation (a
    resumed run evaluates again)."""
    for variant in job.variants:
        result = evaluation["results"][variant.name]
        clean, robust = result["clean"], result["robust"]
        folder = output / TENSORBOARD_DIR / variant.name / "evaluation"
        with ScalarLog(folder, purge_step=0) as board:
            board.write(
                variant.epochs or job.optimisation.epochs,
                {
                    "report/test_clinical_f1": clean["clinical_macro_f1"],
                    "report/test_bleu4": clean["bleu4"],
                    "report/test_rouge_l": clean["rouge_l"],
                    "report/robust_clinical_f1": robust["clinical_macro_f1"],
                    "report/robust_bleu4": robust["bleu4"],
                },
            )


def results_table(evaluation: dict[str, Any]) -> str:
    """The before/after table of REPORT.md: clean and robust metrics side by side."""
    pgd = evaluation["pgd"]
    lines = [
        f"PGD: L-infinity epsilon {pgd['epsilon']:.4f} ({pgd['epsilon'] * 255:.1f}/255), "
        f"{pgd['steps']} steps, on {evaluation['robust_films']} of "
        f"{evaluation['test_films']} test films.",
        "",
        "| model | clinical F1 | BLEU-1 | BLEU-4 | ROUGE-L | robust clinical F1 | robust BLEU-1 "
        "| robust BLEU-4 | epsilon |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in evaluation["results"].items():
        clean = result.get("clean", result)
        robust = result.get("robust")
        epsilon = result.get("epsilon")
        cells = [
            name,
            f"{clean['clinical_macro_f1']:.3f}",
            f"{clean['bleu1']:.3f}",
            f"{clean['bleu4']:.3f}",
            f"{clean['rouge_l']:.3f}",
            f"{robust['clinical_macro_f1']:.3f}" if robust else "-",
            f"{robust['bleu1']:.3f}" if robust else "-",
            f"{robust['bleu4']:.3f}" if robust else "-",
            f"{epsilon:.2f}" if epsilon is not None else "no DP",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(job: ReportJobConfig, output: Path) -> dict[str, Any]:
    started = time.perf_counter()
    if not (output / TOKENIZER_FILE).is_file():  # a resumed run keeps the one it learnt
        job_tokenizer(job, load_texts(job.data, "train")).save(output / TOKENIZER_FILE)
    models = {v.name: train_variant(job, v, output) for v in job.variants}
    evaluation = evaluate_variants(job, models)
    log_evaluation(job, evaluation, output)
    metrics = {
        **evaluation,
        "models": {name: str(path) for name, path in models.items()},
        "wall_seconds": time.perf_counter() - started,
    }
    write_json(output / "metrics.json", metrics)
    (output / "REPORT.md").write_text(
        "# Report model: clean and robust metrics\n\n" + results_table(evaluation)
    )
    return metrics


def smoke_config(job: ReportJobConfig) -> ReportJobConfig:
    """Seconds-long run: tiny data and model, one epoch each, same code paths."""
    return job.model_copy(
        update={
            "data": job.data.model_copy(
                update={"train_samples": 64, "private_samples": 64, "test_samples": 8}
            ),
            "model": job.model.model_copy(
                update={
                    "d_model": 32,
                    "d_ff": 64,
                    "encoder_layers": 1,
                    "decoder_layers": 1,
                    "vocab_size": 300,
                    "max_report_tokens": 48,
                    "heads": 2,
                }
            ),
            "optimisation": job.optimisation.model_copy(update={"epochs": 1, "batch_size": 16}),
            "evaluation": job.evaluation.model_copy(update={"pgd_steps": 2, "robust_samples": 4}),
            "variants": tuple(v.model_copy(update={"epochs": 1}) for v in job.variants),
        }
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="YAML config (defaults apply when omitted)")
    parser.add_argument("--output", type=Path, help="results folder (default runs/report-<time>)")
    parser.add_argument("--resume", type=Path, help="continue the stopped run in this folder")
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
    parser.add_argument("--smoke-test", action="store_true", help="tiny data and model: seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        job, output = resolve_run(
            args, load=load_report_config, smoke=smoke_config, prefix="report"
        )
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    workers = job.optimisation.workers
    # Ray Train's controller takes a CPU slot beside the workers' on a local Ray
    started_ray = connect_ray(
        args.address,
        num_cpus=max(
            os.cpu_count() or 1, math.ceil(workers * job.optimisation.cpus_per_worker) + 1
        ),
        dashboard=True,
    )
    try:
        metrics = run(job, output)
    except SecureMedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if started_ray:
            ray.shutdown()
    print("\n" + results_table(metrics))
    print(f"wall time: {metrics['wall_seconds']:.0f} s; results: {output}/metrics.json, REPORT.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
