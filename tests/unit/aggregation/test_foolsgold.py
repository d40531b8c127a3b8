import math

import pytest
import torch

from securemed.aggregation import FoolsGold
from securemed.aggregation.foolsgold import foolsgold_weights
from securemed.errors import AggregationPreconditionError, InvalidUpdate


def _m(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_weights_follow_similarity_pardoning_and_logit_by_hand():
    # a = (1, 0), b = (0.6, 0.8), c = (0, -1): cos(a, b) = 0.6, cos(a, c) = 0, cos(b, c) = -0.8.
    # Best matches v = (0.6, 0.6, 0). Pardoning scales c's row by 0 / 0.6 (a and b look more
    # like someone than c does), leaving it at 0. alpha = 1 - max = (0.4, 0.4, 1), already
    # topped by 1, which becomes 0.99. Logit: a, b: ln(0.4 / 0.6) + 0.5; c: ln(99) + 0.5 > 1 -> 1.
    weights = foolsgold_weights(_m([[1, 0], [0.6, 0.8], [0, -1]]), kappa=1.0)
    expected = math.log(2 / 3) + 0.5
    assert weights.tolist() == pytest.approx([expected, expected, 1.0], rel=1e-12)


def test_pardoning_spares_a_hospital_that_only_resembles_a_closer_pair():
    # a = (1, 0), b = (0.8, 0.6), c = (0, 1): cos(a, b) = 0.8, cos(a, c) = 0, cos(b, c) = 0.6;
    # v = (0.8, 0.8, 0.6). Pardoning scales cs(c, b) by 0.6 / 0.8 to 0.45, so alpha =
    # (0.2, 0.2, 0.55), re-scaled (4/11, 4/11, 1); ln((4/11) / (7/11)) + 0.5 = ln(4/7) + 0.5 < 0
    # clips a and b to 0 while c keeps 1. Without pardoning alpha would be (0.2, 0.2, 0.4),
    # re-scaled (0.5, 0.5, 1), and a and b would keep 0.5.
    weights = foolsgold_weights(_m([[1, 0], [0.8, 0.6], [0, 1]]), kappa=1.0)
    assert weights.tolist() == [0.0, 0.0, 1.0]


def test_a_hospital_unlike_everyone_keeps_full_weight_despite_negative_similarities():
    # a = (1, 0), b = (-1, 0), c = (-0.6, 0.8): cos(a, b) = -1, cos(a, c) = -0.6,
    # cos(b, c) = 0.6; v = (-0.6, 0.6, 0.6), clamped at 0 for pardoning, so a's row is scaled by
    # 0 and alpha = (1, 0.4, 0.4): a keeps 1, b and c get ln(0.4 / 0.6) + 0.5. Scaling by the
    # unclamped ratio -0.6 / 0.6 = -1 would turn cos(a, b) = -1 into 1 and zero a's weight.
    weights = foolsgold_weights(_m([[1, 0], [-1, 0], [-0.6, 0.8]]), kappa=1.0)
    expected = math.log(2 / 3) + 0.5
    assert weights.tolist() == pytest.approx([1.0, expected, expected], rel=1e-12)


def test_kappa_scales_the_logit():
    weights = foolsgold_weights(_m([[1, 0], [0.6, 0.8], [0, -1]]), kappa=2.0)
    assert weights[0].item() == pytest.approx(2 * (math.log(2 / 3) + 0.5), rel=1e-12)


def test_the_output_is_the_weighted_mean_with_foolsgold_weights():
    w = math.log(2 / 3) + 0.5
    rows = [[1, 0], [0.6, 0.8], [0, -1]]
    result = FoolsGold().aggregate(_m(rows), hospitals=["a", "b", "c"])
    expected = [(w * 1.6) / (2 * w + 1), (w * 0.8 - 1) / (2 * w + 1)]
    assert result.tolist() == pytest.approx(expected, rel=1e-12)


def test_sybils_whose_histories_converge_are_down_weighted_across_rounds():
    # Two honest hospitals along e0 and e1; three sybils push e2, each with its own noise
    # direction e3, e4, e5 that it adds in round 1 and removes in round 2.
    # Round 1: sybils' cosines are 1/2, honest ones are orthogonal to all: alpha honest 1,
    # sybils 1/2; logit(1/2) + 0.5 = 0.5. Output (e0 + e1 + 0.5 (3 e2 + e3 + e4 + e5)) / 3.5.
    # Round 2: every sybil history is 2 e2, identical: weight 0; output (e0 + e1) / 2.
    eye = torch.eye(6, dtype=torch.float64)
    names = ["h1", "h2", "s1", "s2", "s3"]
    rule = FoolsGold()
    round_1 = torch.stack([eye[0], eye[1], eye[2] + eye[3], eye[2] + eye[4], eye[2] + eye[5]])
    result_1 = rule.aggregate(round_1, hospitals=names)
    assert rule.last_weights is not None
    assert rule.last_weights.tolist() == pytest.approx([1, 1, 0.5, 0.5, 0.5], rel=1e-12)
    assert result_1.tolist() == pytest.approx([2 / 7, 2 / 7, 3 / 7, 1 / 7, 1 / 7, 1 / 7])
    round_2 = torch.stack([eye[0], eye[1], eye[2] - eye[3], eye[2] - eye[4], eye[2] - eye[5]])
    result_2 = rule.aggregate(round_2, hospitals=names)
    assert rule.last_weights.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert result_2.tolist() == [0.5, 0.5, 0.0, 0.0, 0.0, 0.0]


def test_history_is_kept_by_hospital_not_by_row_position():
    rule = FoolsGold()
    eye = torch.eye(3, dtype=torch.float64)
    rule.aggregate(torch.stack([eye[0], eye[1]]), hospitals=["x", "y"])
    rule.aggregate(torch.stack([eye[2], eye[0]]), hospitals=["y", "x"])
    assert rule.histories["x"].tolist() == [2.0, 0.0, 0.0]
    assert rule.histories["y"].tolist() == [0.0, 1.0, 1.0]
    rule.reset()
    assert rule.histories == {}


def test_when_every_hospital_has_an_exact_twin_nothing_is_applied():
    rows = _m([[1, 2], [1, 2], [1, 2]])
    result = FoolsGold().aggregate(rows, hospitals=["a", "b", "c"])
    assert result.tolist() == [0.0, 0.0]


def test_foolsgold_needs_the_hospital_of_each_row():
    with pytest.raises(AggregationPreconditionError, match="hospitals="):
        FoolsGold().aggregate(_m([[1], [2]]))
    with pytest.raises(InvalidUpdate, match="appears twice"):
        FoolsGold().aggregate(_m([[1], [2]]), hospitals=["a", "a"])
    with pytest.raises(InvalidUpdate, match="2 updates but 3"):
        FoolsGold().aggregate(_m([[1], [2]]), hospitals=["a", "b", "c"])


def test_a_history_of_another_length_is_refused_without_touching_state():
    rule = FoolsGold()
    rule.aggregate(_m([[1, 0], [0, 1]]), hospitals=["a", "b"])
    with pytest.raises(InvalidUpdate, match="reset the rule"):
        rule.aggregate(_m([[1, 0, 0], [0, 1, 0]]), hospitals=["c", "a"])
    assert set(rule.histories) == {"a", "b"}
