"""Every refusal the core can raise has its HTTP status; bodies are JSON with a stable code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from securemed.errors import ClinicianRejected, ConfigError, InputRejected
from services.http_errors import STATUS_BY_CODE, ApiError, as_response

ROOT = Path(__file__).resolve().parents[3]
_RAISED = re.compile(
    r"(?:InputRejected|ClinicianRejected|_reject|ApiError)\(\s*\"([a-z_]+)\"", re.MULTILINE
)


def _reasons_in(*folders: str) -> set[str]:
    found = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            found |= set(_RAISED.findall(path.read_text()))
    return found


def test_every_reason_raised_in_the_serving_path_has_a_4xx_status() -> None:
    reasons = _reasons_in("securemed/crypto", "securemed/phi", "securemed/serving", "services")
    assert {"not_an_image", "truncated_dicom", "key_revoked", "missing_token"} <= reasons
    unmapped = sorted(reasons - set(STATUS_BY_CODE))
    assert not unmapped, f"give these codes an HTTP status in services/http_errors.py: {unmapped}"
    # a refusal is the client's to fix (4xx); only /healthz's "unavailable" is the service's
    assert all(400 <= STATUS_BY_CODE[reason] < 500 for reason in reasons - {"unavailable"})


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InputRejected("truncated_dicom", "the DICOM is cut short"), 422, "truncated_dicom"),
        (ClinicianRejected("invalid_token", "bad token"), 401, "invalid_token"),
        (ApiError("file_too_large", "too big"), 413, "file_too_large"),
        (ConfigError("/secret/path/state missing"), 503, "unavailable"),
        (RuntimeError("Jane Roe's MRN 12345678 broke it"), 500, "internal_error"),
    ],
)
def test_errors_become_json_with_a_code_and_unexpected_ones_say_nothing(
    error: Exception, status: int, code: str
) -> None:
    response = as_response(error, request_id="r1")
    body = json.loads(bytes(response.body))
    assert response.status_code == status
    assert body["error"]["code"] == code and body["error"]["request_id"] == "r1"
    if status >= 500:
        assert str(error) not in body["error"]["message"]
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_refusal_wrapped_by_ray_answers_with_its_own_message_not_the_traceback() -> None:
    from ray.exceptions import RayTaskError

    try:
        try:
            raise ValueError("DOE^JANE could not be parsed")
        except ValueError:
            raise InputRejected("corrupt_image", "the image cannot be decoded") from None
    except InputRejected as cause:
        wrapped = RayTaskError("anonymize", "Traceback ... DOE^JANE", cause).as_instanceof_cause()
    body = json.loads(bytes(as_response(wrapped, request_id="r").body))["error"]
    assert (body["code"], body["message"]) == ("corrupt_image", "the image cannot be decoded")


def test_back_pressure_is_a_503_to_retry_not_a_server_bug() -> None:
    from ray.serve.exceptions import BackPressureError

    response = as_response(BackPressureError(num_queued_requests=9, max_queued_requests=8))
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert json.loads(bytes(response.body))["error"]["code"] == "unavailable"
