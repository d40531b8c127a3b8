"""Turn the validated data and partition configs into a source and per-hospital index sets.

Jobs call these two functions so that every entry point (the federated job, the hospital CLI,
the benchmarks) reads the same config the same way.
"""

from __future__ import annotations

import numpy as np

from securemed.config import DataConfig, FederationConfig, PartitionConfig
from securemed.data.partition import dirichlet_partition, iid_partition, quantity_skew_partition
from securemed.data.sources import ImageSource, MedMNISTSource, SyntheticSource


def build_source(config: DataConfig) -> ImageSource:
    """The image source ``config`` names; nothing is rendered or read until asked."""
    if config.source == "medmnist":
        assert config.path is not None  # DataConfig refuses medmnist without a path
        return MedMNISTSource(config.path)
    return SyntheticSource(
        train_samples=config.train_samples,
        test_samples=config.test_samples,
        image_size=config.image_size,
        difficulty=config.difficulty,
        seed=config.seed,
    )


def partition_for(
    config: PartitionConfig,
    labels: np.ndarray,
    federation: FederationConfig,
    *,
    patient_ids: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Split the training set's positions among ``federation.hospitals`` hospitals.

    Given ``patient_ids`` (``source.patient_ids("train")``), a patient's studies all go to
    one hospital, which patient-level privacy needs.

    Raises:
        DataError: the split cannot give every hospital ``config.min_samples`` samples.
    """
    hospitals, seed = federation.hospitals, federation.seed
    if config.scheme == "iid":
        return iid_partition(len(labels), hospitals, seed=seed, patient_ids=patient_ids)
    if config.scheme == "dirichlet":
        return dirichlet_partition(
            labels,
            hospitals,
            alpha=config.alpha,
            seed=seed,
            min_samples=config.min_samples,
            patient_ids=patient_ids,
        )
    return quantity_skew_partition(
        len(labels),
        hospitals,
        beta=config.beta,
        seed=seed,
        min_samples=config.min_samples,
        patient_ids=patient_ids,
    )
