import numpy as np
import pytest
import torch

from securemed.errors import InvalidUpdate
from securemed.federation.tensors import (
    TensorBlob,
    decode_state,
    decode_tensor,
    encode_state,
    encode_tensor,
)


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.uint8]
)
def test_round_trip_keeps_values_dtype_and_shape(dtype):
    tensor = (torch.arange(24) * 3).reshape(2, 3, 4).to(dtype)
    decoded = decode_tensor(encode_tensor("w", tensor))
    assert decoded.dtype == dtype
    assert decoded.shape == tensor.shape
    assert torch.equal(decoded, tensor)


def test_encoding_is_little_endian_raw_bytes():
    blob = encode_tensor("w", torch.tensor([1.0, -2.5], dtype=torch.float32))
    assert blob.data == np.array([1.0, -2.5], dtype="<f4").tobytes()
    assert blob.dtype == "float32"
    assert blob.shape == (2,)


def test_non_contiguous_tensor_is_encoded_in_logical_order():
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()
    assert torch.equal(decode_tensor(encode_tensor("t", tensor)), tensor)


def test_state_dict_round_trip_preserves_names_and_order():
    state = {"b": torch.ones(3), "a": torch.zeros(2, 2)}
    decoded = decode_state(encode_state(state))
    assert list(decoded) == ["b", "a"]
    assert all(torch.equal(decoded[k], state[k]) for k in state)


def test_byte_count_that_does_not_match_shape_is_refused():
    blob = TensorBlob(name="w", dtype="float32", shape=(3,), data=b"\x00" * 8)
    with pytest.raises(InvalidUpdate, match="needs 12"):
        decode_tensor(blob)


def test_unknown_dtype_is_refused():
    with pytest.raises(InvalidUpdate, match="dtype"):
        decode_tensor(TensorBlob(name="w", dtype="object", shape=(1,), data=b"\x00" * 8))


def test_negative_dimension_is_refused():
    with pytest.raises(InvalidUpdate, match="negative"):
        decode_tensor(TensorBlob(name="w", dtype="float32", shape=(-1,), data=b""))


def test_duplicate_tensor_name_is_refused():
    blob = encode_tensor("w", torch.ones(1))
    with pytest.raises(InvalidUpdate, match="twice"):
        decode_state([blob, blob])


def test_bfloat16_cannot_travel():
    with pytest.raises((InvalidUpdate, TypeError)):
        encode_tensor("w", torch.ones(2, dtype=torch.bfloat16))
