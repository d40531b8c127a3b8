"""The shared epoch loop: the best epoch's weights, stopping when patience runs out."""

from __future__ import annotations

import math

import pytest
import torch

from securemed.models.early_stopping import run_epochs


def _counting_model() -> torch.nn.Module:
    """A one-weight model whose weight is the number of epochs trained so far."""
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    return model


def _epoch(model: torch.nn.Module):
    def train() -> None:
        with torch.no_grad():
            model.weight.add_(1.0)

    return train


def test_patience_keeps_the_best_epoch_and_stops_after_it() -> None:
    model = _counting_model()
    losses = iter([5.0, 3.0, 4.0, 2.5, 2.6, 2.7, 1.0])
    run = run_epochs(
        model, epochs=7, train_epoch=_epoch(model), validation_loss=lambda: next(losses),
        patience=2,
    )  # fmt: skip
    assert (run.best_epoch, run.epochs_run, run.best_loss) == (4, 6, 2.5)
    assert float(run.state["weight"]) == 4.0  # the best epoch's weights
    assert float(model.weight) == 6.0  # the model itself ran on to epoch 6


def test_without_patience_every_epoch_runs_and_none_is_validated() -> None:
    model = _counting_model()
    calls: list[int] = []

    def validation_loss() -> float:
        calls.append(1)
        return 1.0

    run = run_epochs(model, epochs=3, train_epoch=_epoch(model), validation_loss=validation_loss)
    assert (run.best_epoch, run.epochs_run) == (3, 3) and math.isnan(run.best_loss)
    assert float(run.state["weight"]) == 3.0 and calls == []


def test_progress_gets_every_epoch_s_validation_loss() -> None:
    model = _counting_model()
    seen: list[tuple[int, float]] = []
    losses = iter([2.0, 1.0])
    run = run_epochs(
        model, epochs=2, train_epoch=_epoch(model), validation_loss=lambda: next(losses),
        after_epoch=lambda epoch, loss: seen.append((epoch, loss)),
    )  # fmt: skip
    assert seen == [(1, 2.0), (2, 1.0)] and run.best_loss == 1.0


def test_patience_without_a_validation_loss_is_refused() -> None:
    model = _counting_model()
    with pytest.raises(ValueError, match="validation loss"):
        run_epochs(model, epochs=2, train_epoch=_epoch(model), patience=1)
