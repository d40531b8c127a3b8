import numpy as np
import pytest

from securemed.attacks import AttackTarget, LabelFlipping
from securemed.errors import ConfigError, DataError


def one_hot(classes, num_classes=4):
    labels = np.zeros((len(classes), num_classes), dtype=np.float32)
    labels[np.arange(len(classes)), classes] = 1.0
    return labels


def changed_rows(before, after):
    return np.flatnonzero((before != after).any(axis=1))


def test_invert_flips_exactly_the_chosen_fraction_of_samples():
    labels = one_hot([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    attack = LabelFlipping(mode="invert", fraction=0.3, seed=7)
    flipped = attack.apply(labels)
    rows = changed_rows(labels, flipped)
    assert len(rows) == 3
    assert rows.tolist() == attack.chosen_samples(10).tolist()
    assert np.array_equal(flipped[rows], 1.0 - labels[rows])
    assert flipped.dtype == np.float32
    assert attack.target is AttackTarget.DATA


def test_the_same_seed_chooses_the_same_samples_and_another_seed_others():
    labels = one_hot(list(range(4)) * 25)
    first = LabelFlipping(mode="invert", fraction=0.2, seed=1).apply(labels)
    again = LabelFlipping(mode="invert", fraction=0.2, seed=1).apply(labels)
    other = LabelFlipping(mode="invert", fraction=0.2, seed=2).apply(labels)
    assert np.array_equal(first, again)
    assert len(changed_rows(labels, first)) == len(changed_rows(labels, other)) == 20
    assert not np.array_equal(first, other)


def test_permute_moves_each_finding_to_the_next_by_default():
    labels = one_hot([0, 1, 2, 3, 3, 2])
    flipped = LabelFlipping(mode="permute", fraction=1.0, seed=0).apply(labels)
    assert np.array_equal(flipped, one_hot([1, 2, 3, 0, 0, 3]))


def test_permute_with_an_explicit_permutation_keeps_multi_hot_counts():
    labels = np.array([[1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 0, 0]], dtype=np.float32)
    attack = LabelFlipping(mode="permute", fraction=0.5, seed=3, permutation=[2, 0, 1])
    flipped = attack.apply(labels)
    chosen = attack.chosen_samples(4)
    assert len(chosen) == 2
    expected = labels.copy()
    for row in chosen:
        expected[row] = labels[row][[1, 2, 0]]  # new column j holds old column p^-1(j)
    assert np.array_equal(flipped, expected)
    assert np.array_equal(flipped.sum(axis=1), labels.sum(axis=1))


def test_zero_and_full_fraction_flip_none_and_all():
    labels = one_hot([0, 1, 2, 3])
    assert np.array_equal(LabelFlipping(mode="invert", fraction=0.0, seed=0).apply(labels), labels)
    full = LabelFlipping(mode="invert", fraction=1.0, seed=0).apply(labels)
    assert len(changed_rows(labels, full)) == 4


def test_the_input_labels_are_not_modified():
    labels = one_hot([0, 1, 2, 3])
    LabelFlipping(mode="invert", fraction=1.0, seed=0).apply(labels)
    assert np.array_equal(labels, one_hot([0, 1, 2, 3]))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"mode": "shuffle", "fraction": 0.1, "seed": 0}, "mode"),
        ({"mode": "invert", "fraction": 1.5, "seed": 0}, "fraction"),
        ({"mode": "invert", "fraction": 0.1, "seed": "x"}, "seed"),
        ({"mode": "permute", "fraction": 0.1, "seed": 0, "permutation": [0, 1, 2]}, "identity"),
        ({"mode": "permute", "fraction": 0.1, "seed": 0, "permutation": [0, 0, 1]}, "once"),
        ({"mode": "invert", "fraction": 0.1, "seed": 0, "permutation": [1, 0]}, "permute"),
    ],
)
def test_bad_parameters_are_a_config_error(params, message):
    with pytest.raises(ConfigError, match=message):
        LabelFlipping(**params)


def test_labels_that_do_not_fit_are_refused():
    with pytest.raises(DataError, match="2-D"):
        LabelFlipping(mode="invert", fraction=0.5, seed=0).apply(np.zeros(4, dtype=np.float32))
    with pytest.raises(DataError, match="only 0 and 1"):
        LabelFlipping(mode="invert", fraction=0.5, seed=0).apply(np.full((2, 2), 0.5))
    with pytest.raises(ConfigError, match="covers 2 classes"):
        LabelFlipping(mode="permute", fraction=0.5, seed=0, permutation=[1, 0]).apply(
            one_hot([0, 1, 2])
        )


def test_the_count_of_flipped_samples_rounds_half_up():
    labels = one_hot([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    flipped = LabelFlipping(mode="invert", fraction=0.25, seed=0).apply(labels)
    assert len(changed_rows(labels, flipped)) == 3  # 2.5 samples -> 3
