"""Refusals cross deployment handles as values, not exceptions.

An exception leaving a Serve deployment method is logged by Serve with its full traceback and
reaches the caller wrapped in a ``RayTaskError`` whose text is that traceback: a refusal would
fill the logs with ERROR lines, and any message a deeper library attached could carry request
content there. So deployment methods return a :class:`Refusal` (reason and message, both ours)
and the ingress turns it back into the domain error; anything unexpected is logged by type and
code location only and refused as ``internal_error``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from securemed.errors import Rejected
from services.http_errors import log_failure

T = TypeVar("T")


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


def returning_refusals(
    method: Callable[..., Awaitable[T]],
) -> Callable[..., Awaitable[T | Refusal]]:
    """Wrap an async deployment method so that it returns its refusals."""

    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> T | Refusal:
        try:
            return await method(*args, **kwargs)
        except Rejected as error:
            return Refusal(error.reason, str(error))
        except Exception as error:
            log_failure(None, error)
            return Refusal("internal_error", "a stage of the service failed")

    return wrapper


async def stage_result(response: Awaitable[T | Refusal]) -> T:
    """Await a handle call; a :class:`Refusal` becomes the domain error again."""
    result = await response
    if isinstance(result, Refusal):
        raise Rejected(result.reason, result.message)
    return result
