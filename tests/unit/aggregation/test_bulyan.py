import torch

from securemed.aggregation import Bulyan
from securemed.aggregation.bulyan import closest_to_median_mean, iterated_krum

# Seven inputs on a line, a = 0, 1, 2, 3, 6, 12, 100 (rows 0..6), the last one Byzantine; f = 1,
# so n = 7 = 4f + 3, theta = n - 2f = 5 inputs are selected and beta = theta - 2f = 3 kept per
# coordinate. Iterated Krum, r inputs left, scores summing the r - f - 2 nearest (at least 1):
#   r = 7, 4 nearest: a=0: 1+4+9+36 = 50, 1: 1+1+4+25 = 31, 2: 1+1+4+16 = 22, 3: 1+4+9+9 = 23,
#          6: 9+16+25+36 = 86, 12: 36+81+100+121 = 338  -> a=2 (row 2)
#   r = 6, 3 nearest: 0: 1+9+36 = 46, 1: 1+4+25 = 30, 3: 4+9+9 = 22, 6: 9+25+36 = 70,
#          12: 36+81+121 = 238                             -> a=3 (row 3)
#   r = 5, 2 nearest: 0: 1+36 = 37, 1: 1+25 = 26, 6: 25+36 = 61, 12: 36+121 = 157 -> a=1 (row 1)
#   r = 4, 1 nearest: 0: 36, 6: 36, 12: 36, 100: 88^2   -> tie, first row: a=0 (row 0)
#   r = 3, 1 nearest: 6: 36, 12: 36, 100: 88^2          -> tie, first row: a=6 (row 4)
# Selected values 2, 3, 1, 0, 6; median 2; distances 0, 1, 1, 2, 4 -> keep 2, 3, 1 -> mean 2.
LINE = [0.0, 1.0, 2.0, 3.0, 6.0, 12.0, 100.0]


def test_iterated_krum_selects_theta_inputs_one_krum_winner_at_a_time():
    matrix = torch.tensor([[a] for a in LINE], dtype=torch.float64)
    assert iterated_krum(matrix, f=1, count=5) == [2, 3, 1, 0, 4]


def test_bulyan_averages_the_beta_selected_values_closest_to_the_median():
    # Second column -2a scales every distance by 5 (same selection) and mirrors the values:
    # its selected values -4, -6, -2, 0, -12 have median -4 and keep -4, -6, -2 -> -4.
    matrix = torch.tensor([[a, -2 * a] for a in LINE], dtype=torch.float64)
    rule = Bulyan(f=1)
    assert rule.aggregate(matrix).tolist() == [2.0, -4.0]
    assert rule.last_selected == [2, 3, 1, 0, 4]


def test_closest_to_median_drops_the_farther_end_and_the_upper_one_on_a_tie():
    # Column 0 sorted 1, 4, 5, 9, 20, median 5: drop 20 (15 away against 4); then 1 and 9 are
    # both 4 away -> drop 9, the upper one; keep 1, 4, 5 -> 10/3 (dropping 1 would give 6).
    # Column 1 sorted 1, 2, 3, 4, 100, median 3: drop 100, then 1 (2 away) before 4 (1 away);
    # keep 2, 3, 4 -> 3.
    values = torch.tensor([[9, 1], [1, 2], [4, 3], [5, 4], [20, 100]], dtype=torch.float64)
    result = closest_to_median_mean(values, keep=3)
    assert result.tolist() == [10 / 3, 3.0]


def test_closest_to_median_of_an_even_count_centres_on_the_mean_of_the_middle_two():
    # Sorted 0, 1, 3, 10, median 2: drop 10 (8 away), then 0 (2 away) before 3 (1 away);
    # keep 1, 3 -> 2.
    values = torch.tensor([[3], [10], [0], [1]], dtype=torch.float64)
    assert closest_to_median_mean(values, keep=2).tolist() == [2.0]
