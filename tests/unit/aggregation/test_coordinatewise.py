import pytest
import torch

from securemed.aggregation import CoordinateWiseMedian, TrimmedMean
from securemed.errors import AggregationPreconditionError


def _m(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


# Five inputs, f = 1, the last one Byzantine. Column by column, sorted:
#   column 0: 0, 1, 3, 8, 100        column 1: -1000, 10, 20, 30, 40
#   column 2: -4, -3, -2, -1, 1000
FIVE = _m(
    [
        [0, 10, -1],
        [1, 20, -2],
        [3, 30, -4],
        [8, 40, -3],
        [100, -1000, 1000],
    ]
)


def test_median_takes_the_middle_value_of_each_coordinate():
    # Third of five sorted values: 3, 20, -2.
    assert CoordinateWiseMedian(f=1).aggregate(FIVE).tolist() == [3.0, 20.0, -2.0]


def test_median_of_an_even_count_is_the_mean_of_the_two_middle_values():
    # Column 0 sorted 1, 2, 4, 100 -> (2 + 4) / 2 = 3; column 1 sorted -7, 5, 5, 5 -> 5.
    matrix = _m([[4, 5], [1, 5], [100, -7], [2, 5]])
    assert CoordinateWiseMedian(f=1).aggregate(matrix).tolist() == [3.0, 5.0]


def test_trimmed_mean_drops_f_values_at_each_end_of_each_coordinate():
    # f = 1 drops one per side: (1 + 3 + 8) / 3 = 4, (10 + 20 + 30) / 3 = 20,
    # (-3 - 2 - 1) / 3 = -2. It differs from the median on column 0 (4 against 3).
    assert TrimmedMean(f=1).aggregate(FIVE).tolist() == [4.0, 20.0, -2.0]


def test_trimmed_mean_with_f_zero_is_the_plain_mean():
    assert TrimmedMean(f=0).aggregate(_m([[1, 2], [3, 6]])).tolist() == [2.0, 4.0]


def test_trimmed_mean_beta_trims_a_fraction_of_the_inputs_per_side():
    # n = 10, beta = 0.2 -> floor(2.0) = 2 per side: 0, 1 and 8, 1000 dropped, mean(2..7) = 4.5.
    column = _m([[v] for v in [5, 0, 1000, 2, 3, 4, 8, 6, 7, 1]])
    rule = TrimmedMean(f=1, beta=0.2)
    assert rule.trim_per_side(10) == 2
    assert rule.aggregate(column).tolist() == [4.5]


def test_ties_at_the_trimming_cut_keep_the_surplus_copies():
    # Sorted 1, 1, 1, 9: dropping one per side keeps 1, 1 -> 1.
    assert TrimmedMean(f=1).aggregate(_m([[1], [9], [1], [1]])).tolist() == [1.0]


def test_a_beta_that_trims_fewer_than_f_per_side_protects_nothing_and_is_refused():
    with pytest.raises(AggregationPreconditionError, match=r"floor\(beta \* n\) = 1 .* f=2"):
        TrimmedMean(f=2, beta=0.1).check(10)
