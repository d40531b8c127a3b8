"""Fine-tuning the notes LM three ways: as is, regularized, and with DP-SGD.

One loop, three recipes (:class:`FineTuneRecipe`), so the leakage study compares training
procedures and nothing else:

- **baseline**: plain AdamW for a fixed number of epochs, no weight decay, no dropout: what a
  team fine-tuning on its notes would do first, and what memorises most.
- **regularized**: weight decay, dropout and early stopping on a validation set's NLL (the
  weights of the best epoch are kept): the usual defences against overfitting, which reduce
  memorisation without bounding it.
- **DP-SGD** (Opacus): each note's gradient clipped and Gaussian noise added, notes drawn by
  Poisson sampling (any other sampler voids the accounting), noise calibrated so the whole
  fine-tuning ends at the target epsilon. The privacy unit is the note.

Randomness (order, dropout, sampling, noise) comes from ``seed``, so a shadow model can be
re-trained exactly; this is a reproducibility seed, not cryptographic randomness.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from securemed.config import DPSGDConfig
from securemed.errors import ConfigError
from securemed.models.early_stopping import run_epochs
from securemed.notes_lm.model import EncodedNotes, notes_nll, per_note_nll, set_dropout
from securemed.privacy.dp_steps import empty_private_step
from securemed.privacy.local_training import noise_multiplier_for

#: ``progress(epoch, epochs, validation_nll)`` after every epoch
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class FineTuneRecipe:
    """How one variant is fine-tuned.

    Attributes:
        patience: stop after this many epochs without a better validation NLL and keep the
            best epoch's weights; ``None`` trains every epoch and keeps the last.
        privacy: DP-SGD settings (``batch_size`` is then the expected Poisson batch);
            ``None`` trains without privacy.
    """

    name: str
    epochs: int
    learning_rate: float
    batch_size: int
    weight_decay: float = 0.0
    dropout: float = 0.0
    patience: int | None = None
    privacy: DPSGDConfig | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"recipe {self.name!r}: epochs and batch_size must be positive")
        if not self.learning_rate > 0 or self.weight_decay < 0:
            raise ConfigError(f"recipe {self.name!r}: learning_rate > 0, weight_decay >= 0")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"recipe {self.name!r}: patience must be at least 1")
        if self.privacy is not None and not self.privacy.enabled:
            raise ConfigError(f"recipe {self.name!r}: give privacy=None to train without DP")


@dataclass(frozen=True)
class FineTuneResult:
    """The fine-tuned weights and what it took to get them."""

    state: dict[str, torch.Tensor]
    epochs_run: int
    best_epoch: int
    validation_nll: float
    epsilon: float | None
    noise_multiplier: float | None
    seconds: float


def fine_tune(
    model: nn.Module,
    train: EncodedNotes,
    validation: EncodedNotes,
    recipe: FineTuneRecipe,
    *,
    seed: int,
    progress: Progress | None = None,
) -> FineTuneResult:
    """Fine-tune a copy of ``model`` on ``train`` by ``recipe``; ``model`` is left untouched."""
    if len(train) < 2:
        raise ConfigError("fine-tuning needs at least two notes")
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = copy.deepcopy(model)
    set_dropout(model, recipe.dropout)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
    )
    dataset = TensorDataset(train.ids, train.mask)
    sampling = torch.Generator().manual_seed(seed)
    run_epoch: Callable[[], None]
    spent: Callable[[float], float] | None = None
    sigma: float | None = None
    if recipe.privacy is None:
        loader = DataLoader(dataset, batch_size=recipe.batch_size, shuffle=True, generator=sampling)
        run_epoch = _plain_epoch(model, optimizer, loader)
    else:
        spent, sigma, run_epoch = _private_epochs(
            model, optimizer, dataset, recipe, recipe.privacy, sampling, seed
        )

    def report(epoch: int, nll: float) -> None:
        if progress is not None:
            progress(epoch, recipe.epochs, nll)

    run = run_epochs(
        model,
        epochs=recipe.epochs,
        train_epoch=run_epoch,
        validation_loss=lambda: float(np.mean(notes_nll(model, validation))),
        patience=recipe.patience,
        after_epoch=report,
    )
    epsilon = None
    if spent is not None:
        assert recipe.privacy is not None
        epsilon = spent(recipe.privacy.delta)
    return FineTuneResult(
        state=run.state,
        epochs_run=run.epochs_run,
        best_epoch=run.best_epoch,
        validation_nll=run.best_loss,
        epsilon=epsilon,
        noise_multiplier=sigma,
        seconds=time.perf_counter() - started,
    )


def _plain_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader
) -> Callable[[], None]:
    def run() -> None:
        for ids, mask in loader:
            optimizer.zero_grad(set_to_none=True)
            per_note_nll(model, ids, mask).mean().backward()
            optimizer.step()

    return run


def _private_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: TensorDataset,
    recipe: FineTuneRecipe,
    privacy: DPSGDConfig,
    sampling: torch.Generator,
    seed: int,
) -> tuple[Callable[[float], float], float, Callable[[], None]]:
    """The accountant's epsilon at a delta, the noise multiplier, and one epoch of DP-SGD."""
    from opacus import PrivacyEngine
    from opacus.data_loader import DPDataLoader

    loader = DataLoader(dataset, batch_size=recipe.batch_size)
    sample_rate = 1 / len(loader)
    sigma = noise_multiplier_for(
        privacy, sample_rate=sample_rate, steps=recipe.epochs * len(loader)
    )
    noise = torch.Generator().manual_seed(seed + 1)
    with warnings.catch_warnings():
        # secure_mode is off by design (seeded, reproducible runs), as in federated DP
        warnings.filterwarnings("ignore", message=".*Secure RNG.*")
        engine = PrivacyEngine(accountant=privacy.accountant)
        private, optimizer, _ = engine.make_private(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=sigma,
            max_grad_norm=privacy.max_grad_norm,
            poisson_sampling=True,
            noise_generator=noise,
            grad_sample_mode="hooks",
        )
    # the Poisson sampler, drawing from this run's own generator (make_private's would draw
    # from torch's global one, which dropout also consumes)
    poisson = DPDataLoader(dataset, sample_rate=sample_rate, generator=sampling)

    def run() -> None:
        for ids, mask in poisson:
            if len(ids) == 0:
                empty_private_step(optimizer, private)
                continue
            optimizer.zero_grad(set_to_none=True)
            with warnings.catch_warnings():
                # Opacus's hooks fire on the embedding's output (token ids need no gradient)
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                per_note_nll(private, ids, mask).mean().backward()
            optimizer.step()

    return lambda delta: float(engine.get_epsilon(delta)), sigma, run
