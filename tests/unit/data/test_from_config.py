"""The config-to-data glue: each scheme and source is reachable from YAML-level settings."""

from __future__ import annotations

import numpy as np
import pytest

from securemed.config import DataConfig, FederationConfig, PartitionConfig
from securemed.data.from_config import build_source, partition_for
from securemed.data.sources import MedMNISTSource, SyntheticSource
from securemed.errors import DataError


def test_synthetic_source_follows_the_config() -> None:
    source = build_source(DataConfig(train_samples=20, test_samples=12, image_size=64, seed=3))
    assert isinstance(source, SyntheticSource)
    assert source.labels("train").shape == (20, 5)
    assert source.labels("test").shape == (12, 5)
    assert source.images("train", np.arange(2)).shape == (2, 1, 64, 64)


def test_medmnist_source_points_at_the_file(tmp_path) -> None:
    source = build_source(DataConfig(source="medmnist", path=tmp_path / "chest.npz"))
    assert isinstance(source, MedMNISTSource)
    assert source.path == tmp_path / "chest.npz"


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "quantity"])
def test_every_scheme_covers_the_training_set_once(scheme: str) -> None:
    labels = build_source(DataConfig(train_samples=400, test_samples=10)).labels("train")
    parts = partition_for(
        PartitionConfig(scheme=scheme, min_samples=20), labels, FederationConfig(hospitals=4)
    )
    assert len(parts) == 4
    assert min(len(p) for p in parts) >= 20 or scheme == "iid"
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(400))


def test_schemes_differ_in_how_they_skew() -> None:
    labels = build_source(DataConfig(train_samples=400, test_samples=10)).labels("train")
    federation = FederationConfig(hospitals=4, seed=1)
    iid = partition_for(PartitionConfig(scheme="iid"), labels, federation)
    sizes = [
        len(p)
        for p in partition_for(
            PartitionConfig(scheme="quantity", beta=0.3, min_samples=5), labels, federation
        )
    ]
    assert max(len(p) for p in iid) - min(len(p) for p in iid) <= 1
    assert max(sizes) - min(sizes) > 20


def test_impossible_minimum_is_a_data_error() -> None:
    labels = np.zeros((30, 5), dtype=np.float32)
    with pytest.raises(DataError, match="hospitals"):
        partition_for(
            PartitionConfig(scheme="quantity", min_samples=20),
            labels,
            FederationConfig(hospitals=4),
        )


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "quantity"])
def test_source_patient_ids_keep_each_patient_in_one_hospital(scheme: str) -> None:
    source = build_source(DataConfig(train_samples=400, test_samples=10))
    patient_ids = source.patient_ids("train")
    parts = partition_for(
        PartitionConfig(scheme=scheme, min_samples=20),
        source.labels("train"),
        FederationConfig(hospitals=4),
        patient_ids=patient_ids,
    )
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(400))
    hospitals_of = [
        {h for h, p in enumerate(parts) if pid in set(patient_ids[p])} for pid in set(patient_ids)
    ]
    assert all(len(h) == 1 for h in hospitals_of)
