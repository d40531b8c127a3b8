"""Epoch loops that keep the best epoch's weights: early stopping, shared by every trainer
that has a validation set (the notes LM, the audits' classifier and report-model copies)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from securemed.models.snapshot import snapshot_weights


@dataclass(frozen=True)
class EpochsRun:
    """What :func:`run_epochs` kept: the best epoch's weights and where it stopped."""

    #: the best epoch's weights (the last epoch's without patience)
    state: dict[str, torch.Tensor]
    best_epoch: int
    epochs_run: int
    #: the validation loss of ``state``'s epoch (nan when nothing was validated)
    best_loss: float


def run_epochs(
    model: nn.Module,
    *,
    epochs: int,
    train_epoch: Callable[[], object],
    validation_loss: Callable[[], float] | None = None,
    patience: int | None = None,
    after_epoch: Callable[[int, float], None] | None = None,
) -> EpochsRun:
    """Run ``train_epoch`` (which updates ``model``) up to ``epochs`` times.

    With ``patience``, ``model`` is validated after every epoch, the weights of the epoch with
    the lowest validation loss are kept, and training stops once ``patience`` epochs pass
    without a new best. Without it every epoch runs and the last one's weights are kept, and
    ``model`` is validated only for ``after_epoch``. ``model`` is left with the last epoch's
    weights; load ``state`` to use the best.
    """
    if patience is not None and validation_loss is None:
        raise ValueError("early stopping (patience) needs a validation loss")
    best_loss, best_epoch = math.inf, 0
    # the weights before training, kept only if no epoch ever validates better (a NaN loss)
    best_state = snapshot_weights(model) if patience is not None else {}
    epoch = 0
    for epoch in range(1, epochs + 1):
        train_epoch()
        loss = math.nan
        if validation_loss is not None and (patience is not None or after_epoch is not None):
            loss = validation_loss()
        if after_epoch is not None:
            after_epoch(epoch, loss)
        if patience is None:
            best_loss, best_epoch = loss, epoch
        elif loss < best_loss:
            best_loss, best_epoch, best_state = loss, epoch, snapshot_weights(model)
        elif epoch - best_epoch >= patience:
            break
    if patience is None:
        best_state = snapshot_weights(model)
    return EpochsRun(best_state, best_epoch, epoch, best_loss)
