"""The local trainer a hospital runs in every federated round, with or without DP-SGD.

It follows Opacus' habit of wrapping what the caller already knows: give it a model, the
hospital's images and multi-hot labels, and the two configs; every round it takes the global
weights and hands back plain new weights (a CPU ``state_dict``) plus the privacy spent so far.
One switch (``privacy.enabled``) turns the same loop into the non-private baseline trainer.

What it does on purpose:

* The Opacus ``PrivacyEngine`` is set up once and reused every round, so its accountant
  composes the privacy loss of the whole federation, not of one round.
* With ``privacy.target_epsilon`` the noise is calibrated once for every step the federation
  will take (``total_rounds * local_epochs`` epochs), so epsilon after the last round stays
  within the target.
* Batches are drawn only by Opacus' Poisson sampler: any other sampler silently voids the
  accounting. Empty Poisson batches still take a (pure-noise) step and are accounted, exactly
  as the analysis assumes.
* The sampler and the noise generators are reseeded from the operating system before every
  step (:class:`~securemed.privacy.randomness.NoiseSource`): nobody holding the config can
  regenerate the noise. Only ``insecure_seed`` (experiments and tests) makes them follow from a
  seed, and :attr:`LocalResult.secure_noise` then says the epsilon is no guarantee.
* The privacy unit is the record (one image) unless ``patient_ids`` are given; then it is the
  patient: patients are Poisson-sampled and each patient's summed gradient is clipped
  (:mod:`securemed.privacy.patient_level`). Every epsilon it reports carries its unit
  (``LocalResult.privacy_unit``), and an accountant state of one unit is refused by a
  trainer of the other: the two epsilons do not compose.

What it does not do: enforce a budget across rounds (the budget orchestrator and the privacy
ledger do), talk to the network, or pick threads (the host does).
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.accountants import IAccountant, create_accountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.grad_sample.utils import prepare_module
from opacus.validators import ModuleValidator
from opacus.validators.errors import UnsupportedModuleError
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import DataLoader, TensorDataset

from securemed.config import DPSGDConfig, PrivacyConfig, TrainingConfig
from securemed.errors import ConfigError, DataError
from securemed.models import GradSampleMode, grad_sample_mode_for
from securemed.privacy.patient_level import (
    PatientBatch,
    PatientIndex,
    PatientSampler,
    PrivacyUnit,
    check_patient_ids,
    patient_schedule,
    privatize_patient_gradients,
)
from securemed.privacy.randomness import NoiseSource

log = logging.getLogger(__name__)

_SECURE_RNG_WARNING = "Secure RNG turned off"


@dataclass(frozen=True)
class LocalResult:
    """What one hospital hands back after a round of local training.

    Attributes:
        state: the new weights on the CPU, keyed exactly as ``model.state_dict()``.
        num_samples: the size of the local data set (the FedAvg weight).
        epsilon: cumulative epsilon at ``privacy.delta`` after this round; ``None`` without DP.
        steps: optimizer steps taken this round (empty Poisson batches included).
        train_seconds: wall-clock seconds of local training.
        loss: mean per-example training loss seen this round (``nan`` if every batch was
            empty, which only tiny data sets can produce).
        privacy_unit: what ``epsilon`` protects: one image (``"record"``) or one patient with
            all of their images (``"patient"``). A record-level epsilon says nothing about a
            patient with several studies beyond group privacy.
        secure_noise: whether the noise and sampling came from the OS; ``False`` in the
            insecure reproducible mode, where ``epsilon`` is not a guarantee.
    """

    state: dict[str, torch.Tensor]
    num_samples: int
    epsilon: float | None
    steps: int
    train_seconds: float
    loss: float
    privacy_unit: PrivacyUnit = "record"
    secure_noise: bool = True


class LocalTrainer:
    """Train a hospital's copy of the global model for one round at a time.

    The trainer works on its own deep copy of ``model``: the module you pass is the
    architecture template and is left untouched. Every round starts from the global weights
    with a fresh optimizer (no momentum carried across rounds, the FedAvg convention: momentum
    from weights the aggregator has since replaced would point the wrong way).

    Args:
        model: the architecture to train (its weights are replaced every round).
        images: ``(N, C, H, W)`` floating-point tensor of the hospital's images.
        labels: ``(N, num_classes)`` multi-hot tensor with values in {0, 1}.
        training: batch size (under DP the expected Poisson batch in privacy units: images,
            or patients when ``patient_ids`` are given; without DP always images), learning
            rate, momentum and local epochs.
        privacy: DP-SGD settings; ``enabled=False`` trains without privacy.
        total_rounds: rounds the federation will run; the noise calibration for
            ``target_epsilon`` spends the budget over all of them.
        insecure_seed: ``None`` (the default) draws the sampler's and the noise's seeds from
            the OS before every step. An integer makes them reproducible from it, and
            predictable by anyone who knows it: experiments and tests only.
        accountant_state: what :meth:`accountant_state` returned before a crash; restoring
            it makes epsilon continue from there.
        grad_sample_mode: how Opacus computes per-example gradients: ``"ew"`` (torch's
            ExpandedWeights, 1.1-1.7x a plain step for SimpleCNN) or ``"hooks"`` (about 2x,
            but it handles layers ExpandedWeights cannot). ``None`` takes the mode known to
            work for ``training.model`` (:func:`securemed.models.grad_sample_mode_for`).
        patient_ids: one integer id per image, the same for every study of a patient. Given,
            the privacy unit is the patient: each step Poisson-samples patients at rate
            ``batch_size / num_patients``, takes all their images, clips each patient's summed
            gradient, and epsilon protects a patient. ``None`` (the default) keeps the unit
            at the record (image).
        max_images_per_patient: under patient-level privacy, train on at most this many of a
            drawn patient's images per step (a random subset). It bounds the cost of a step;
            privacy does not need it, since the clip is per patient. ``None`` takes all.

    Raises:
        DataError: images and labels (or patient ids) are empty, of different lengths or
            malformed.
        ConfigError: the batch is larger than the data set, the model does not fit the data,
            the budget cannot be met, or the accountant state does not fit the config.

    Example:
        >>> trainer = LocalTrainer(model, images, labels, training=TrainingConfig(),
        ...                        privacy=PrivacyConfig(), total_rounds=5)
        >>> result = trainer.train_round(global_state)
        >>> result.epsilon  # privacy spent so far by this hospital
    """

    def __init__(
        self,
        model: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        training: TrainingConfig,
        privacy: PrivacyConfig,
        total_rounds: int,
        insecure_seed: int | None = None,
        accountant_state: Mapping[str, Any] | None = None,
        grad_sample_mode: GradSampleMode | None = None,
        patient_ids: np.ndarray | None = None,
        max_images_per_patient: int | None = None,
    ) -> None:
        if total_rounds < 1:
            raise ConfigError(f"total_rounds must be at least 1, got {total_rounds}")
        if insecure_seed is not None and insecure_seed < 0:
            raise ConfigError(f"insecure_seed must be a non-negative integer, got {insecure_seed}")
        if grad_sample_mode is None:
            grad_sample_mode = grad_sample_mode_for(training.model)
        if grad_sample_mode not in ("ew", "hooks"):
            raise ConfigError(f"grad_sample_mode must be 'ew' or 'hooks', got {grad_sample_mode!r}")
        labels = _validate_data(images, labels)
        self._patients: PatientIndex | None = None
        if patient_ids is not None:
            self._patients = PatientIndex.from_ids(
                check_patient_ids(patient_ids, num_images=len(images))
            )
            if privacy.enabled:  # batches count patients: refuse a batch of more patients first
                patient_schedule(self._patients.num_patients, training.batch_size)
        if max_images_per_patient is not None and max_images_per_patient < 1:
            raise ConfigError(
                f"max_images_per_patient must be at least 1 or None, got {max_images_per_patient}"
            )
        self._max_images_per_patient = max_images_per_patient
        self._unit: PrivacyUnit = "patient" if self._patients is not None else "record"
        if training.batch_size > len(images):
            raise ConfigError(
                f"training.batch_size ({training.batch_size}) is larger than this hospital's "
                f"data set ({len(images)} images); lower the batch size"
            )

        self._training = training
        self._privacy = privacy
        self._randomness = NoiseSource(insecure_seed)
        self._num_samples = len(images)
        self._model = copy.deepcopy(model)
        self._model.train()  # Opacus refuses a model in eval mode; callers often pass one
        self._shapes = {name: t.shape for name, t in self._model.state_dict().items()}
        weights_dtype = next(self._model.parameters()).dtype
        if images.dtype != weights_dtype:
            raise DataError(
                f"images are {images.dtype} but the model's weights are {weights_dtype}; "
                f"convert the images (e.g. images.to({weights_dtype}))"
            )
        self._blank = torch.zeros((2, *images.shape[1:]), dtype=images.dtype)
        _check_model_fits(self._model, self._blank, num_classes=labels.shape[1])

        self._trainable = [p for p in self._model.parameters() if p.requires_grad]
        self._sampler_generator = torch.Generator()
        self._noise_generator = torch.Generator()
        loader = DataLoader(
            TensorDataset(images, labels),
            batch_size=training.batch_size,
            shuffle=not privacy.enabled,  # DP replaces this with Poisson sampling
            generator=self._sampler_generator,
        )
        optimizer = _build_optimizer(self._trainable, training)
        self._lock = threading.Lock()
        self._accountant: IAccountant | None = None
        self._noise_multiplier: float | None = None
        self._patient_sampler: PatientSampler | None = None
        self._patient_rate = 0.0
        self._sample_rate = 0.0
        self._steps_per_round = 0
        self._expected_batch_patients = 0.0
        self._images, self._labels = images, labels  # rows the patient sampler indexes
        self._accounted_steps = 0
        self._epsilon: float | None = None
        self._history_snapshot: list[tuple[float, float, int]] = []

        if not privacy.enabled:
            if accountant_state is not None and accountant_state.get("history"):
                raise ConfigError(
                    "this hospital has already spent privacy under DP (accountant_state has a "
                    "history) but privacy.enabled is false; resume with privacy enabled"
                )
            self._module: nn.Module = self._model
            self._optimizer: torch.optim.Optimizer = optimizer
            self._loader = loader
            return

        if self._patients is not None:
            self._setup_patient_dp(
                self._patients, optimizer, total_rounds=total_rounds, mode=grad_sample_mode
            )
        else:
            self._setup_dp(loader, optimizer, total_rounds=total_rounds, mode=grad_sample_mode)
        if accountant_state is not None:
            self._restore(accountant_state)
        self._snapshot_privacy()

    # ----------------------------------------------------------------------------- set-up

    def _setup_dp(
        self,
        loader: DataLoader,
        optimizer: torch.optim.Optimizer,
        *,
        total_rounds: int,
        mode: GradSampleMode,
    ) -> None:
        privacy = self._privacy
        # Opacus samples each record with probability 1/len(loader) and runs int(1/q) steps an
        # epoch, which float rounding can make len(loader) - 1 (1 / (1 / 93) < 93). Its
        # accountant then records the rate 1/steps_per_epoch, a little higher than the
        # sampler's: calibrate for what the accountant records, or epsilon ends above target.
        steps_per_epoch = int(1 / (1 / len(loader)))
        sample_rate = 1 / steps_per_epoch
        planned_steps = total_rounds * self._training.local_epochs * steps_per_epoch
        sigma = noise_multiplier_for(privacy, sample_rate=sample_rate, steps=planned_steps)

        with warnings.catch_warnings():
            # Opacus' secure_mode needs torchcsprng; NoiseSource reseeds its generators from
            # the OS before every step instead (see securemed.privacy.randomness).
            warnings.filterwarnings("ignore", message=_SECURE_RNG_WARNING)
            engine = PrivacyEngine(accountant=privacy.accountant, secure_mode=False)
        module, dp_optimizer, dp_loader = engine.make_private(
            module=self._model,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=sigma,
            max_grad_norm=privacy.max_grad_norm,
            poisson_sampling=True,
            noise_generator=self._noise_generator,
            grad_sample_mode=mode,
        )
        if len(dp_loader) != steps_per_epoch:  # pragma: no cover - guards an Opacus change
            raise ConfigError(
                f"Opacus plans {len(dp_loader)} steps an epoch, the calibration "
                f"{steps_per_epoch}; the noise would not match the budget"
            )
        self._accountant = engine.accountant
        self._noise_multiplier = float(sigma)
        self._sample_rate = sample_rate
        self._steps_per_round = self._training.local_epochs * steps_per_epoch
        self._module = module
        self._optimizer = dp_optimizer
        self._loader = dp_loader
        _probe_per_sample_gradients(self._module, self._optimizer, self._blank, mode)

    def _setup_patient_dp(
        self,
        patients: PatientIndex,
        optimizer: torch.optim.Optimizer,
        *,
        total_rounds: int,
        mode: GradSampleMode,
    ) -> None:
        # Opacus' optimizer and loader clip and sample images; here Opacus supplies the
        # per-image gradients and the accountant, patient_level the grouping, clip and noise.
        sample_rate, steps_per_epoch = patient_schedule(
            patients.num_patients, self._training.batch_size
        )
        planned_steps = total_rounds * self._training.local_epochs * steps_per_epoch
        sigma = noise_multiplier_for(self._privacy, sample_rate=sample_rate, steps=planned_steps)
        try:
            ModuleValidator.validate(self._model, strict=True)
        except UnsupportedModuleError as error:
            raise ConfigError(
                f"Opacus cannot train this model privately: {error}; build it with "
                "securemed.models.build_model or apply opacus.validators.ModuleValidator.fix"
            ) from None
        # Sum reduction: every grad_sample row is then exactly one image's gradient.
        module = prepare_module(
            self._model, grad_sample_mode=mode, batch_first=True, loss_reduction="sum"
        )
        self._accountant = create_accountant(mechanism=self._privacy.accountant)
        self._noise_multiplier = float(sigma)
        self._patient_rate = sample_rate
        self._sample_rate = sample_rate
        self._steps_per_round = self._training.local_epochs * steps_per_epoch
        self._expected_batch_patients = sample_rate * patients.num_patients
        self._module = module
        self._optimizer = optimizer
        self._patient_sampler = PatientSampler(
            patients,
            sample_rate=sample_rate,
            steps=steps_per_epoch,
            generator=self._sampler_generator,
            max_images_per_patient=self._max_images_per_patient,
        )
        _probe_per_sample_gradients(self._module, self._optimizer, self._blank, mode)

    def _restore(self, state: Mapping[str, Any]) -> None:
        assert self._accountant is not None
        mechanism = state.get("mechanism")
        if mechanism is None and state.get("history") == []:
            raise ConfigError(
                "accountant_state was recorded with privacy disabled: this hospital's data has "
                "already trained the model without DP, so no epsilon can be claimed for it; "
                "start a new federation to train with privacy"
            )
        if mechanism != self._privacy.accountant:
            raise ConfigError(
                f"accountant_state was recorded by the {mechanism!r} accountant but "
                f"privacy.accountant is {self._privacy.accountant!r}; resume with the same "
                "accountant (epsilons of different accountants do not compose)"
            )
        unit = state.get("unit", "record")  # states written before units existed are record
        if unit != self._unit:
            raise ConfigError(
                f"accountant_state was accounted per {unit} but this trainer accounts per "
                f"{self._unit}; resume with the same privacy unit (a per-{unit} epsilon and a "
                f"per-{self._unit} epsilon do not compose)"
            )
        history = state.get("history")
        if not isinstance(history, list | tuple):
            raise ConfigError("accountant_state['history'] must be a list of entries")
        entries: list[tuple[float, float, int]] = []
        for entry in history:
            try:
                sigma, rate, steps = entry
                parsed = (float(sigma), float(rate), int(steps))
            except (TypeError, ValueError):
                raise ConfigError(
                    f"accountant_state history entry {entry!r} is not "
                    "(noise_multiplier, sample_rate, steps)"
                ) from None
            if not (parsed[0] > 0 and 0 < parsed[1] <= 1 and parsed[2] >= 1):
                raise ConfigError(f"accountant_state history entry {entry!r} is out of range")
            entries.append(parsed)
        self._accountant.history = entries
        self._accounted_steps = sum(steps for _, _, steps in entries)
        # at most two reseeds a step: an insecure stream restored here never replays old noise
        self._randomness.skip_to(2 * self._accounted_steps)

    def _snapshot_privacy(self) -> None:
        """Freeze epsilon and the accountant history as of the last completed round.

        Readers (a Ray actor's second thread, a checkpointer) then never see the accountant
        half-way through a step.
        """
        assert self._accountant is not None
        history = [(float(s), float(q), int(k)) for s, q, k in self._accountant.history]
        epsilon = self._accountant.get_epsilon(delta=self._privacy.delta) if history else 0.0
        with self._lock:
            self._history_snapshot = history
            self._epsilon = float(epsilon)

    # ------------------------------------------------------------------------- public API

    @property
    def epsilon(self) -> float | None:
        """Cumulative epsilon at ``privacy.delta`` after the last round; ``None`` without DP."""
        with self._lock:
            return self._epsilon

    @property
    def noise_multiplier(self) -> float | None:
        """The noise multiplier in use (calibrated or configured); ``None`` without DP."""
        return self._noise_multiplier

    def round_plan(self) -> tuple[float, float, int]:
        """(noise multiplier, sample rate, steps) of the next round, for budget projection.

        Raises:
            ConfigError: the trainer runs without DP.
        """
        if self._noise_multiplier is None:
            raise ConfigError("a trainer without DP spends no privacy and has no round plan")
        return self._noise_multiplier, self._sample_rate, self._steps_per_round

    def raise_noise(self, noise_multiplier: float) -> None:
        """Train from now on with more noise (the budget orchestrator's remedy); never less."""
        if self._noise_multiplier is None:
            raise ConfigError("a trainer without DP has no noise to raise")
        if not noise_multiplier >= self._noise_multiplier:
            raise ConfigError(
                f"the noise multiplier may only rise (now {self._noise_multiplier:.4g}, asked "
                f"{noise_multiplier:.4g}): less noise than calibrated would overspend"
            )
        with self._lock:
            self._noise_multiplier = float(noise_multiplier)
            if self._patient_sampler is None:
                self._optimizer.noise_multiplier = float(noise_multiplier)  # type: ignore[attr-defined]

    @property
    def secure_noise(self) -> bool:
        """Whether noise and sampling come from the OS (``False``: insecure reproducible mode)."""
        return self._randomness.secure

    @property
    def privacy_unit(self) -> PrivacyUnit:
        """What epsilon protects: ``"record"`` (one image) or ``"patient"``."""
        return self._unit

    @property
    def model(self) -> nn.Module:
        """The trainer's own copy of the model, holding the weights of the last round."""
        return self._model

    def accountant_state(self) -> dict[str, Any]:
        """The privacy spent so far, as plain JSON-serialisable values.

        Pass it back as ``accountant_state`` to a new trainer after a crash so epsilon
        continues instead of restarting at zero. Without DP the history is empty. ``unit``
        names what the history's epsilon protects (``"record"`` or ``"patient"``).
        """
        with self._lock:
            history = [list(entry) for entry in self._history_snapshot]
        mechanism = self._privacy.accountant if self._privacy.enabled else None
        return {"mechanism": mechanism, "history": history, "unit": self._unit}

    def train_round(self, global_state: Mapping[str, torch.Tensor]) -> LocalResult:
        """Load the global weights, train ``training.local_epochs`` epochs, return the result.

        Raises:
            ConfigError: ``global_state`` does not match the model's names or shapes.
        """
        self._load(global_state)
        # Fresh optimizer state every round (FedAvg): no momentum from replaced weights.
        self._optimizer.state.clear()
        self._reseed()
        self._module.train()

        started = time.perf_counter()
        steps, seen, loss_sum = 0, 0, 0.0
        for _ in range(self._training.local_epochs):
            if self._patient_sampler is not None:
                batches = (self._patient_step(batch) for batch in self._patient_sampler)
            else:
                batches = (self._step(images, labels) for images, labels in self._loader)
            for batch_loss, batch_size in batches:
                loss_sum += batch_loss
                seen += batch_size
                steps += 1
                self._reseed()  # the next batch is drawn, and noised, from new seeds
        self._optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - started

        self._accounted_steps += steps
        if self._accountant is not None:
            self._snapshot_privacy()
        state = {
            name: tensor.detach().to("cpu", copy=True)
            for name, tensor in self._model.state_dict().items()
        }
        result = LocalResult(
            state=state,
            num_samples=self._num_samples,
            epsilon=self.epsilon,
            steps=steps,
            train_seconds=seconds,
            loss=loss_sum / seen if seen else math.nan,
            privacy_unit=self._unit,
            secure_noise=self._randomness.secure,
        )
        log.info(
            "local round done",
            extra={
                "steps": steps,
                "epsilon": result.epsilon,
                "privacy_unit": self._unit,
                "seconds": round(seconds, 3),
            },
        )
        return result

    # -------------------------------------------------------------------------- internals

    def _load(self, global_state: Mapping[str, torch.Tensor]) -> None:
        missing = sorted(set(self._shapes) - set(global_state))
        unexpected = sorted(set(global_state) - set(self._shapes))
        if missing or unexpected:
            raise ConfigError(
                "global_state does not match the local model "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]}); check training.model "
                "and the number of classes"
            )
        for name, shape in self._shapes.items():
            if tuple(global_state[name].shape) != tuple(shape):
                raise ConfigError(
                    f"global_state[{name!r}] has shape {tuple(global_state[name].shape)}, the "
                    f"local model expects {tuple(shape)}; check training.model and the classes"
                )
        self._model.load_state_dict(dict(global_state), strict=True)

    def _reseed(self) -> None:
        # Before every step (batches are drawn lazily, one per step): each step's sample and
        # noise come from seeds nobody else ever held.
        self._randomness.reseed(self._sampler_generator, self._noise_generator)

    def _step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
        """One optimizer step; returns the summed per-example loss and the batch size.

        Also the unit the DP-step benchmark times, so it measures what training runs.
        """
        self._optimizer.zero_grad(set_to_none=True)
        size = len(images)
        if size == 0:
            # An empty Poisson batch is still a step of the mechanism: the update is pure
            # noise and the accountant counts it. Feed the optimizer empty per-example
            # gradients instead of a forward pass (ExpandedWeights rejects batch size 0).
            for param in self._trainable:
                param.grad_sample = torch.zeros(  # type: ignore[attr-defined]
                    (0, *param.shape), dtype=param.dtype, device=param.device
                )
            self._optimizer.step()
            return 0.0, 0
        per_example = per_example_loss(self._module(images), labels)
        per_example.mean().backward()
        self._optimizer.step()
        return float(per_example.detach().sum()), size

    def _patient_step(self, batch: PatientBatch) -> tuple[float, int]:
        """One patient-level DP-SGD step; returns the summed per-image loss and image count.

        Opacus computes the per-image gradients; patient_level sums them per patient, clips,
        adds noise and scales; the plain optimizer applies the result; the accountant counts
        one sampled Gaussian step at the patient sample rate (an empty batch too).
        """
        assert self._accountant is not None and self._noise_multiplier is not None
        self._module.zero_grad(set_to_none=True)  # Opacus' module also drops grad_sample
        loss_sum = 0.0
        if batch.size == 0:
            grad_samples = [
                torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device) for p in self._trainable
            ]
        else:
            images = self._images[batch.rows]
            per_example = per_example_loss(self._module(images), self._labels[batch.rows])
            per_example.sum().backward()
            grad_samples = [p.grad_sample for p in self._trainable]  # type: ignore[attr-defined]
            loss_sum = float(per_example.detach().sum())
        grads = privatize_patient_gradients(
            grad_samples,
            batch.segment,
            batch.size,
            max_grad_norm=self._privacy.max_grad_norm,
            noise_multiplier=self._noise_multiplier,
            expected_batch_patients=self._expected_batch_patients,
            generator=self._noise_generator,
        )
        for param, grad in zip(self._trainable, grads, strict=True):
            param.grad = grad
            param.grad_sample = None  # type: ignore[attr-defined]
        self._optimizer.step()
        self._accountant.step(
            noise_multiplier=self._noise_multiplier, sample_rate=self._patient_rate
        )
        return loss_sum, len(batch.rows)


def train_central(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    training: TrainingConfig,
    epochs: int,
    seed: int,
) -> nn.Module:
    """Train the centrally pooled, non-private baseline for ``epochs`` epochs.

    It is :class:`LocalTrainer` with privacy off and a single round of ``epochs`` local
    epochs, so the baseline and the federation differ only in what is compared.

    Returns:
        A trained copy of ``model`` (the module passed in is left untouched).
    """
    if epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {epochs}")
    trainer = LocalTrainer(
        model,
        images,
        labels,
        training=training.model_copy(update={"local_epochs": epochs}),
        privacy=PrivacyConfig(enabled=False),
        total_rounds=1,
        insecure_seed=seed,  # no DP here: the seed only makes the baseline repeatable
    )
    trainer.train_round(model.state_dict())
    return trainer.model


#: Opacus's RDP accountant warns when its best order is its largest, which happens at large
#: noise multipliers; the epsilon is still a valid upper bound, only a little looser, so
#: sweeps and audits that train many such models silence it
LARGEST_ALPHA_WARNING = "Optimal order is the largest alpha"


def noise_multiplier_for(privacy: DPSGDConfig, *, sample_rate: float, steps: int) -> float:
    """The noise multiplier of ``privacy``: configured, or calibrated to its target epsilon.

    Calibration asks Opacus for the smallest sigma whose epsilon after ``steps`` steps at
    ``sample_rate`` (records or patients alike) stays within ``privacy.target_epsilon``.

    Raises:
        ConfigError: the target cannot be met.
    """
    if privacy.target_epsilon is None:
        assert privacy.noise_multiplier is not None  # PrivacyConfig guarantees one of them
        return float(privacy.noise_multiplier)
    try:
        # steps= rather than epochs=: Opacus' int(epochs / q) can round one step short.
        # The bisection visits extreme sigmas, where RDP warns about its alpha range.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Optimal order is the largest")
            sigma = get_noise_multiplier(
                target_epsilon=privacy.target_epsilon,
                target_delta=privacy.delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant=privacy.accountant,
            )
    except ValueError as error:
        raise ConfigError(
            f"privacy.target_epsilon {privacy.target_epsilon} cannot be met over "
            f"{steps} steps at sample rate {sample_rate:.4g} ({error}); raise "
            "the target, or use fewer rounds or local epochs"
        ) from None
    return float(sigma)


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over labels: one loss value per example.

    One value per example is what per-example (and per-patient) clipping bounds; its mean over
    the batch is BCE's usual mean reduction. The loss-threshold membership attack of the
    privacy sweeps (:mod:`securemed.tuning.trials`) scores the same value.
    """
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(dim=1)


def _build_optimizer(params: list[nn.Parameter], training: TrainingConfig) -> torch.optim.Optimizer:
    """The local optimizer; DP-SGD's privacy comes from clipping and noise, not from SGD.

    Opacus wraps whichever optimizer it is given (noise is added to the gradient before the
    update rule), so DP-Adam costs the same epsilon as DP-SGD.
    """
    if training.optimizer == "adam":
        return torch.optim.Adam(
            params, lr=training.learning_rate, weight_decay=training.weight_decay
        )
    return torch.optim.SGD(
        params,
        lr=training.learning_rate,
        momentum=training.momentum,
        weight_decay=training.weight_decay,
    )


def _validate_data(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Check images and labels, returning the labels as float32 (what BCE wants)."""
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise DataError("images and labels must be torch tensors (use torch.from_numpy)")
    if len(images) == 0:
        raise DataError("this hospital has no training images; give it at least one batch")
    if len(images) != len(labels):
        raise DataError(
            f"images and labels differ in length ({len(images)} images, {len(labels)} labels)"
        )
    if images.ndim != 4 or not images.is_floating_point():
        raise DataError(
            f"images must be a floating-point (N, C, H, W) tensor, got {images.dtype} "
            f"with shape {tuple(images.shape)}"
        )
    if labels.ndim != 2:
        raise DataError(
            f"labels must be multi-hot (N, num_classes), got shape {tuple(labels.shape)}"
        )
    labels = labels.to(torch.float32)
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise DataError("labels must be multi-hot: every value 0 or 1")
    return labels


def _check_model_fits(model: nn.Module, blank: torch.Tensor, *, num_classes: int) -> None:
    """Run blank images through the model to catch channel or class mismatches now."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(blank)
    except RuntimeError as error:
        raise ConfigError(
            f"the model cannot take images of shape {tuple(blank.shape[1:])}: {error}"
        ) from None
    finally:
        model.train(was_training)
    if tuple(out.shape) != (len(blank), num_classes):
        raise ConfigError(
            f"the model outputs {tuple(out.shape[1:])} values per image but the labels have "
            f"{num_classes} classes; build the model with num_classes={num_classes}"
        )


def _probe_per_sample_gradients(
    module: nn.Module, optimizer: torch.optim.Optimizer, blank: torch.Tensor, mode: str
) -> None:
    """Fail at start-up, not in round one, if Opacus cannot differentiate this model.

    Runs blank images (never patient data) forward and backward, then discards the result.
    """
    try:
        module(blank).sum().backward()
    except RuntimeError as error:
        raise ConfigError(
            f"Opacus cannot compute per-example gradients of this model with "
            f"grad_sample_mode={mode!r}: {error}"
        ) from None
    finally:
        optimizer.zero_grad(set_to_none=True)
