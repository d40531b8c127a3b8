"""Tensors as raw little-endian bytes with dtype and shape: the federation's wire format.

This module knows nothing of gRPC; the transport copies :class:`TensorBlob` fields into and out
of protobuf messages. Decoding checks everything a malicious or buggy peer could get wrong
(unknown dtype, negative dimensions, a byte count that does not match the shape) and raises
:class:`InvalidUpdate` instead of handing numpy a buffer it would misread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from securemed.errors import InvalidUpdate

#: dtypes allowed on the wire, by numpy name. bfloat16 has no numpy equivalent and is excluded.
WIRE_DTYPES = ("float32", "float64", "float16", "int64", "int32", "uint8")


@dataclass(frozen=True)
class TensorBlob:
    """One named tensor in wire form."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: bytes


def encode_tensor(name: str, tensor: torch.Tensor) -> TensorBlob:
    """Encode a tensor as little-endian C-order bytes."""
    array = tensor.detach().cpu().contiguous().numpy()
    dtype = array.dtype.name
    if dtype not in WIRE_DTYPES:
        raise InvalidUpdate(f"tensor {name!r} has dtype {dtype}, which the wire does not carry")
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return TensorBlob(name=name, dtype=dtype, shape=tuple(array.shape), data=little.tobytes())


def decode_tensor(blob: TensorBlob) -> torch.Tensor:
    """Decode one blob, checking dtype, shape and byte count before touching the buffer."""
    if blob.dtype not in WIRE_DTYPES:
        raise InvalidUpdate(
            f"tensor {blob.name!r} has dtype {blob.dtype!r}; allowed: {', '.join(WIRE_DTYPES)}"
        )
    if any(dim < 0 for dim in blob.shape):
        raise InvalidUpdate(f"tensor {blob.name!r} has a negative dimension in {blob.shape}")
    dtype = np.dtype(blob.dtype).newbyteorder("<")
    expected = math.prod(blob.shape) * dtype.itemsize
    if len(blob.data) != expected:
        raise InvalidUpdate(
            f"tensor {blob.name!r} carries {len(blob.data)} bytes, but {blob.dtype} "
            f"{list(blob.shape)} needs {expected}"
        )
    array = np.frombuffer(blob.data, dtype=dtype).reshape(blob.shape)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def encode_state(state: Mapping[str, torch.Tensor]) -> list[TensorBlob]:
    """Encode a state dict (or an update) tensor by tensor, in its own order."""
    return [encode_tensor(name, tensor) for name, tensor in state.items()]


def decode_state(blobs: Iterable[TensorBlob]) -> dict[str, torch.Tensor]:
    """Decode blobs into a state dict, refusing a name that appears twice."""
    state: dict[str, torch.Tensor] = {}
    for blob in blobs:
        if blob.name in state:
            raise InvalidUpdate(f"tensor {blob.name!r} appears twice in the update")
        state[blob.name] = decode_tensor(blob)
    return state


def state_nbytes(blobs: Iterable[TensorBlob]) -> int:
    """Bytes of tensor payload, the quantity reported as update bytes."""
    return sum(len(blob.data) for blob in blobs)
