"""Patient-level DP-SGD: a patient, with every study they have, is one privacy unit.

Record-level DP-SGD bounds what one *image* can change. A patient with eight chest films in a
hospital's data is then protected only as well as eight records (group privacy: roughly eight
times the epsilon), which is not what a clinician means by "private". Here the unit is the
patient:

1. **Sampling.** Every step draws each *patient* independently with probability
   ``q = expected_batch_patients / num_patients`` (Poisson sampling of patients) and takes
   the images of every patient drawn (:class:`PatientSampler`).
2. **Per-patient gradients.** Opacus' ``GradSampleModule`` (or torch's ExpandedWeights) gives
   one gradient per image; they are summed per patient (:func:`sum_per_patient`), so a
   patient's contribution is the sum over their images.
3. **Clip, noise, scale** (:func:`privatize_patient_gradients`): each patient's summed
   gradient is clipped to ``max_grad_norm``, the clipped gradients are summed, Gaussian noise
   of standard deviation ``noise_multiplier * max_grad_norm`` is added, and the result is
   divided by the expected batch size in patients.

Adding or removing one patient then changes the summed gradient by at most ``max_grad_norm``,
and the step is the sampled Gaussian mechanism over patients: Opacus' RDP and PRV accountants
account it at sample rate ``q`` exactly as they account a record-level step at its rate.

Why not Opacus' ``DPOptimizer``: it clips every row of ``p.grad_sample``, i.e. every image,
and has no notion of a group of rows; its data loader samples records. Rewriting the rows of
``grad_sample`` behind its back would work, but would hide the unit of privacy in a side
effect. So Opacus provides the per-example gradients, the accountants and the noise
calibration, and this module writes the grouping, clipping and noise, a few lines each, as
pure functions that the tests check against per-example autograd.

Capping images per patient (``max_images_per_patient``) is *not* needed for privacy: the clip
bounds a patient's contribution however many images they have. It only bounds the memory and
time of a step when a few patients have very many studies; the cap takes a random subset of
that patient's images in each step.

What this module does not do: load data, hold a model or an optimizer, or keep an
accountant. :class:`securemed.privacy.LocalTrainer` wires these pieces into its round.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from securemed.errors import ConfigError, DataError

PrivacyUnit = Literal["record", "patient"]

# Opacus adds the same constant to per-example norms before dividing, so a clipped norm is
# strictly below max_grad_norm and a zero gradient does not divide by zero.
_NORM_EPSILON = 1e-6


@dataclass(frozen=True)
class PatientIndex:
    """Which images belong to which patient: the images sorted by patient, cut into runs.

    Patient ``k`` (in the order of ``ids``) owns the images ``order[starts[k]:starts[k + 1]]``.

    Attributes:
        ids: the distinct patient ids, ascending.
        order: image positions grouped by patient (stable: ascending within a patient).
        starts: ``len(ids) + 1`` offsets into ``order``.
    """

    ids: np.ndarray
    order: np.ndarray
    starts: np.ndarray

    @classmethod
    def from_ids(cls, patient_ids: np.ndarray, *, num_images: int | None = None) -> PatientIndex:
        """Group image positions by ``patient_ids`` (one integer id per image).

        Raises:
            DataError: the ids are not a 1-D integer array, or not one per image.
        """
        ids = check_patient_ids(patient_ids, num_images=num_images)
        order = np.argsort(ids, kind="stable")
        distinct, counts = np.unique(ids, return_counts=True)
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(ids=distinct, order=order.astype(np.int64), starts=starts)

    @property
    def num_patients(self) -> int:
        return int(self.ids.size)

    @property
    def counts(self) -> np.ndarray:
        """Images per patient, in the order of ``ids``."""
        return np.diff(self.starts)


@dataclass(frozen=True)
class PatientBatch:
    """One step's Poisson sample of patients, as rows of the hospital's image tensor.

    Attributes:
        rows: positions of the images to train on, grouped by patient.
        segment: for every row, which of this batch's patients it belongs to (0 .. size-1).
        size: number of patients drawn (0 for an empty Poisson batch, which is still a step).
    """

    rows: torch.Tensor
    segment: torch.Tensor
    size: int


class PatientSampler:
    """Poisson sampling of patients: each step includes every patient independently with
    probability ``sample_rate``, and brings all of that patient's images.

    It is the patient-level counterpart of Opacus' ``UniformWithReplacementSampler``: the
    number of patients per step varies, and an empty step is still a step.

    Args:
        index: the hospital's patients (:meth:`PatientIndex.from_ids`).
        sample_rate: probability that a patient is in a step, in (0, 1].
        steps: steps per pass (an "epoch").
        generator: seeds the draws; the caller reseeds it to make runs reproducible.
        max_images_per_patient: take at most this many of a drawn patient's images (a random
            subset each step); ``None`` takes all. A cost cap, not a privacy one.

    Example:
        >>> index = PatientIndex.from_ids(np.array([0, 0, 1, 2, 2, 2]))
        >>> sampler = PatientSampler(index, sample_rate=0.5, steps=2,
        ...                          generator=torch.Generator().manual_seed(0))
        >>> [batch.size for batch in sampler]  # patients drawn in each step
    """

    def __init__(
        self,
        index: PatientIndex,
        *,
        sample_rate: float,
        steps: int,
        generator: torch.Generator,
        max_images_per_patient: int | None = None,
    ) -> None:
        if not 0.0 < sample_rate <= 1.0:
            raise ConfigError(f"the patient sample rate must be in (0, 1], got {sample_rate}")
        if steps < 1:
            raise ConfigError(f"steps must be at least 1, got {steps}")
        if max_images_per_patient is not None and max_images_per_patient < 1:
            raise ConfigError(
                f"max_images_per_patient must be at least 1 or None, got {max_images_per_patient}"
            )
        self.index = index
        self.sample_rate = float(sample_rate)
        self.steps = int(steps)
        self.generator = generator
        self.max_images_per_patient = max_images_per_patient

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[PatientBatch]:
        for _ in range(self.steps):
            yield self.draw()

    def draw(self) -> PatientBatch:
        """One step's sample of patients and their image rows."""
        index = self.index
        mask = torch.rand(index.num_patients, generator=self.generator) < self.sample_rate
        drawn = mask.nonzero().flatten().numpy()
        runs = [index.order[index.starts[k] : index.starts[k + 1]] for k in drawn.tolist()]
        cap = self.max_images_per_patient
        if cap is not None:
            runs = [
                run[torch.randperm(run.size, generator=self.generator)[:cap].numpy()]
                if run.size > cap
                else run
                for run in runs
            ]
        if not runs:
            empty = torch.zeros(0, dtype=torch.int64)
            return PatientBatch(rows=empty, segment=empty.clone(), size=0)
        rows = np.concatenate(runs)
        segment = np.repeat(np.arange(len(runs)), [run.size for run in runs])
        return PatientBatch(
            rows=torch.from_numpy(rows.astype(np.int64)),
            segment=torch.from_numpy(segment.astype(np.int64)),
            size=len(runs),
        )


def sum_per_patient(
    grad_samples: Sequence[torch.Tensor], segment: torch.Tensor, num_patients: int
) -> list[torch.Tensor]:
    """Sum per-example gradients over each patient's images.

    Args:
        grad_samples: one ``(num_images, *param.shape)`` tensor per parameter.
        segment: ``(num_images,)`` patient position (0 .. num_patients-1) of every image.
        num_patients: patients in the batch.

    Returns:
        One ``(num_patients, *param.shape)`` tensor per parameter.
    """
    summed = []
    for grad in grad_samples:
        if grad.shape[0] != segment.shape[0]:
            raise ValueError(
                f"a per-example gradient has {grad.shape[0]} rows for {segment.shape[0]} images"
            )
        out = torch.zeros((num_patients, *grad.shape[1:]), dtype=grad.dtype, device=grad.device)
        summed.append(out.index_add_(0, segment.to(grad.device), grad))
    return summed


def clip_per_patient(
    patient_grads: Sequence[torch.Tensor], max_grad_norm: float
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Clip every patient's gradient (across all parameters) to ``max_grad_norm`` and sum.

    Returns:
        The sum over patients of the clipped gradients (one tensor per parameter, shaped like
        the parameter) and the patients' norms before clipping.
    """
    if not patient_grads:
        raise ValueError("there are no parameter gradients to clip")
    norms = torch.stack(
        [grad.flatten(start_dim=1).norm(2, dim=1) for grad in patient_grads], dim=1
    ).norm(2, dim=1)
    factors = (max_grad_norm / (norms + _NORM_EPSILON)).clamp(max=1.0)
    clipped = [torch.einsum("k,k...->...", factors.to(grad.dtype), grad) for grad in patient_grads]
    return clipped, norms


def privatize_patient_gradients(
    grad_samples: Sequence[torch.Tensor],
    segment: torch.Tensor,
    num_patients: int,
    *,
    max_grad_norm: float,
    noise_multiplier: float,
    expected_batch_patients: float,
    generator: torch.Generator | None,
) -> list[torch.Tensor]:
    """Per-example gradients in, the noisy mean patient gradient out (one per parameter).

    Sums per patient, clips each patient to ``max_grad_norm``, sums the patients, adds
    ``N(0, (noise_multiplier * max_grad_norm)^2)`` per coordinate and divides by
    ``expected_batch_patients`` (the expected, not the drawn, batch: dividing by the drawn
    count would leak it). An empty batch (zero-row ``grad_samples``) yields pure noise.
    """
    if max_grad_norm <= 0 or noise_multiplier < 0 or expected_batch_patients <= 0:
        raise ValueError(
            "max_grad_norm and expected_batch_patients must be positive and "
            "noise_multiplier non-negative"
        )
    patient_grads = sum_per_patient(grad_samples, segment, num_patients)
    clipped, _ = clip_per_patient(patient_grads, max_grad_norm)
    std = noise_multiplier * max_grad_norm
    noisy = []
    for total in clipped:
        if std > 0:
            total = total + torch.normal(
                mean=0.0,
                std=std,
                size=total.shape,
                generator=generator,
                dtype=total.dtype,
                device=total.device,
            )
        noisy.append(total / expected_batch_patients)
    return noisy


def patient_schedule(num_patients: int, expected_batch_patients: int) -> tuple[float, int]:
    """Sample rate and steps per pass for Poisson sampling of patients.

    ``q = expected_batch_patients / num_patients`` and ``ceil(num_patients / batch)`` steps,
    the rounding Opacus' loader uses for records, so a pass sees every patient once in
    expectation (a little more when the batch does not divide the patients).
    """
    if expected_batch_patients < 1:
        raise ConfigError(
            f"the batch must hold at least one patient, got {expected_batch_patients}"
        )
    if expected_batch_patients > num_patients:
        raise ConfigError(
            f"training.batch_size ({expected_batch_patients}) counts patients under "
            f"patient-level privacy, but this hospital has only {num_patients} patients; "
            "lower the batch size"
        )
    return expected_batch_patients / num_patients, math.ceil(num_patients / expected_batch_patients)


def check_patient_ids(patient_ids: np.ndarray, *, num_images: int | None = None) -> np.ndarray:
    """Validate one integer patient id per image and return them as int64.

    Raises:
        DataError: not a 1-D integer array, or not one id per image.
    """
    ids = np.asarray(patient_ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise DataError(
            f"patient_ids must be a 1-D integer array (one id per image), got {ids.dtype} "
            f"with shape {ids.shape}"
        )
    if num_images is not None and ids.size != num_images:
        raise DataError(
            f"patient_ids has {ids.size} ids for {num_images} images; give one id per image "
            "(the same id for every study of a patient)"
        )
    return ids.astype(np.int64, copy=False)
