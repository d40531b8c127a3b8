"""The Anonymizer deployment: hosts :class:`~securemed.serving.anonymization.RequestAnonymizer`."""

from __future__ import annotations

import asyncio

from ray import serve

from securemed.phi import PHI_ENTITY_TYPES, AnonymizerConfig, PhiAnonymizer
from securemed.phi.dicom import DicomDeidentifier
from securemed.serving.anonymization import AnonymizedRequest, RequestAnonymizer
from securemed.serving.intake import FilmIntake
from securemed.serving.settings import ServiceSettings
from securemed.serving.state import ServiceState
from services.metrics import ServiceMetrics
from services.refusals import returning_refusals

_HEALTH_PROBE = "Seen by Dr. Alan Grant on 03/04/2024, MRN 48213377."


@serve.deployment(name="Anonymizer", ray_actor_options={"num_cpus": 0.25})
class AnonymizerDeployment:
    def __init__(self, settings: ServiceSettings) -> None:
        key = ServiceState(settings.state_dir).deidentification_key()
        self._text = PhiAnonymizer(
            AnonymizerConfig(operator=settings.phi_operator, pseudonym_key=key)
        )
        intake = FilmIntake(
            DicomDeidentifier(key, max_pixels=settings.max_image_pixels),
            max_image_pixels=settings.max_image_pixels,
        )
        self._anonymizer = RequestAnonymizer(self._text, intake)
        self._metrics = ServiceMetrics()

    @returning_refusals
    async def anonymize(self, image: bytes, indication: str | None) -> AnonymizedRequest:
        # CPU-bound: off the event loop, so health checks and new requests are not held up
        result = await asyncio.to_thread(self._anonymizer.anonymize, image, indication)
        self._metrics.phi(result.phi_removed, source="indication", vocabulary=PHI_ENTITY_TYPES)
        self._metrics.image_actions(result.image_actions, kind=result.kind)
        return result

    async def ready(self) -> bool:
        """Answers while the replica is up (``/healthz``); the deep check is check_health."""
        return True

    def check_health(self) -> None:
        """Unhealthy if the recognizers stopped finding a name, a date and an MRN."""
        found = {entity.entity_type for entity in self._text.find(_HEALTH_PROBE)}
        if not {"PERSON", "DATE", "MRN"} <= found:
            raise RuntimeError("the PHI recognizers no longer find the health probe's PHI")
