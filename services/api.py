"""The ingress: SecureMed's versioned HTTP API, composing the four stages through handles.

``POST /v1/reports`` authenticates the clinician, checks the input, then anonymize → generate →
validate → seal; a blocked request or report is answered with a 422 and never sealed. Admin
routes register, rotate and revoke clinicians' keys. ``GET /healthz`` reaches every stage.
Logs carry the request id, timings and codes, never request content.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.datastructures import UploadFile

from securemed.safety import Verdict
from securemed.serving.anonymization import served_report
from securemed.serving.settings import ServiceSettings
from securemed.serving.state import ServiceState
from services.http_errors import (
    OUTCOMES,
    ApiError,
    as_response,
    code_of,
    install_error_handlers,
    log_failure,
)
from services.metrics import ServiceMetrics

# a child of Serve's logger: lines land in the replica's log file with its request context
logger = logging.getLogger("ray.serve.securemed")
T = TypeVar("T")
#: the id every envelope, error and log line of a request carries (Serve sets its own
#: X-Request-ID for its access log; this one is SecureMed's)
REQUEST_ID_HEADER = "X-SecureMed-Request-ID"
_FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the indication field beside the image
_CLINICIAN_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

api = FastAPI(
    title="SecureMed report service",
    version="1.0.0",
    description="Chest X-ray reports that only the requesting clinician can read.",
    openapi_url="/v1/openapi.json",
    docs_url="/v1/docs",
    redoc_url=None,
)
install_error_handlers(api)

_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {
                            "type": "string",
                            "format": "binary",
                            "description": "the chest X-ray: DICOM, PNG or JPEG",
                        },
                        "indication": {
                            "type": "string",
                            "description": "optional clinical indication (PHI is removed)",
                        },
                    },
                }
            }
        },
    }
}


class ClinicianRegistration(BaseModel):
    clinician_id: str = Field(pattern=_CLINICIAN_ID)
    public_key: str = Field(max_length=200, description="secp256k1 public key, hex")


class KeyRotation(BaseModel):
    public_key: str = Field(max_length=200, description="the new secp256k1 public key, hex")


class BlockedByValidatorError(Exception):
    """The safety validator blocked the request or its report."""

    def __init__(self, code: str, verdict: Verdict) -> None:
        super().__init__(code)
        self.code = code
        self.verdict = verdict


class _Stopwatch:
    """Awaits one stage and records its milliseconds under the stage's name."""

    def __init__(self, timings: dict[str, float]) -> None:
        self._timings = timings

    async def __call__(self, stage: str, work: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await work
        finally:
            self._timings[stage] = (time.perf_counter() - started) * 1000


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError("missing_token", "send the header Authorization: Bearer <your token>")
    return token.strip()


async def _read_upload(request: Request, max_bytes: int) -> tuple[bytes, str | None]:
    """The image and indication of a multipart upload, refusing oversize before reading it."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise ApiError("length_required", "send the upload with a Content-Length header")
    if int(length) > max_bytes + _FORM_OVERHEAD:
        raise ApiError("file_too_large", f"the upload exceeds the {max_bytes}-byte limit")
    try:
        form = await request.form(max_files=1, max_fields=2)
    except Exception:  # starlette raises several types for a bad body
        raise ApiError(
            "invalid_request", "send multipart/form-data with an 'image' file field"
        ) from None
    image, indication = form.get("image"), form.get("indication")
    if not isinstance(image, UploadFile):
        raise ApiError("missing_image", "send the chest X-ray as the 'image' file field")
    if indication is not None and not isinstance(indication, str):
        raise ApiError("invalid_request", "'indication' must be a text field, not a file")
    data = await image.read()
    if not data:
        raise ApiError("empty_upload", "the 'image' file is empty: send the chest X-ray")
    if len(data) > max_bytes:
        raise ApiError("file_too_large", f"the image exceeds the {max_bytes}-byte limit")
    return data, indication


# Helpers come before the deployment: ``serve.ingress`` serializes the routes when the class is
# decorated, so a global defined further down the module would be missing in the replicas.


@serve.deployment(name="ReportAPI", ray_actor_options={"num_cpus": 0.25})
@serve.ingress(api)
class ReportAPI:
    def __init__(
        self,
        settings: ServiceSettings,
        anonymizer: DeploymentHandle,
        generator: DeploymentHandle,
        validator: DeploymentHandle,
        sealer: DeploymentHandle,
    ) -> None:
        self._state = ServiceState(settings.state_dir)
        self._registry = self._state.registry()
        self._public_pem = self._state.signing_public_pem().decode()
        self._max_image_bytes = settings.safety.max_image_bytes
        self._anonymizer = anonymizer
        self._generator = generator
        self._validator = validator
        self._sealer = sealer
        self._model_version: str | None = None
        self._metrics = ServiceMetrics()

    # -- reports -----------------------------------------------------------------------------

    @api.post("/v1/reports", openapi_extra=_UPLOAD_SCHEMA, summary="Write and seal a report")
    async def create_report(
        self, request: Request, authorization: str | None = Header(default=None)
    ) -> JSONResponse:
        request_id = uuid.uuid4().hex
        timings: dict[str, float] = {}
        started = time.perf_counter()
        try:
            envelope = await self._report(request, authorization, request_id, timings)
        except BlockedByValidatorError as blocked:
            outcome, response = blocked.code, self._blocked(blocked, request_id)
        except Exception as error:  # every failure becomes a JSON error
            outcome, response = code_of(error), as_response(error, request_id=request_id)
            if response.status_code >= 500:
                log_failure(logger, request_id, error)
        else:
            outcome, response = "sealed", JSONResponse(envelope)
        timings["total"] = (time.perf_counter() - started) * 1000
        for stage, milliseconds in timings.items():
            self._metrics.stage(stage, milliseconds)
        self._metrics.request(outcome, OUTCOMES)
        response.headers[REQUEST_ID_HEADER] = request_id
        response.headers["Server-Timing"] = ", ".join(
            f"{stage};dur={milliseconds:.1f}" for stage, milliseconds in timings.items()
        )
        logger.info(
            "request %s %s in %.0f ms (%s)",
            request_id,
            outcome,
            timings["total"],
            " ".join(f"{s}={ms:.0f}" for s, ms in timings.items() if s != "total"),
        )
        return response

    async def _report(
        self,
        request: Request,
        authorization: str | None,
        request_id: str,
        timings: dict[str, float],
    ) -> dict[str, Any]:
        stage = _Stopwatch(timings)
        clinician_id = await stage("authenticate", self._authenticate(authorization))
        image, indication = await _read_upload(request, self._max_image_bytes)
        checked: Verdict = await stage(
            "input_check", self._validator.check_input.remote(indication, len(image))
        )
        if checked.decision == "block":
            raise BlockedByValidatorError("input_blocked", checked)
        anonymized = await stage("anonymize", self._anonymizer.anonymize.remote(image, indication))
        draft = await stage("generate", self._generator.write.remote(anonymized.pixels))
        report = served_report(anonymized.indication, draft.text)
        judged: Verdict = await stage(
            "validate",
            self._validator.check_output.remote(
                report, draft.mean_token_logprob, draft.min_token_prob
            ),
        )
        verdict = Verdict.combine(checked, judged)
        sealed_text = verdict.apply(report)
        if sealed_text is None:
            raise BlockedByValidatorError("report_blocked", verdict)
        envelope: dict[str, Any] = await stage(
            "seal",
            self._sealer.seal.remote(
                sealed_text,
                clinician_id=clinician_id,
                request_id=request_id,
                model_version=await self._current_model_version(),
                verdict=verdict.to_dict(),
            ),
        )
        return envelope

    async def _authenticate(self, authorization: str | None) -> str:
        token = _bearer(authorization)
        clinician_id = await asyncio.to_thread(self._registry.authenticate, token)
        # refuse a revoked clinician before any work is done for them (checked again at sealing)
        await asyncio.to_thread(self._registry.active_key, clinician_id)
        return clinician_id

    async def _current_model_version(self) -> str:
        if self._model_version is None:
            self._model_version = str(await self._generator.model_version.remote())
        return self._model_version

    def _blocked(self, blocked: BlockedByValidatorError, request_id: str) -> JSONResponse:
        what = "request" if blocked.code == "input_blocked" else "generated report"
        codes = ", ".join(blocked.verdict.codes)
        return as_response(
            ApiError(
                blocked.code,
                f"the safety validator blocked the {what} ({codes}); nothing was sealed: see "
                "the verdict's reasons",
                verdict=blocked.verdict.to_dict(),
            ),
            request_id=request_id,
        )

    # -- keys and clinicians -----------------------------------------------------------------

    @api.get("/v1/service-key", summary="The Ed25519 key that signs every envelope")
    async def service_key(self) -> dict[str, str]:
        key_id = await self._sealer.service_key_id.remote()
        return {"service_key_id": key_id, "public_key_pem": self._public_pem}

    @api.post("/v1/admin/clinicians", status_code=201, summary="Register a clinician's key")
    async def register(
        self, body: ClinicianRegistration, authorization: str | None = Header(default=None)
    ) -> JSONResponse:
        return await self._admin(
            authorization,
            lambda: self._registry.register(body.clinician_id, body.public_key),
            lambda result: {
                "clinician_id": body.clinician_id,
                "token": result[0],
                "key_id": result[1],
            },
            status=201,
        )

    @api.post("/v1/admin/clinicians/{clinician_id}/rotate", summary="Replace a clinician's key")
    async def rotate(
        self, clinician_id: str, body: KeyRotation, authorization: str | None = Header(default=None)
    ) -> JSONResponse:
        return await self._admin(
            authorization,
            lambda: self._registry.rotate(clinician_id, body.public_key),
            lambda key_id: {"clinician_id": clinician_id, "key_id": key_id},
        )

    @api.post("/v1/admin/clinicians/{clinician_id}/revoke", summary="Revoke a clinician's key")
    async def revoke(
        self, clinician_id: str, authorization: str | None = Header(default=None)
    ) -> JSONResponse:
        return await self._admin(
            authorization,
            lambda: self._registry.revoke(clinician_id),
            lambda _: {"clinician_id": clinician_id, "revoked": True},
        )

    async def _admin(
        self,
        authorization: str | None,
        change: Callable[[], T],
        body: Callable[[T], dict[str, Any]],
        *,
        status: int = 200,
    ) -> JSONResponse:
        try:
            if not self._state.is_admin(_bearer(authorization)):
                raise ApiError("invalid_admin_token", "the administrator token is not valid")
            result = await asyncio.to_thread(change)
        except Exception as error:  # mapped to a JSON error
            response = as_response(error)
            if response.status_code >= 500:
                log_failure(logger, None, error)
            return response
        return JSONResponse(body(result), status_code=status)

    # -- health ------------------------------------------------------------------------------

    @api.get("/healthz", summary="Every stage reachable")
    async def healthz(self) -> JSONResponse:
        try:
            version, key_id, _, _ = await asyncio.wait_for(
                asyncio.gather(
                    self._generator.model_version.remote(),
                    self._sealer.service_key_id.remote(),
                    self._anonymizer.find_phi.remote(""),
                    self._validator.check_input.remote(None, 1),
                ),
                timeout=10,
            )
        except Exception:  # any stage unreachable is "unavailable"
            return as_response(ApiError("unavailable", "a stage of the service is not ready"))
        return JSONResponse({"status": "ok", "model_version": version, "service_key_id": key_id})
