import pytest
import torch

from securemed.aggregation import flatten_updates, unflatten
from securemed.errors import InvalidUpdate


def _update(scale: float) -> dict[str, torch.Tensor]:
    return {
        "conv.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3) * scale,
        "bn.running_mean": torch.tensor([0.5, -1.25], dtype=torch.float16) * scale,
        "bn.num_batches_tracked": torch.tensor(7 * int(scale)),
        "mask": torch.tensor([True, False]),
    }


def test_rows_hold_each_update_in_the_first_updates_tensor_order():
    matrix, layout = flatten_updates([_update(1.0), _update(2.0)])
    assert matrix.dtype == torch.float64
    assert layout.names == ("conv.weight", "bn.running_mean", "bn.num_batches_tracked", "mask")
    assert layout.sizes == (6, 2, 1, 2) and layout.size == 11
    assert matrix[0].tolist() == [0, 1, 2, 3, 4, 5, 0.5, -1.25, 7, 1, 0]
    assert matrix[1].tolist() == [0, 2, 4, 6, 8, 10, 1.0, -2.5, 14, 1, 0]


def test_round_trip_restores_names_shapes_dtypes_and_values_exactly():
    update = _update(3.0)
    matrix, layout = flatten_updates([update])
    restored = unflatten(matrix[0], layout)
    assert list(restored) == list(update)
    for name, tensor in update.items():
        assert restored[name].dtype == tensor.dtype
        assert restored[name].shape == tensor.shape
        assert torch.equal(restored[name], tensor)


def test_other_updates_may_list_tensors_in_another_order():
    first = {"a": torch.tensor([1.0]), "b": torch.tensor([2.0])}
    second = {"b": torch.tensor([20.0]), "a": torch.tensor([10.0])}
    matrix, layout = flatten_updates([first, second])
    assert layout.names == ("a", "b")
    assert matrix.tolist() == [[1.0, 2.0], [10.0, 20.0]]


def test_integer_tensors_are_rounded_not_truncated_on_the_way_back():
    _, layout = flatten_updates([{"w": torch.zeros(2), "n": torch.tensor([0, 0])}])
    restored = unflatten(torch.tensor([0.25, 0.75, 2.6, -2.6], dtype=torch.float64), layout)
    assert restored["w"].tolist() == [0.25, 0.75]
    assert restored["n"].tolist() == [3, -3] and restored["n"].dtype == torch.int64


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ([], "at least one"),
        ([{}], "at least one tensor"),
        ([{"w": torch.ones(1)}, {"v": torch.ones(1)}], r"update 1 lacks \['w'\] and adds \['v'\]"),
        ([{"w": torch.ones(2)}, {"w": torch.ones(3)}], r"update 1 is \(3,\)"),
        ([{"w": torch.ones(2)}, {"w": torch.ones(2, dtype=torch.float64)}], "torch.float64"),
        ([{"w": torch.ones(2, dtype=torch.complex64)}], "complex"),
    ],
)
def test_updates_that_do_not_describe_the_same_model_are_refused(updates, message):
    with pytest.raises(InvalidUpdate, match=message):
        flatten_updates(updates)


def test_a_vector_of_the_wrong_length_cannot_be_unflattened():
    _, layout = flatten_updates([{"w": torch.ones(3)}])
    with pytest.raises(InvalidUpdate, match="layout of 3 values"):
        unflatten(torch.zeros(4, dtype=torch.float64), layout)
