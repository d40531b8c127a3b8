"""Shamir sharing, the AES-CTR mask generator, the neighbour graph, quantization, parameters."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from scipy import stats

from securemed.errors import ConfigError, ProtocolViolation
from securemed.secagg import shamir
from securemed.secagg.graph import default_neighbours, neighbour_graph
from securemed.secagg.params import SecAggParams
from securemed.secagg.prg import MaskGenerator
from securemed.secagg.quantize import dequantize_sum, quantize


def test_any_threshold_of_the_shares_recovers_the_secret() -> None:
    secret = os.urandom(32)
    shares = shamir.split(secret, threshold=3, points=[1, 2, 3, 4, 5])
    for chosen in itertools.combinations(shares, 3):
        assert shamir.combine({x: shares[x] for x in chosen}, threshold=3) == secret


def test_fewer_shares_than_the_threshold_are_refused() -> None:
    shares = shamir.split(os.urandom(32), threshold=3, points=[1, 2, 3])
    with pytest.raises(ProtocolViolation, match="2 shares cannot recover"):
        shamir.combine({1: shares[1], 2: shares[2]}, threshold=3)


def test_shares_of_different_secrets_do_not_combine_into_either() -> None:
    first = shamir.split(b"\x01" * 32, threshold=2, points=[1, 2])
    second = shamir.split(b"\x02" * 32, threshold=2, points=[1, 2])
    try:
        mixed = shamir.combine({1: first[1], 2: second[2]}, threshold=2)
    except ProtocolViolation:
        return
    assert mixed not in (b"\x01" * 32, b"\x02" * 32)


def test_a_mask_is_reproducible_from_its_key_and_differs_between_keys() -> None:
    generator = MaskGenerator(1000)
    key = os.urandom(32)
    first = generator.mask(key).copy()
    assert np.array_equal(generator.mask(key), first)
    assert not np.array_equal(generator.mask(os.urandom(32)), first)


def test_masks_are_uniform_on_the_ring() -> None:
    words = MaskGenerator(200_000).mask(bytes(range(32)))
    counts = np.bincount(words >> 24, minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-4
    assert stats.chisquare(np.bincount(words & 0xFF, minlength=256)).pvalue > 1e-4


def test_adding_and_subtracting_a_mask_wraps_back_exactly() -> None:
    generator = MaskGenerator(10)
    target = np.arange(10, dtype=np.uint32)
    key = os.urandom(32)
    generator.add(target, key)
    generator.add(target, key, sign=-1)
    assert np.array_equal(target, np.arange(10, dtype=np.uint32))


def test_the_neighbour_graph_is_symmetric_regular_and_agreed_by_everyone() -> None:
    names = [f"h{i:03d}" for i in range(50)]
    graph = neighbour_graph(names, 12, seed=b"round-7")
    assert graph == neighbour_graph(list(reversed(names)), 12, seed=b"round-7")
    assert graph != neighbour_graph(names, 12, seed=b"round-8")
    for name, neighbours in graph.items():
        assert len(set(neighbours)) == 12 and name not in neighbours
        assert all(name in graph[other] for other in neighbours)


def test_a_small_federation_uses_the_complete_graph() -> None:
    graph = neighbour_graph(["a", "b", "c", "d"], default_neighbours(4), seed=b"x")
    assert graph["a"] == ("b", "c", "d")


def test_default_neighbours_grow_logarithmically() -> None:
    assert [default_neighbours(n) for n in (2, 8, 32, 128, 512)] == [1, 7, 16, 22, 28]


def test_stochastic_quantization_is_unbiased_and_sums_decode() -> None:
    rng = np.random.default_rng(0)
    x = np.array([-2.0, -0.5, 0.0, 0.123456, 0.5, 2.0])
    draws = np.stack([quantize(x, clip=1.0, bits=8, rng=rng) for _ in range(4000)])
    decoded = dequantize_sum(draws.sum(axis=0, dtype=np.uint32), count=4000, clip=1.0, bits=8)
    np.testing.assert_allclose(decoded / 4000, np.clip(x, -1, 1), atol=2e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hospitals": 1}, "at least 2 hospitals"),
        ({"hospitals": 10, "neighbours": 5}, "must be even"),
        ({"hospitals": 10, "neighbours": 4, "threshold": 2}, "k/2 < t <= k"),
        ({"hospitals": 10, "neighbours": 4, "threshold": 5}, "k/2 < t <= k"),
        ({"hospitals": 10, "min_survivors": 11}, "min_survivors"),
        ({"hospitals": 10, "clip": 0.0}, "clip"),
        ({"hospitals": 1000, "bits": 24}, "exceed the 32-bit ring"),
    ],
)
def test_parameters_that_break_the_protocol_are_refused(kwargs: dict, message: str) -> None:
    hospitals = kwargs.pop("hospitals")
    with pytest.raises(ConfigError, match=message):
        SecAggParams.for_round(hospitals, **kwargs)
