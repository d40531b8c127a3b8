"""Domain errors ↔ gRPC status codes, mapped in this one place.

The server aborts with the code for the error class and names the class in trailing metadata,
so the client can raise the same domain error on its side (FAILED_PRECONDITION alone would not
tell a stale round from a finished federation).
"""

from __future__ import annotations

import grpc

from securemed import errors

ERROR_CLASS_KEY = "securemed-error"

_CODES: dict[type[errors.SecureMedError], grpc.StatusCode] = {
    errors.InvalidUpdate: grpc.StatusCode.INVALID_ARGUMENT,
    errors.StaleRound: grpc.StatusCode.FAILED_PRECONDITION,
    errors.NotSelected: grpc.StatusCode.FAILED_PRECONDITION,
    errors.FederationFinished: grpc.StatusCode.FAILED_PRECONDITION,
    errors.DuplicateSubmission: grpc.StatusCode.ALREADY_EXISTS,
    errors.UnknownHospital: grpc.StatusCode.PERMISSION_DENIED,
    errors.CertificateRevoked: grpc.StatusCode.PERMISSION_DENIED,
    errors.ProtocolViolation: grpc.StatusCode.INVALID_ARGUMENT,
    errors.RoundAborted: grpc.StatusCode.ABORTED,
    errors.AggregationPreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
}
_BY_NAME = {cls.__name__: cls for cls in _CODES}


def code_for(error: errors.SecureMedError) -> grpc.StatusCode:
    """The status a domain error is reported with; anything unexpected is INTERNAL."""
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.INTERNAL


def domain_error(rpc_error: grpc.RpcError) -> Exception:
    """Turn a failed call back into the domain error the server raised, when it named one."""
    call = rpc_error if isinstance(rpc_error, grpc.Call) else None
    details = call.details() if call else str(rpc_error)
    for key, value in (call.trailing_metadata() or ()) if call else ():
        if key == ERROR_CLASS_KEY and value in _BY_NAME:
            return _BY_NAME[value](details)
    if call and call.code() is grpc.StatusCode.UNAVAILABLE:
        return errors.AggregatorUnavailable(f"cannot reach the aggregator: {details}")
    return rpc_error
