import pytest
import torch

from securemed.aggregation import Krum, MultiKrum
from securemed.aggregation.krum import krum_scores, pairwise_squared_distances
from securemed.errors import AggregationPreconditionError

# Five points in the plane (a third coordinate, 7 for all, adds nothing to distances):
#   p0 = (1, 1), p1 = (2, 1), p2 = (1, 3), p3 = (4, 4), p4 = (51, 51) the Byzantine one.
# Squared distances: p0-p1 1, p0-p2 4, p0-p3 18, p1-p2 5, p1-p3 13, p2-p3 10, and every
# distance to p4 is at least 47^2 + 47^2 = 4418.
POINTS = torch.tensor(
    [[1, 1, 7], [2, 1, 7], [1, 3, 7], [4, 4, 7], [51, 51, 7]], dtype=torch.float64
)


def test_distances_are_the_squared_euclidean_ones():
    distances = pairwise_squared_distances(POINTS[:4])
    assert distances.tolist() == [
        [0, 1, 4, 18],
        [1, 0, 5, 13],
        [4, 5, 0, 10],
        [18, 13, 10, 0],
    ]


def test_krum_picks_the_input_closest_to_its_n_minus_f_minus_2_neighbours():
    # f = 1, n = 5: each score sums the 2 nearest others.
    # p0: 1 + 4 = 5, p1: 1 + 5 = 6, p2: 4 + 5 = 9, p3: 10 + 13 = 23, p4: >= 8836 -> p0.
    scores = krum_scores(pairwise_squared_distances(POINTS), 2)
    assert scores[:4].tolist() == [5.0, 6.0, 9.0, 23.0]
    rule = Krum(f=1)
    assert rule.aggregate(POINTS).tolist() == [1.0, 1.0, 7.0]
    assert rule.last_selected == [0]


def test_krum_breaks_a_tie_in_favour_of_the_first_input():
    # f = 0 sums the 3 nearest: p0: 1 + 4 + 18 = 23, p1: 1 + 5 + 13 = 19, p2: 4 + 5 + 10 = 19,
    # p3: 10 + 13 + 18 = 41. p1 and p2 tie; p1 comes first.
    rule = Krum(f=0)
    assert rule.aggregate(POINTS).tolist() == [2.0, 1.0, 7.0]
    assert rule.last_selected == [1]


def test_multi_krum_averages_the_n_minus_f_best_scored_inputs_by_default():
    # Scores as above (f = 1): order p0 (5), p1 (6), p2 (9), p3 (23); m = n - f = 4 averages
    # p0..p3: ((1 + 2 + 1 + 4) / 4, (1 + 1 + 3 + 4) / 4, 7) = (2, 2.25, 7).
    rule = MultiKrum(f=1)
    assert rule.aggregate(POINTS).tolist() == [2.0, 2.25, 7.0]
    assert rule.last_selected == [0, 1, 2, 3]


def test_multi_krum_with_m_two_averages_the_two_best():
    # p0 and p1: ((1 + 2) / 2, 1, 7).
    assert MultiKrum(f=1, m=2).aggregate(POINTS).tolist() == [1.5, 1.0, 7.0]


def test_multi_krum_with_m_one_is_krum():
    assert torch.equal(MultiKrum(f=1, m=1).aggregate(POINTS), Krum(f=1).aggregate(POINTS))


def test_multi_krum_refuses_to_average_more_than_n_minus_f():
    with pytest.raises(AggregationPreconditionError, match=r"at most n - f = 4 of n=5.*m=5"):
        MultiKrum(f=1, m=5).aggregate(POINTS)
