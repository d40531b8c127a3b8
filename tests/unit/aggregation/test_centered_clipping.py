import pytest
import torch

from securemed.aggregation import CenteredClipping
from securemed.errors import InvalidUpdate

# Four honest updates of norm 0.5 and one Byzantine (300, 400, 0) of norm 500; f = 1, tau = 1.
HONEST = [[0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.3, 0.4, 0]]


def _with_outlier(outlier: list[float]) -> torch.Tensor:
    return torch.tensor([*HONEST, outlier], dtype=torch.float64)


def test_first_round_clips_around_zero():
    # Honest rows are within tau of 0 and kept; the outlier is scaled by 1/500 to (0.6, 0.8, 0).
    # Sum (0.5 + 0.3 + 0.6, 0.5 + 0.4 + 0.8, 0.5) = (1.4, 1.7, 0.5), over 5: (0.28, 0.34, 0.1).
    result = CenteredClipping(f=1, tau=1.0).aggregate(_with_outlier([300, 400, 0]))
    assert result.tolist() == pytest.approx([0.28, 0.34, 0.1], rel=1e-12)


def test_an_outlier_moves_the_aggregate_by_at_most_tau_over_n_per_iteration():
    near = CenteredClipping(f=1, tau=1.0).aggregate(_with_outlier([0, 0, 0]))
    far = CenteredClipping(f=1, tau=1.0).aggregate(_with_outlier([3e9, 4e9, 0]))
    # However far it sits, its clipped difference has norm tau, divided among n = 5 inputs.
    assert torch.linalg.vector_norm(far - near).item() == pytest.approx(0.2, rel=1e-12)
    assert far.tolist() == pytest.approx([0.28, 0.34, 0.1], rel=1e-12)


def test_each_iteration_restarts_from_the_last_centre():
    # 1-D, tau = 1, inputs 0, 0, 10. Iteration 1 from 0: 10 is clipped to 1 -> v = 1/3.
    # Iteration 2 from 1/3: differences -1/3, -1/3 kept, 29/3 clipped to 1 -> v = 1/3 + 1/9.
    rule = CenteredClipping(f=1, tau=1.0, iterations=2)
    result = rule.aggregate(torch.tensor([[0.0], [0.0], [10.0]], dtype=torch.float64))
    assert result.item() == pytest.approx(4 / 9, rel=1e-12)


def test_the_next_round_is_centred_on_the_previous_aggregate():
    rule = CenteredClipping(f=1, tau=1.0)
    center = rule.aggregate(_with_outlier([300, 400, 0]))
    assert rule.center is not None and torch.equal(rule.center, center)
    # Four inputs at the centre, one 2 away along e0 and clipped to 1 away: centre + e0 / 5.
    shifted = center + torch.tensor([2.0, 0, 0], dtype=torch.float64)
    second = rule.aggregate(torch.stack([center, center, center, center, shifted]))
    assert second.tolist() == pytest.approx([0.48, 0.34, 0.1], rel=1e-12)


def test_reset_forgets_the_centre_and_a_centre_of_another_length_is_refused():
    rule = CenteredClipping(f=1, tau=1.0)
    rule.aggregate(_with_outlier([300, 400, 0]))
    with pytest.raises(InvalidUpdate, match="reset the rule"):
        rule.aggregate(torch.zeros(5, 2, dtype=torch.float64))
    rule.reset()
    assert rule.center is None
    assert rule.aggregate(torch.zeros(5, 2, dtype=torch.float64)).tolist() == [0.0, 0.0]
