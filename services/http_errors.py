"""The one place where refusals become HTTP responses: a status and a JSON body with a code.

Every error the API returns has the shape ``{"error": {"code", "message", "request_id"}}``
(plus ``verdict`` when the safety validator blocked). Codes are stable, messages say what to do,
and nothing from the request (no file name, no indication text, no header value) is echoed.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from starlette.exceptions import HTTPException as StarletteHTTPException

from securemed.errors import ConfigError, Rejected

# a child of Serve's logger: lines land in the replica's log file with its request context
logger = logging.getLogger("ray.serve.securemed")

#: the status of each stable reason code (domain refusals and the API's own)
STATUS_BY_CODE: dict[str, int] = {
    # authentication and the clinician registry
    "missing_token": 401,
    "invalid_token": 401,
    "invalid_admin_token": 401,
    "key_revoked": 403,
    "unknown_clinician": 404,
    "already_registered": 409,
    "key_reused": 409,
    "invalid_public_key": 422,
    # the upload
    "length_required": 411,
    "file_too_large": 413,
    "image_too_large": 413,
    "not_an_image": 415,
    "not_dicom": 415,
    "unsupported_dicom": 415,
    "empty_upload": 422,
    "missing_image": 422,
    "corrupt_image": 422,
    "truncated_dicom": 422,
    "no_pixel_data": 422,
    "invalid_request": 422,
    # the safety validator
    "input_blocked": 422,
    "report_blocked": 422,
    # everything else
    "not_found": 404,
    "method_not_allowed": 405,
    "unavailable": 503,
    "internal_error": 500,
}
OUTCOMES = ("sealed", *STATUS_BY_CODE)


class ApiError(Exception):
    """A refusal of the HTTP layer itself (no token, no length, no image field...)."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


def error_response(
    code: str, message: str, *, request_id: str | None = None, **details: Any
) -> JSONResponse:
    status = STATUS_BY_CODE.get(code, 400)
    body = {"error": {"code": code, "message": message, "request_id": request_id, **details}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if status == 503:
        headers["Retry-After"] = "5"
    return JSONResponse(body, status_code=status, headers=headers)


def _cause(error: BaseException) -> BaseException:
    """The error a Ray task raised, not Ray's wrapper (whose text is a whole traceback)."""
    while isinstance(error, RayTaskError) and isinstance(error.cause, BaseException):
        error = error.cause
    return error


def code_of(error: BaseException) -> str:
    """The stable code an exception is answered with."""
    error = _cause(error)
    if isinstance(error, ApiError):
        return error.code
    if isinstance(error, Rejected):
        return error.reason
    if isinstance(
        error, ConfigError | BackPressureError | DeploymentUnavailableError | RayActorError
    ):
        return "unavailable"
    return "internal_error"


_GENERIC_MESSAGES = {
    "unavailable": "the service is overloaded or a stage is restarting: retry shortly",
    "internal_error": "the service failed on this request; retry, and report the request id "
    "if it persists",
}


def as_response(error: BaseException, *, request_id: str | None = None) -> JSONResponse:
    """The response for any exception a route raised; only our own errors' messages are
    shown, anything else gets a generic one that says nothing about why."""
    error = _cause(error)
    code = code_of(error)
    if isinstance(error, ApiError):
        return error_response(code, str(error), request_id=request_id, **error.details)
    if isinstance(error, Rejected) and code not in _GENERIC_MESSAGES:
        return error_response(code, str(error), request_id=request_id)
    message = _GENERIC_MESSAGES.get(code, _GENERIC_MESSAGES["internal_error"])
    return error_response(code, message, request_id=request_id)


def log_failure(request_id: str | None, error: BaseException) -> None:
    """Log an unexpected failure by type and code location only: its message could quote
    request content, so it is never written."""
    frames = traceback.extract_tb(error.__traceback__)
    where = " < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames[-6:]))
    logger.error("request %s failed: %s at %s", request_id, type(error).__name__, where)


def install_error_handlers(api: FastAPI) -> None:
    """JSON errors for what FastAPI and Starlette reject before a route runs."""

    async def validation(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        fields = sorted({".".join(str(p) for p in item["loc"]) for item in error.errors()})
        return error_response(
            "invalid_request", f"the request is invalid in: {', '.join(fields)}", fields=fields
        )

    async def http(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
        if code is None:
            return error_response("invalid_request", "the request cannot be served")
        return error_response(code, "no such route or method: see /v1/openapi.json")

    async def anything(_: Request, error: Exception) -> JSONResponse:
        log_failure(None, error)
        return as_response(error)

    api.add_exception_handler(RequestValidationError, validation)
    api.add_exception_handler(StarletteHTTPException, http)
    api.add_exception_handler(Exception, anything)
