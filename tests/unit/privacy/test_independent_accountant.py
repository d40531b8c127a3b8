"""The epsilon the default run reports agrees with an independent accountant: Google's
dp-accounting PLD accountant, composing each hospital's published rounds (noise multiplier,
Poisson sampling rate, steps) within 1 %."""

from __future__ import annotations

import numpy as np
import pytest
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant

from securemed.config import load_config
from securemed.data.from_config import build_source, partition_for
from securemed.privacy import project_epsilon
from securemed.privacy.local_training import noise_multiplier_for
from securemed.privacy.patient_level import patient_schedule


def _pld_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    accountant = pld_privacy_accountant.PLDAccountant()
    for sigma, rate, steps in history:
        accountant.compose(
            dp_event.PoissonSampledDpEvent(rate, dp_event.GaussianDpEvent(sigma)), steps
        )
    return float(accountant.get_epsilon(delta))


@pytest.mark.slow  # PLD composition of thousands of steps, per hospital (seconds)
def test_the_default_runs_epsilons_agree_with_googles_pld_accountant() -> None:
    config = load_config("configs/federated.yaml")
    privacy, training = config.privacy, config.training
    assert privacy.unit == "patient" and privacy.accountant == "prv"
    source = build_source(config.data)
    patients = source.patient_ids("train")
    partitions = partition_for(
        config.partition, source.labels("train"), config.federation, patient_ids=patients
    )
    for rows in partitions:
        rate, steps_per_epoch = patient_schedule(
            int(np.unique(patients[rows]).size), training.batch_size
        )
        round_steps = training.local_epochs * steps_per_epoch
        sigma = noise_multiplier_for(
            privacy, sample_rate=rate, steps=config.federation.rounds * round_steps
        )
        history = [(sigma, rate, round_steps)] * config.federation.rounds
        # what each hospital reports after its last round (and publishes in metrics.json)
        reported = project_epsilon(
            history[:-1],
            noise_multiplier=sigma,
            sample_rate=rate,
            steps=round_steps,
            delta=privacy.delta,
            accountant="prv",
        )
        assert reported == pytest.approx(_pld_epsilon(history, privacy.delta), rel=0.01)
        assert reported <= privacy.target_epsilon + 1e-9
