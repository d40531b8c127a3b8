"""Patient-level DP-SGD: per-patient sums and clipping, patient sampling, accounting, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus.grad_sample.utils import prepare_module
from privacy_toys import dp, fresh_model, toy_data
from torch.nn import functional as F  # noqa: N812

from securemed.config import PrivacyConfig, TrainingConfig
from securemed.data.sources import SyntheticSource
from securemed.errors import ConfigError, DataError
from securemed.models import build_model
from securemed.privacy import LocalTrainer
from securemed.privacy.patient_level import (
    PatientBatch,
    PatientIndex,
    PatientSampler,
    clip_per_patient,
    privatize_patient_gradients,
    sum_per_patient,
)


def skewed_patients(n: int) -> np.ndarray:
    """Patients with 1 to 6 studies, ids deliberately not in image order."""
    counts = [1, 3, 1, 6, 2, 1, 4, 1, 2, 5]
    ids = np.repeat(np.arange(10 * n), np.resize(counts, 10 * n))[:n]
    return np.random.default_rng(0).permutation(ids) * 7 + 100


def make_trainer(
    *,
    n: int = 64,
    batch_size: int = 8,
    privacy: PrivacyConfig | None = None,
    patient_ids: np.ndarray | None = None,
    total_rounds: int = 2,
    insecure_seed: int | None = 0,
    optimizer: str = "sgd",
    **kwargs: object,
) -> tuple[LocalTrainer, torch.nn.Module]:
    images, labels = toy_data(n)
    model = fresh_model()
    trainer = LocalTrainer(
        model,
        images,
        labels,
        training=TrainingConfig(
            optimizer=optimizer,  # type: ignore[arg-type]
            batch_size=batch_size,
            learning_rate=0.1,
            momentum=0.0,
            local_epochs=1,
        ),
        privacy=privacy if privacy is not None else dp(),
        total_rounds=total_rounds,
        insecure_seed=insecure_seed,
        patient_ids=skewed_patients(n) if patient_ids is None else patient_ids,
        **kwargs,  # type: ignore[arg-type]
    )
    return trainer, model


def per_example_grads(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> list:
    """Every example's gradient by plain autograd, one example at a time."""
    grads = []
    for i in range(len(images)):
        model.zero_grad()
        logits = model(images[i : i + 1])
        F.binary_cross_entropy_with_logits(logits, labels[i : i + 1], reduction="none").mean(
            dim=1
        ).sum().backward()
        grads.append([p.grad.detach().clone() for p in model.parameters()])  # type: ignore[union-attr]
    return grads


# ----------------------------------------------------------------- gradients and clipping


@pytest.mark.parametrize("mode", ["ew", "hooks"])
def test_patient_gradient_is_the_sum_of_its_images_gradients_taken_one_at_a_time(
    mode: str,
) -> None:
    images, labels = toy_data(7)
    segment = torch.tensor([0, 0, 0, 1, 2, 2, 0])  # patient 0 has four images, not adjacent
    reference = fresh_model()
    expected = per_example_grads(reference, images, labels)

    module = prepare_module(fresh_model(), grad_sample_mode=mode, loss_reduction="sum")
    logits = module(images)
    F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(
        dim=1
    ).sum().backward()
    params = list(module.parameters())
    summed = sum_per_patient([p.grad_sample for p in params], segment, 3)  # type: ignore[attr-defined]

    for k in range(3):
        members = (segment == k).nonzero().flatten().tolist()
        for j, patient_grad in enumerate(summed):
            by_hand = sum(expected[i][j] for i in members)
            torch.testing.assert_close(patient_grad[k], by_hand, atol=1e-5, rtol=1e-4)


def test_a_patient_with_ten_images_contributes_at_most_max_grad_norm() -> None:
    generator = torch.Generator().manual_seed(0)
    # Patient 0: ten images with large, aligned gradients; patient 1: one small gradient.
    big = torch.ones(10, 4, 3) * 5.0 + torch.rand((10, 4, 3), generator=generator)
    small = torch.full((1, 4, 3), 1e-3)
    grads = [torch.cat([big, small]), torch.cat([torch.ones(10, 5), torch.zeros(1, 5)])]
    segment = torch.tensor([0] * 10 + [1])

    patient_grads = sum_per_patient(grads, segment, 2)
    _, norms = clip_per_patient(patient_grads, max_grad_norm=1.0)
    assert norms[0] > 100  # far above the clip before clipping

    only_first = [g[:10] for g in grads]
    out = privatize_patient_gradients(
        only_first,
        segment[:10],
        1,
        max_grad_norm=1.0,
        noise_multiplier=0.0,
        expected_batch_patients=1.0,
        generator=None,
    )
    contribution = torch.cat([g.flatten() for g in out]).norm()
    assert 0.999 < float(contribution) <= 1.0
    # A patient already under the clip passes through unchanged.
    out = privatize_patient_gradients(
        [g[10:] for g in grads],
        torch.tensor([0]),
        1,
        max_grad_norm=1.0,
        noise_multiplier=0.0,
        expected_batch_patients=1.0,
        generator=None,
    )
    torch.testing.assert_close(out[0], small[0])


def test_noise_has_the_calibrated_scale_and_an_empty_batch_is_pure_noise() -> None:
    empty = [torch.zeros(0, 200, 50)]
    out = privatize_patient_gradients(
        empty,
        torch.zeros(0, dtype=torch.int64),
        0,
        max_grad_norm=2.0,
        noise_multiplier=1.5,
        expected_batch_patients=4.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert out[0].shape == (200, 50)
    assert float(out[0].std()) == pytest.approx(1.5 * 2.0 / 4.0, rel=0.03)


def test_trainer_step_applies_the_clipped_patient_sums_it_should() -> None:
    """End to end through LocalTrainer, with the noise switched off for the check."""
    trainer, _ = make_trainer(
        n=12,
        batch_size=2,
        patient_ids=np.array([5, 5, 5, 5, 5, 9, 9, 2, 2, 2, 3, 4]),
        insecure_seed=3,
    )
    max_norm = trainer._privacy.max_grad_norm
    trainer._noise_multiplier = 0.0
    images, labels = trainer._images, trainer._labels
    before = [p.detach().clone() for p in trainer.model.parameters()]
    expected = per_example_grads(fresh_model(), images, labels)  # same weights as before

    rows = torch.tensor([0, 1, 2, 3, 4, 7, 8, 9])  # patients 5 (five images) and 2 (three)
    segment = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
    trainer._patient_step(PatientBatch(rows=rows, segment=segment, size=2))

    per_patient = [
        [sum(expected[int(i)][j] for i in rows[segment == k]) for j in range(len(before))]
        for k in range(2)
    ]
    norms = [float(torch.cat([g.flatten() for g in grads]).norm()) for grads in per_patient]
    factors = [min(1.0, max_norm / (norm + 1e-6)) for norm in norms]
    expected_batch = 2  # batch_size counts patients: q = 2 / 6 of 6 patients
    for j, (param, start) in enumerate(zip(trainer.model.parameters(), before, strict=True)):
        update = sum(f * grads[j] for f, grads in zip(factors, per_patient, strict=True))
        torch.testing.assert_close(
            param.detach(), start - 0.1 * update / expected_batch, atol=1e-5, rtol=1e-4
        )
    assert min(factors) < 1  # the check covered a clipped patient


# -------------------------------------------------------------------------------- sampling


def test_patients_are_included_at_the_sample_rate_with_all_their_images() -> None:
    ids = skewed_patients(300)
    index = PatientIndex.from_ids(ids)
    rate, steps = 0.1, 400
    sampler = PatientSampler(
        index, sample_rate=rate, steps=steps, generator=torch.Generator().manual_seed(1)
    )
    included = np.zeros(index.num_patients)
    sizes = []
    for batch in sampler:
        patients_of_rows = ids[batch.rows.numpy()]
        drawn = np.unique(patients_of_rows)
        assert drawn.size == batch.size
        # Every drawn patient comes with all of their images, grouped by segment.
        for k in range(batch.size):
            rows = batch.rows[batch.segment == k].numpy()
            assert np.unique(ids[rows]).size == 1
            assert rows.size == int((ids == ids[rows[0]]).sum())
        included[np.searchsorted(index.ids, drawn)] += 1
        sizes.append(batch.size)
    frequency = included / steps
    # Mean over patients: binomial standard error sqrt(q(1-q) / (P * steps)) ~ 0.0026.
    assert abs(frequency.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / included.size / steps)
    # Per patient: Binomial(400, 0.1) has sd 6; no patient is far off, whatever its size.
    assert np.all(np.abs(included - rate * steps) < 5 * np.sqrt(steps * rate * (1 - rate)))
    assert np.std(sizes) > 0  # Poisson: the batch size varies


def test_image_cap_takes_a_random_subset_of_a_large_patient() -> None:
    ids = np.array([0] * 10 + [1] * 2)
    sampler = PatientSampler(
        PatientIndex.from_ids(ids),
        sample_rate=1.0,
        steps=20,
        generator=torch.Generator().manual_seed(0),
        max_images_per_patient=3,
    )
    seen: set[int] = set()
    for batch in sampler:
        assert batch.size == 2
        assert int((batch.segment == 0).sum()) == 3 and int((batch.segment == 1).sum()) == 2
        seen.update(batch.rows[batch.segment == 0].tolist())
    assert seen == set(range(10))  # different subsets in different steps


# ------------------------------------------------------------------------------ accounting


@pytest.mark.parametrize("accountant", ["rdp", pytest.param("prv", marks=pytest.mark.slow)])
def test_patient_epsilon_meets_but_does_not_exceed_the_target_after_the_planned_steps(
    accountant: str,
) -> None:
    target = 2.0
    privacy = dp(target_epsilon=target, noise_multiplier=None, accountant=accountant)
    trainer, model = make_trainer(privacy=privacy, total_rounds=2, batch_size=4)
    state = model.state_dict()
    for _ in range(2):
        result = trainer.train_round(state)
        state = result.state
    assert result.privacy_unit == "patient"
    assert result.epsilon is not None and 0.9 * target < result.epsilon <= target
    patients = np.unique(skewed_patients(64)).size
    steps = -(-patients // 4)
    assert trainer.accountant_state() == {
        "mechanism": accountant,
        "history": [[trainer.noise_multiplier, 4 / patients, 2 * steps]],
        "unit": "patient",
    }


def test_one_image_per_patient_is_accounted_exactly_like_records() -> None:
    images, labels = toy_data(64)
    common = {
        "training": TrainingConfig(optimizer="sgd", batch_size=8, local_epochs=1),
        "privacy": dp(),
        "total_rounds": 2,
    }
    record = LocalTrainer(fresh_model(), images, labels, **common)  # type: ignore[arg-type]
    patient = LocalTrainer(
        fresh_model(),
        images,
        labels,
        patient_ids=np.arange(64),
        **common,  # type: ignore[arg-type]
    )
    start = fresh_model().state_dict()
    record.train_round(start)
    patient.train_round(start)
    assert record.accountant_state()["history"] == patient.accountant_state()["history"]
    assert record.privacy_unit == "record" and patient.privacy_unit == "patient"


def test_an_accountant_state_of_the_other_unit_is_refused() -> None:
    patient, model = make_trainer()
    patient.train_round(model.state_dict())
    saved = patient.accountant_state()
    images, labels = toy_data(64)
    with pytest.raises(ConfigError, match="same privacy unit"):
        LocalTrainer(
            fresh_model(),
            images,
            labels,
            training=TrainingConfig(batch_size=8),
            privacy=dp(),
            total_rounds=2,
            insecure_seed=0,
            accountant_state=saved,
        )
    resumed, _ = make_trainer(accountant_state=saved)
    assert resumed.epsilon == pytest.approx(patient.epsilon)


# -------------------------------------------------------------------------------- training


def test_same_seed_reproduces_and_a_restored_trainer_draws_new_noise() -> None:
    a, model = make_trainer(insecure_seed=4)
    b, _ = make_trainer(insecure_seed=4)
    start = model.state_dict()
    state_a = a.train_round(start).state
    assert all(torch.equal(state_a[k], v) for k, v in b.train_round(start).state.items())
    resumed, _ = make_trainer(insecure_seed=4, accountant_state=a.accountant_state())
    assert not torch.equal(resumed.train_round(start).state["head.weight"], state_a["head.weight"])


def test_patient_level_training_on_synthetic_films_lowers_the_loss() -> None:
    source = SyntheticSource(train_samples=160, test_samples=1, image_size=32, seed=0)
    images = torch.from_numpy(source.images("train", np.arange(160)))
    labels = torch.from_numpy(source.labels("train"))
    patient_ids = source.patient_ids("train")
    assert np.unique(patient_ids).size < 100  # several films per patient on average
    torch.manual_seed(0)
    model = build_model("simple_cnn", num_classes=labels.shape[1])
    trainer = LocalTrainer(
        model,
        images,
        labels,
        training=TrainingConfig(batch_size=16, learning_rate=0.01, local_epochs=1),
        privacy=dp(noise_multiplier=0.5, max_grad_norm=1.0),
        total_rounds=4,
        insecure_seed=0,
        patient_ids=patient_ids,
    )
    state = model.state_dict()
    losses = []
    for _ in range(4):
        result = trainer.train_round(state)
        state = result.state
        losses.append(result.loss)
    assert result.privacy_unit == "patient" and result.num_samples == 160
    assert losses[-1] < losses[0] - 0.05


def test_without_dp_patient_ids_only_label_the_unit() -> None:
    trainer, model = make_trainer(privacy=PrivacyConfig(enabled=False))
    result = trainer.train_round(model.state_dict())
    assert result.epsilon is None and result.steps == 8  # image batches, as without ids


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"patient_ids": np.zeros(5, dtype=np.int64)}, DataError, "one id per image"),
        ({"patient_ids": np.zeros(64)}, DataError, "integer"),
        ({"patient_ids": np.repeat(np.arange(4), 16)}, ConfigError, "counts patients"),
        ({"max_images_per_patient": 0}, ConfigError, "max_images_per_patient"),
    ],
)
def test_bad_patient_arguments_raise_errors_that_say_what_to_do(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make_trainer(**kwargs)  # type: ignore[arg-type]
