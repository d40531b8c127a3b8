"""The ingress: SecureMed's versioned HTTP API, composing the four stages through handles.

``POST /v1/reports`` authenticates the clinician, checks the input, then anonymize → generate →
validate → seal; a blocked request or report is answered with a 422 and never sealed. Admin
routes register, rotate and revoke clinicians' keys. ``GET /healthz`` reaches every stage.
Logs carry the request id, timings and codes, never request content.
"""

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartParser

from securemed.safety import Verdict
from securemed.serving.anonymization import AnonymizedRequest
from securemed.serving.model_runner import DraftReport
from securemed.serving.pipeline import ReportBlockedError, Stopwatch, produce_report
from securemed.serving.settings import ServiceSettings
from securemed.serving.state import ServiceState
from services.http_errors import (
    OUTCOMES,
    ApiError,
    as_response,
    code_of,
    install_error_handlers,
    log_failure,
    logger,
)
from services.metrics import ServiceMetrics
from services.refusals import stage_result

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
    try:
        image, indication = form.get("image"), form.get("indication")
        if not isinstance(image, UploadFile):
            raise ApiError("missing_image", "send the chest X-ray as the 'image' file field")
        if indication is not None and not isinstance(indication, str):
            raise ApiError("invalid_request", "'indication' must be a text field, not a file")
        data = await image.read()
    finally:
        await form.close()  # frees the upload's buffer now, not at garbage collection
    if not data:
        raise ApiError("empty_upload", "the 'image' file is empty: send the chest X-ray")
    if len(data) > max_bytes:
        raise ApiError("file_too_large", f"the image exceeds the {max_bytes}-byte limit")
    return data, indication


@dataclass(frozen=True)
class _Handles:
    """The four stage deployments the ingress calls."""

    anonymizer: DeploymentHandle
    generator: DeploymentHandle
    validator: DeploymentHandle
    sealer: DeploymentHandle


class _HandleStages:
    """The pipeline's stages as calls to the deployments, for one clinician's request."""

    def __init__(self, handles: _Handles, clinician_id: str, request_id: str) -> None:
        self._handles = handles
        self._clinician_id = clinician_id
        self._request_id = request_id

    async def check_input(self, indication: str | None, image_bytes: int) -> Verdict:
        return await stage_result(
            self._handles.validator.check_input.remote(indication, image_bytes)
        )

    async def anonymize(self, image: bytes, indication: str | None) -> AnonymizedRequest:
        return await stage_result(self._handles.anonymizer.anonymize.remote(image, indication))

    async def write(self, pixels: np.ndarray) -> DraftReport:
        return await stage_result(self._handles.generator.write.remote(pixels))

    async def check_output(self, report: str, draft: DraftReport) -> Verdict:
        return await stage_result(self._handles.validator.check_output.remote(report, draft))

    async def seal(self, report: str, verdict: Verdict, model_version: str) -> dict[str, Any]:
        return await stage_result(
            self._handles.sealer.seal.remote(
                report,
                clinician_id=self._clinician_id,
                request_id=self._request_id,
                model_version=model_version,
                verdict=verdict,
            )
        )


def _reasons(verdict: Verdict) -> list[tuple[str, str]]:
    return [(reason.code, reason.decision) for reason in verdict.reasons]


def _blocked_response(blocked: ReportBlockedError, request_id: str) -> JSONResponse:
    what = "request" if blocked.code == "input_blocked" else "generated report"
    return as_response(
        ApiError(
            blocked.code,
            f"the safety validator blocked the {what} ({', '.join(blocked.verdict.codes)}); "
            "nothing was sealed: see the verdict's reasons",
            verdict=blocked.verdict.to_dict(),
        ),
        request_id=request_id,
    )


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
        # uploads stay in memory up to the limit: a DICOM names its patient and Starlette
        # would otherwise spool anything over 1 MiB to a temporary file on this node's disk
        MultiPartParser.spool_max_size = self._max_image_bytes + _FORM_OVERHEAD
        self._handles = _Handles(anonymizer, generator, validator, sealer)
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
            authenticate = self._authenticate(authorization)
            clinician_id = await Stopwatch(timings)("authenticate", authenticate)
            image, indication = await _read_upload(request, self._max_image_bytes)
            stages = _HandleStages(self._handles, clinician_id, request_id)
            produced = await produce_report(stages, image, indication, timings)
        except ReportBlockedError as blocked:
            outcome, response = blocked.code, _blocked_response(blocked, request_id)
            self._metrics.verdict(blocked.verdict.decision, _reasons(blocked.verdict))
        except Exception as error:  # every failure becomes a JSON error
            outcome, response = code_of(error), as_response(error, request_id=request_id)
            if response.status_code >= 500:
                log_failure(request_id, error)
        else:
            outcome = "sealed"
            response = JSONResponse(produced.envelope, headers={"Cache-Control": "no-store"})
            self._metrics.verdict(produced.verdict.decision, _reasons(produced.verdict))
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

    async def _authenticate(self, authorization: str | None) -> str:
        token = _bearer(authorization)
        clinician_id = await asyncio.to_thread(self._registry.authenticate, token)
        # refuse a revoked clinician before any work is done for them (checked again at sealing)
        await asyncio.to_thread(self._registry.active_key, clinician_id)
        return clinician_id

    # -- keys and clinicians -----------------------------------------------------------------

    @api.get("/v1/service-key", summary="The Ed25519 key that signs every envelope")
    async def service_key(self) -> dict[str, str]:
        key_id = await self._handles.sealer.service_key_id.remote()
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
            lambda result: {"clinician_id": clinician_id, "token": result[0], "key_id": result[1]},
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
                log_failure(None, error)
            return response
        return JSONResponse(body(result), status_code=status)

    # -- health ------------------------------------------------------------------------------

    @api.get("/healthz", summary="Every stage reachable")
    async def healthz(self) -> JSONResponse:
        try:
            version, key_id, *_ = await asyncio.wait_for(
                asyncio.gather(
                    self._handles.generator.model_version.remote(),
                    self._handles.sealer.service_key_id.remote(),
                    self._handles.anonymizer.ready.remote(),
                    self._handles.validator.ready.remote(),
                ),
                timeout=10,
            )
        except Exception:  # any stage unreachable is "unavailable"
            return as_response(ApiError("unavailable", "a stage of the service is not ready"))
        return JSONResponse({"status": "ok", "model_version": version, "service_key_id": key_id})

    def check_health(self) -> None:
        """Unhealthy if the clinician registry cannot be read."""
        self._registry.clinician_count()
