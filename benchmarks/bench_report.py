"""The report model's costs: generated tokens per second, and a DP step next to a plain one.

Generation is timed on the default model (``ReportModelConfig()``) with greedy decoding at batch
sizes 1 and 8, on one thread as a serving replica or a Ray Train worker gets it. Its weights are
random, so every report runs to ``max_new_tokens``: tokens per second is what matters, not the
text. The training step is :class:`ReportTrainer`'s own (forward, backward, and under DP the
per-example clipping and noise) on synthetic films, DP and plain epochs alternating so load
from other processes slows both alike.
Run through ``python -m benchmarks.run`` (``make bench``).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from securemed.config import DPSGDConfig
from securemed.models.report_generator import ReportGenerator, ReportModelConfig
from securemed.report_training.config import OptimisationConfig, ReportDataConfig
from securemed.report_training.dataset import load_split
from securemed.report_training.trainer import ReportTrainer
from securemed.text import ReportTokenizer
from securemed.text.tokenizer import EOS_ID


def measure_generation(
    *,
    config: ReportModelConfig | None = None,
    batch_sizes: tuple[int, ...] = (1, 8),
    repeats: int = 5,
    max_new_tokens: int | None = None,
    threads: int = 1,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Generated tokens per second (greedy) at each batch size: median over ``repeats``."""
    config = config or ReportModelConfig()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        model = ReportGenerator(config).eval()
        rows = []
        for batch_size in batch_sizes:
            images = torch.rand(batch_size, 1, config.image_size, config.image_size)
            model.generate(images, max_new_tokens=4)  # warm-up
            seconds, tokens = [], 0
            for _ in range(repeats):
                started = time.perf_counter()
                ids = model.generate(images, max_new_tokens=max_new_tokens)
                seconds.append(time.perf_counter() - started)
                tokens = generated_tokens(ids)
            median = statistics.median(seconds)
            rows.append(
                {
                    "batch_size": batch_size,
                    "tokens_per_batch": tokens,
                    "seconds_per_batch": median,
                    "tokens_per_second": tokens / median,
                    "reports_per_second": batch_size / median,
                }
            )
        return rows
    finally:
        torch.set_num_threads(previous)


def generated_tokens(ids: torch.Tensor) -> int:
    """Tokens decoded: each row up to and including its first EOS (random weights may emit
    the pad id as a token, so padding cannot be told apart by value)."""
    is_eos = ids == EOS_ID
    first = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1) + 1, ids.shape[1])
    return int(first.sum())


def measure_report_dp_step(
    *,
    model: ReportModelConfig | None = None,
    batch_size: int = 32,
    steps_per_epoch: int = 4,
    repeats: int = 5,
    threads: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Median seconds per step of DP-SGD and of plain training, and their ratio."""
    model = model or ReportModelConfig()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        data = load_split(
            ReportDataConfig(
                image_size=model.image_size,
                train_samples=batch_size * steps_per_epoch,
                seed=seed,
            ),
            "train",
        )
        tokenizer = ReportTokenizer.train(data.texts, vocab_size=min(model.vocab_size, 1000))
        optimisation = OptimisationConfig(batch_size=batch_size, seed=seed)

        def trainer(privacy: DPSGDConfig | None) -> ReportTrainer:
            torch.manual_seed(seed)
            return ReportTrainer(
                ReportGenerator(model),
                data,
                tokenizer,
                optimisation=optimisation,
                epochs=repeats + 1,
                privacy=privacy,
            )

        private = trainer(DPSGDConfig(target_epsilon=None, noise_multiplier=1.0))
        plain = trainer(None)
        private.train_epoch(), plain.train_epoch()  # warm-up
        dp_steps, plain_steps = [], []
        for _ in range(repeats):
            for runner, times in ((private, dp_steps), (plain, plain_steps)):
                stats = runner.train_epoch()
                # a Poisson batch's size varies: time per film, scaled to the expected batch
                times.append(stats.seconds / stats.examples * batch_size)
        dp_step, plain_step = statistics.median(dp_steps), statistics.median(plain_steps)
        return {
            "batch_size": batch_size,
            "image_size": model.image_size,
            "threads": threads,
            "repeats": repeats,
            "dp_step_s": dp_step,
            "non_dp_step_s": plain_step,
            "ratio": dp_step / plain_step,
        }
    finally:
        torch.set_num_threads(previous)
