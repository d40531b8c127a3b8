"""Updates as rows of one matrix, and back.

Robust rules compare whole updates (distances, cosines, per-coordinate order statistics), so
they work on an ``(n, d)`` matrix with one flattened update per row rather than on state dicts.
This module owns that conversion and the layout needed to undo it. It does not judge the
values: finiteness and plausibility are checked by the rules and the coordinator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from securemed.errors import InvalidUpdate


@dataclass(frozen=True)
class UpdateLayout:
    """Where each named tensor lives in a flattened update, and what it must turn back into.

    Attributes:
        names: tensor names, in the order of the first update.
        shapes: one shape per name.
        dtypes: one dtype per name; integer (and bool) tensors are rounded on the way back.
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    dtypes: tuple[torch.dtype, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of elements of each tensor, in ``names`` order."""
        return tuple(math.prod(shape) for shape in self.shapes)

    @property
    def size(self) -> int:
        """Length ``d`` of a flattened update."""
        return sum(self.sizes)


def flatten_updates(
    updates: Sequence[Mapping[str, torch.Tensor]],
) -> tuple[torch.Tensor, UpdateLayout]:
    """Stack ``n`` updates into an ``(n, d)`` float64 matrix, one update per row.

    Float64 so that integer counters and float16 weights survive the round trip exactly and
    distances between rows do not lose precision. Tensors are taken in the first update's
    order; the others may list them in any order but must carry the same names, shapes and
    dtypes, since rows that do not describe the same model cannot be compared coordinate by
    coordinate.

    Raises:
        InvalidUpdate: no updates, an empty or complex tensor, or updates that differ in names,
            shapes or dtypes.
    """
    if not updates:
        raise InvalidUpdate("cannot flatten an empty list of updates: at least one is needed")
    first = updates[0]
    names = tuple(first)
    if not names:
        raise InvalidUpdate("an update must carry at least one tensor")
    shapes = tuple(first[name].shape for name in names)
    dtypes = tuple(first[name].dtype for name in names)
    for name, dtype in zip(names, dtypes, strict=True):
        if dtype.is_complex:
            raise InvalidUpdate(f"tensor {name!r} is complex ({dtype}); updates must be real")
    expected = set(names)
    for index, update in enumerate(updates[1:], start=1):
        if set(update) != expected:
            missing = sorted(expected - set(update))
            extra = sorted(set(update) - expected)
            raise InvalidUpdate(
                f"updates must carry the same tensors: update {index} lacks {missing} "
                f"and adds {extra} compared with update 0"
            )
        for name, shape, dtype in zip(names, shapes, dtypes, strict=True):
            tensor = update[name]
            if tensor.shape != shape or tensor.dtype != dtype:
                raise InvalidUpdate(
                    f"tensor {name!r} of update {index} is {tuple(tensor.shape)} {tensor.dtype}, "
                    f"update 0 has {tuple(shape)} {dtype}; all updates must match the model"
                )
    layout = UpdateLayout(names=names, shapes=shapes, dtypes=dtypes)
    device = first[names[0]].device
    matrix = torch.empty((len(updates), layout.size), dtype=torch.float64, device=device)
    for row, update in enumerate(updates):
        start = 0
        for name, size in zip(names, layout.sizes, strict=True):
            matrix[row, start : start + size] = update[name].detach().reshape(-1)
            start += size
    return matrix, layout


def unflatten(vector: torch.Tensor, layout: UpdateLayout) -> dict[str, torch.Tensor]:
    """Cut a ``d``-vector back into named tensors with the layout's shapes and dtypes.

    Integer and bool tensors are rounded to the nearest value rather than truncated, so an
    aggregated counter of 2.6 becomes 3, as :func:`securemed.aggregation.fedavg` does.

    Raises:
        InvalidUpdate: ``vector`` is not one-dimensional of length ``layout.size``.
    """
    if vector.dim() != 1 or vector.numel() != layout.size:
        raise InvalidUpdate(
            f"cannot unflatten a tensor of shape {tuple(vector.shape)} into a layout of "
            f"{layout.size} values"
        )
    pieces = torch.split(vector, list(layout.sizes))
    restored: dict[str, torch.Tensor] = {}
    for name, shape, dtype, piece in zip(
        layout.names, layout.shapes, layout.dtypes, pieces, strict=True
    ):
        values = piece if dtype.is_floating_point else piece.round()
        restored[name] = values.reshape(shape).to(dtype)
    return restored
