"""Protobuf messages ↔ the core's wire-neutral :class:`TensorBlob`."""

from __future__ import annotations

from collections.abc import Iterable

from securemed.federation.tensors import TensorBlob
from securemed.transport.federation.v1 import federation_pb2 as pb


def to_proto(blobs: Iterable[TensorBlob]) -> list[pb.Tensor]:
    return [
        pb.Tensor(name=blob.name, dtype=blob.dtype, shape=list(blob.shape), data=blob.data)
        for blob in blobs
    ]


def from_proto(tensors: Iterable[pb.Tensor]) -> list[TensorBlob]:
    return [
        TensorBlob(name=t.name, dtype=t.dtype, shape=tuple(t.shape), data=t.data) for t in tensors
    ]


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Message size limits, set identically on the server and every client."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]
