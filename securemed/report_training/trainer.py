"""One worker's share of report-model training: standard, adversarial, DP-SGD, or both.

Ray-free: the job's Ray Train loop builds a :class:`ReportTrainer` on every worker, calls
:meth:`ReportTrainer.train_epoch` and reports its state; ``torch.distributed`` is already set
up there by Ray's Torch backend, which is all the trainer needs to synchronise. In-process
(``world_size == 1``) it trains alone, which is what unit tests use.

* Standard: AdamW on the report loss plus the finding head's loss, data sharded across workers
  with ``DistributedSampler``, gradients averaged by ``DistributedDataParallel``.
* DP-SGD (Opacus): per-example gradients of every parameter that has them are clipped and
  noised (those that have none are frozen and listed, see :func:`freeze_for_dp`; T5's RMS
  norm has no Opacus grad sampler, so Opacus computes it with functorch). Each worker
  Poisson-samples its own shard at the global rate, noise is added once (by rank 0) and
  gradients are summed by Opacus's distributed optimizer (``DPDDP`` wraps the model: it only
  broadcasts the initial weights). The noise multiplier is calibrated to
  ``privacy.target_epsilon`` over the variant's steps; epsilon is read from the accountant,
  and the checkpoint lists exactly the parameters it applies to.
* Adversarial: a share of each batch (default 5 %) is replaced by adversarial versions of the
  same films, crafted against the current model with FGSM, PGD and DeepFool in turn. FGSM and
  PGD climb the report loss inside an L-infinity ball; DeepFool pushes the finding head's
  weakest decision over its boundary under an L2 cap. Attacks run in eval mode with Opacus's
  hooks off, so crafting leaves no per-example gradients behind.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset, TensorDataset

from securemed.adversarial import deepfool, fgsm, pgd
from securemed.config import DPSGDConfig
from securemed.models.report_generator import ReportGenerator
from securemed.privacy.dp_steps import empty_private_step
from securemed.privacy.local_training import noise_multiplier_for
from securemed.report_training.config import AdversarialConfig, OptimisationConfig
from securemed.report_training.dataset import PairedReports
from securemed.text.tokenizer import ReportTokenizer

#: called every few steps with (step in epoch, steps in epoch, mean loss so far)
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class EpochStats:
    """What one pass did: for progress lines and Ray Train's reported metrics."""

    epoch: int
    steps: int
    loss: float
    examples: int
    adversarial_examples: int
    empty_batches: int  # Poisson draws of no film (DP): still a step
    seconds: float
    epsilon: float | None


@dataclass(frozen=True)
class PrivacyFacts:
    """What DP-SGD guaranteed, for the checkpoint."""

    epsilon: float
    delta: float
    accountant: str
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    dp_parameters: tuple[str, ...]
    frozen_parameters: tuple[str, ...]


class ReportTrainer:
    """Trains ``model`` on ``data`` for ``epochs`` epochs on this worker.

    Args:
        model: the report model, on this worker (weights already loaded when fine-tuning).
        data: the split this variant trains on (every worker gets all of it; sampling shards).
        tokenizer: turns the reports into the token ids the model learns.
        optimisation: batch size (global), learning rate, finding-head weight, seed.
        epochs: how many passes this variant makes (fixes DP calibration up front).
        adversarial: the attack mix, or None for no adversarial examples.
        privacy: DP-SGD settings, or None to train without DP.
        rank, world_size: this worker's place in ``torch.distributed`` (1: alone).
    """

    def __init__(
        self,
        model: ReportGenerator,
        data: PairedReports,
        tokenizer: ReportTokenizer,
        *,
        optimisation: OptimisationConfig,
        epochs: int,
        adversarial: AdversarialConfig | None = None,
        privacy: DPSGDConfig | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(data) < optimisation.batch_size:
            raise ValueError(
                f"{len(data)} training reports cannot fill one batch of "
                f"{optimisation.batch_size}; lower optimisation.batch_size"
            )
        self.model = model
        self.optimisation = optimisation
        self.epochs = epochs
        self.adversarial = adversarial
        self.privacy = privacy
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.global_step = 0
        self._attack_rng = torch.Generator()
        self._sampling_rng = torch.Generator()
        self._noise_rng = torch.Generator()
        tokens = data.tokens(tokenizer, model.config.max_report_tokens)
        dataset = TensorDataset(data.images, tokens, data.findings)
        if privacy is not None:
            freeze_for_dp(model)
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=optimisation.learning_rate,
            weight_decay=optimisation.weight_decay,
        )
        self._engine: Any = None
        self.noise_multiplier: float | None = None
        if privacy is None:
            self._module: nn.Module = self._distributed(model)
            self._loader = self._sharded_loader(dataset)
            self._optimizer = optimizer
        else:
            self._module, self._optimizer, self._loader = self._make_private(
                model, optimizer, dataset, privacy
            )

    # -- set-up ------------------------------------------------------------------------------

    def _distributed(self, model: nn.Module) -> nn.Module:
        if self.world_size == 1:
            return model
        return nn.parallel.DistributedDataParallel(model)

    def _sharded_loader(self, dataset: TensorDataset) -> DataLoader:
        per_worker = max(1, self.optimisation.batch_size // self.world_size)
        sampler: DistributedSampler[tuple[torch.Tensor, ...]] = DistributedSampler(
            dataset,
            num_replicas=self.world_size,
            rank=self.rank,
            shuffle=True,
            seed=self.optimisation.seed,
            drop_last=True,
        )
        return DataLoader(dataset, batch_size=per_worker, sampler=sampler, drop_last=True)

    def _make_private(
        self,
        model: ReportGenerator,
        optimizer: torch.optim.Optimizer,
        dataset: TensorDataset,
        privacy: DPSGDConfig,
    ) -> tuple[nn.Module, torch.optim.Optimizer, DataLoader]:
        """Opacus's module and optimizer, and this worker's own Poisson loader.

        ``make_private`` sees the whole split (so its sample rate and expected batch are the
        global ones); each worker then Poisson-samples its own shard at that rate with its own
        generator, so every film is drawn independently with probability q, and every worker
        takes the same number of steps: an empty draw is a step too (Opacus's distributed
        sampler drops empty draws, which would leave workers out of step in the all-reduce).
        """
        from opacus import PrivacyEngine
        from opacus.data_loader import DPDataLoader
        from opacus.distributed import DifferentiallyPrivateDistributedDataParallel

        loader = DataLoader(dataset, batch_size=self.optimisation.batch_size)
        sample_rate = 1 / len(loader)
        steps = self.epochs * len(loader)
        self.noise_multiplier = noise_multiplier_for(privacy, sample_rate=sample_rate, steps=steps)
        self._sample_rate = sample_rate
        distributed = DifferentiallyPrivateDistributedDataParallel
        module = model if self.world_size == 1 else distributed(model)
        with warnings.catch_warnings():
            # secure_mode is off by design (seeded, reproducible runs), as in federated DP
            warnings.filterwarnings("ignore", message=".*Secure RNG.*")
            self._engine = PrivacyEngine(accountant=privacy.accountant)
            private, optimizer, _ = self._engine.make_private(
                module=module,
                optimizer=optimizer,
                data_loader=loader,
                noise_multiplier=self.noise_multiplier,
                max_grad_norm=privacy.max_grad_norm,
                poisson_sampling=True,
                noise_generator=self._noise_rng,
            )
        shard = Subset(dataset, range(self.rank, len(dataset), self.world_size))
        own = DPDataLoader(shard, sample_rate=sample_rate, generator=self._sampling_rng)
        return private, optimizer, own

    # -- training ----------------------------------------------------------------------------

    def train_epoch(self, progress: Progress | None = None) -> EpochStats:
        """One pass over the split (Poisson-sampled under DP); returns what it did."""
        self._seed_epoch()
        self._module.train()
        started = time.perf_counter()
        total = 0.0
        steps = examples = adversarial = empty = 0
        length = len(self._loader)
        for images, tokens, findings in self._loader:
            if len(images) == 0:  # Poisson sampling drew no film for this worker
                empty_private_step(self._optimizer, self.model)
                empty += 1
                steps += 1
                self.global_step += 1
                continue
            if self.adversarial is not None:
                images, mixed = self._mix_adversarial(images, tokens, findings)
                adversarial += mixed
            self._optimizer.zero_grad(set_to_none=True)
            loss = self._module(
                images, tokens, findings, finding_weight=self.optimisation.finding_weight
            )
            with warnings.catch_warnings():
                # Opacus's module hooks fire on outputs when the films need no gradient: expected
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss.backward()
            self._optimizer.step()
            total += float(loss.detach())
            steps += 1
            examples += len(images)
            self.global_step += 1
            if progress is not None and (steps % 25 == 0 or steps == length):
                progress(steps, length, total / steps)
        self.epoch += 1
        return EpochStats(
            epoch=self.epoch,
            steps=steps,
            loss=total / max(steps, 1),
            examples=examples,
            adversarial_examples=adversarial,
            empty_batches=empty,
            seconds=time.perf_counter() - started,
            epsilon=self.epsilon(),
        )

    def _seed_epoch(self) -> None:
        """Every random stream of this worker, derived from (seed, rank, epoch).

        Workers draw different films, attacks and dropout masks, and a run resumed from an
        epoch's checkpoint draws exactly what the uninterrupted run would have (no stream
        state to save, and no noise replayed from an earlier epoch).
        """
        seeds = np.random.SeedSequence([self.optimisation.seed, self.rank, self.epoch])
        sampling, attacks, noise, dropout = (int(s) for s in seeds.generate_state(4, np.uint64))
        self._sampling_rng.manual_seed(sampling)
        self._attack_rng.manual_seed(attacks)
        self._noise_rng.manual_seed(noise)
        torch.manual_seed(dropout)
        sampler = getattr(self._loader, "sampler", None)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(self.epoch)

    def _mix_adversarial(
        self, images: torch.Tensor, tokens: torch.Tensor, findings: torch.Tensor
    ) -> tuple[torch.Tensor, int]:
        """Replace a share of the batch by adversarial films; the attacks take turns."""
        assert self.adversarial is not None
        config = self.adversarial
        # at least one film a batch: 5 % of a 16-film worker batch would otherwise round to 0
        count = min(len(images), max(1, round(config.share * len(images))))
        chosen = torch.randperm(len(images), generator=self._attack_rng)[:count]
        attack = config.attacks[self.global_step % len(config.attacks)]
        with self._crafting():
            crafted = craft_adversarial(
                self.model,
                attack,
                images[chosen],
                tokens[chosen],
                findings[chosen],
                config,
                finding_weight=self.optimisation.finding_weight,
                generator=self._attack_rng,
            )
        mixed = images.clone()
        mixed[chosen] = crafted
        return mixed, count

    @contextlib.contextmanager
    def _crafting(self) -> Iterator[None]:
        """Eval mode (no dropout) and, under DP, Opacus's hooks off while attacks run."""
        hooks = getattr(self._module, "disable_hooks", None)
        if hooks is not None:
            self._module.disable_hooks()  # type: ignore[operator]
        self.model.eval()
        try:
            yield
        finally:
            self.model.train()
            if hooks is not None:
                self._module.enable_hooks()  # type: ignore[operator]

    # -- state -------------------------------------------------------------------------------

    def epsilon(self) -> float | None:
        if self._engine is None or self.privacy is None or self.global_step == 0:
            return None
        return float(self._engine.get_epsilon(self.privacy.delta))

    def privacy_facts(self) -> PrivacyFacts | None:
        if self.privacy is None or self.noise_multiplier is None:
            return None
        names = [(n, p.requires_grad) for n, p in self.model.named_parameters()]
        return PrivacyFacts(
            epsilon=self.epsilon() or 0.0,
            delta=self.privacy.delta,
            accountant=self.privacy.accountant,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.privacy.max_grad_norm,
            sample_rate=self._sample_rate,
            dp_parameters=tuple(n for n, trained in names if trained),
            frozen_parameters=tuple(n for n, trained in names if not trained),
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed worker needs: weights, optimizer, accountant, position."""
        optimizer = getattr(self._optimizer, "original_optimizer", self._optimizer)
        state: dict[str, Any] = {
            "model": self.model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
        }
        if self._engine is not None:
            state["accountant"] = self._engine.accountant.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        optimizer = getattr(self._optimizer, "original_optimizer", self._optimizer)
        optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        if self._engine is not None:
            self._engine.accountant.load_state_dict(state["accountant"])


def freeze_for_dp(model: nn.Module) -> tuple[str, ...]:
    """Freeze the parameters DP-SGD cannot give per-example gradients; returns their names.

    Three kinds: T5's relative position biases, looked up by (query, key) position rather
    than by example (Opacus would read the query axis as the batch); parameters a container
    module owns itself, such as a ViT's class token and position embeddings (Opacus computes
    per-example gradients in leaf layers, and the tower's features are read through
    ``forward_intermediates``, which a hook on the container does not see); and everything
    in ``nn.MultiheadAttention`` (open_clip's ViT blocks), whose packed projections are used
    functionally. The default ResNet tower loses nothing but T5's biases. Frozen parameters
    keep the values they had before DP training; the checkpoint lists them as not covered.
    """
    frozen: dict[str, None] = {}  # ordered, no repeats (tied weights)
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        if isinstance(module, nn.MultiheadAttention):
            chosen = list(module.named_parameters())
        elif "relative_attention_bias" in module_name or any(True for _ in module.children()):
            chosen = list(module.named_parameters(recurse=False))
        else:
            continue
        for name, parameter in chosen:
            parameter.requires_grad_(False)
            frozen[prefix + name] = None
    return tuple(frozen)


def craft_adversarial(
    model: ReportGenerator,
    attack: str,
    images: torch.Tensor,
    tokens: torch.Tensor,
    findings: torch.Tensor,
    config: AdversarialConfig,
    *,
    finding_weight: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Adversarial versions of ``images`` against ``model`` with one of the three attacks."""

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        return model.per_example_loss(x, tokens, findings, finding_weight=finding_weight)

    def margin_fn(x: torch.Tensor) -> torch.Tensor:
        return model.finding_logits(x) * (2 * findings - 1)  # > 0 while each call is right

    if attack == "fgsm":
        return fgsm(loss_fn, images, epsilon=config.epsilon)
    if attack == "pgd":
        return pgd(
            loss_fn, images, epsilon=config.epsilon, steps=config.pgd_steps, generator=generator
        )
    if attack == "deepfool":
        return deepfool(
            margin_fn,
            images,
            overshoot=config.deepfool_overshoot,
            max_iter=config.deepfool_max_iter,
            max_norm=config.deepfool_max_norm,
        )
    raise ValueError(f"unknown attack {attack!r}: use fgsm, pgd or deepfool")
