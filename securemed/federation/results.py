"""What a federated run leaves on disk: metrics, a checkpoint per round, a progress plot,
and the scalars it logs for TensorBoard.

Every file is written to a temporary name and renamed into place, so a crash mid-write leaves
the previous complete file, and ``--resume`` always finds a checkpoint it can load. Only
aggregate statistics are written (AUROC, epsilon, timings): no image, label or patient data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from securemed.durable import atomic_write
from securemed.errors import ConfigError

CHECKPOINT_DIR = "checkpoints"
_CHECKPOINT = re.compile(r"round-(\d{4})\.pt$")


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON atomically (NaN is refused: it is not JSON)."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2, allow_nan=False)))


def save_checkpoint(output: Path, round_number: int, payload: Mapping[str, Any]) -> Path:
    """Save ``payload`` (global model, privacy states, metrics so far) for a round."""
    path = output / CHECKPOINT_DIR / f"round-{round_number:04d}.pt"
    atomic_write(path, lambda tmp: torch.save(dict(payload), tmp))
    return path


def latest_checkpoint(output: Path) -> tuple[int, dict[str, Any]] | None:
    """The newest round checkpoint under ``output``, or None when there is none."""
    folder = output / CHECKPOINT_DIR
    rounds = (
        sorted(
            int(match.group(1))
            for path in folder.glob("round-*.pt")
            if (match := _CHECKPOINT.search(path.name))
        )
        if folder.is_dir()
        else []
    )
    if not rounds:
        return None
    path = folder / f"round-{rounds[-1]:04d}.pt"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file must say which file, not just "unpickling"
        raise ConfigError(
            f"checkpoint {path} cannot be read ({error}); remove it to resume"
        ) from None
    return rounds[-1], payload


def evaluation_scalars(test: Mapping[str, Any]) -> dict[str, float | None]:
    """The global model's test metrics as TensorBoard scalars (macro-AUROC None: undefined)."""
    return {
        "federation/test_macro_auroc": test["macro_auroc"],
        "federation/test_accuracy": test["accuracy"],
    }


def round_scalars(record: Mapping[str, Any]) -> dict[str, float | None]:
    """A round's TensorBoard scalars, by tag: the global model's test metrics, who took part,
    how long it took, and each hospital's epsilon as it reported it with its update.

    No hospital's training loss: it is data-dependent and never leaves a hospital outside DP,
    so neither the aggregator nor the driver has it. A hospital could log it into its own
    folder, but in simulation its folder is the run folder the operator reads, so it does not.
    """
    return {
        **evaluation_scalars(record["test"]),
        "federation/round_seconds": record["seconds"],
        "federation/participants": len(record["participants"]),
        "federation/declined": len(record["declined"]),
        "federation/missed_deadline": len(record["missed_deadline"]),
        **{f"privacy/epsilon/{name}": value for name, value in record["epsilon"].items()},
    }


def plot_progress(
    rounds: list[Mapping[str, Any]], baseline_auroc: float | None, path: Path
) -> None:
    """Macro-AUROC and per-hospital epsilon by round, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    def _gaps(values: list[float | None]) -> list[float]:
        return [float("nan") if value is None else value for value in values]

    numbers = [entry["round"] for entry in rounds]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    aurocs = _gaps([entry["test"]["macro_auroc"] for entry in rounds])
    left.plot(numbers, aurocs, marker="o", label="federated")
    if baseline_auroc is not None:
        left.axhline(baseline_auroc, linestyle="--", color="grey", label="central, non-DP")
    left.set(xlabel="round", ylabel="test macro-AUROC", title="Utility")
    left.legend()
    hospitals = sorted({name for entry in rounds for name in entry["epsilon"]})
    for hospital in hospitals:
        epsilons = _gaps([entry["epsilon"].get(hospital) for entry in rounds])
        right.plot(numbers, epsilons, marker="o", label=hospital)
    right.set(xlabel="round", ylabel="epsilon spent", title="Privacy (cumulative)")
    if hospitals:
        right.legend()
    for axis in (left, right):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # rounds are whole numbers
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
    plt.close(figure)
