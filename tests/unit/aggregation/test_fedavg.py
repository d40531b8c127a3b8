import pytest
import torch

from securemed.aggregation import fedavg
from securemed.errors import InvalidUpdate


def test_mean_is_weighted_by_sample_counts():
    updates = [{"w": torch.tensor([1.0, 0.0])}, {"w": torch.tensor([4.0, 3.0])}]
    result = fedavg(updates, [1, 2])
    assert torch.allclose(result["w"], torch.tensor([3.0, 2.0]))


def test_equal_weights_give_the_plain_mean():
    updates = [{"w": torch.full((2, 2), float(i))} for i in range(4)]
    assert torch.allclose(fedavg(updates, [5, 5, 5, 5])["w"], torch.full((2, 2), 1.5))


def test_dtypes_are_kept_and_integers_rounded():
    updates = [
        {"w": torch.ones(1, dtype=torch.float16), "n": torch.tensor(1)},
        {"w": torch.ones(1, dtype=torch.float16), "n": torch.tensor(4)},
    ]
    result = fedavg(updates, [1, 1])
    assert result["w"].dtype == torch.float16
    assert result["n"].dtype == torch.int64 and int(result["n"]) in (2, 3)


@pytest.mark.parametrize(
    ("updates", "weights", "message"),
    [
        ([], [], "at least one"),
        ([{"w": torch.ones(1)}], [1, 2], "weights"),
        ([{"w": torch.ones(1)}], [0], "positive"),
        ([{"w": torch.ones(1)}, {"v": torch.ones(1)}], [1, 1], "same tensors"),
    ],
)
def test_bad_input_is_refused_with_a_reason(updates, weights, message):
    with pytest.raises(InvalidUpdate, match=message):
        fedavg(updates, weights)
