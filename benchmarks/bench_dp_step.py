"""How much a DP-SGD step costs next to a plain step, for the same model and batch.

It times :class:`securemed.privacy.LocalTrainer`'s own step (forward, backward, per-example
clipping, noise, optimizer step) with privacy on and off, so the number describes what a
hospital actually runs. The batch is random: the cost does not depend on the pixels.
Run through ``python -m benchmarks.run`` (``make bench``).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import opacus
import torch

from securemed.config import PrivacyConfig, TrainingConfig
from securemed.models import GradSampleMode, build_model, grad_sample_mode_for
from securemed.privacy import LocalTrainer

NUM_CLASSES = 6


def measure_dp_step(
    *,
    model_name: str = "simple_cnn",
    batch_size: int = 64,
    image_size: int = 64,
    repeats: int = 30,
    warmup: int = 5,
    threads: int = 1,
    grad_sample_mode: GradSampleMode | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Median seconds of a DP-SGD step and of a plain step, and their ratio.

    The two steps alternate (DP, plain, DP, ...) so that load from other processes on a
    shared machine slows both alike instead of biasing the ratio. ``threads`` defaults to 1,
    what each hospital actor gets.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be at least 1 and warmup non-negative")
    grad_sample_mode = grad_sample_mode or grad_sample_mode_for(model_name)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(seed)
        images = torch.randn((batch_size, 1, image_size, image_size), generator=generator)
        labels = (torch.rand((batch_size, NUM_CLASSES), generator=generator) < 0.3).float()
        torch.manual_seed(seed)
        model = build_model(model_name, num_classes=NUM_CLASSES)
        training = TrainingConfig(model=model_name, batch_size=batch_size)  # type: ignore[arg-type]

        def trainer(privacy: PrivacyConfig) -> LocalTrainer:
            return LocalTrainer(
                model,
                images,
                labels,
                training=training,
                privacy=privacy,
                total_rounds=1,
                insecure_seed=seed,
                grad_sample_mode=grad_sample_mode,
            )

        private = trainer(
            PrivacyConfig(target_epsilon=None, noise_multiplier=1.0, accountant="rdp")
        )
        plain = trainer(PrivacyConfig(enabled=False))
        for step_trainer in (private, plain):
            step_trainer.model.train()

        times: dict[str, list[float]] = {"dp": [], "non_dp": []}
        for index in range(warmup + repeats):
            for key, step_trainer in (("dp", private), ("non_dp", plain)):
                started = time.perf_counter()
                step_trainer._step(images, labels)
                elapsed = time.perf_counter() - started
                if index >= warmup:
                    times[key].append(elapsed)
    finally:
        torch.set_num_threads(previous_threads)

    dp_s = statistics.median(times["dp"])
    non_dp_s = statistics.median(times["non_dp"])
    return {
        "model": model_name,
        "batch_size": batch_size,
        "image_size": image_size,
        "threads": threads,
        "repeats": repeats,
        "warmup": warmup,
        "grad_sample_mode": grad_sample_mode,
        "dp_step_s": dp_s,
        "non_dp_step_s": non_dp_s,
        "ratio": dp_s / non_dp_s,
        "torch": torch.__version__,
        "opacus": opacus.__version__,
    }
