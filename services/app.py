"""The serving graph in one place: ingress → Anonymizer → ReportGenerator → SafetyValidator →
ReportSealer, bound with the service's settings.

``serve run deploy/serve.yaml`` calls :func:`build_app` with the config's ``args``; replicas,
batch sizes and ``max_ongoing_requests`` of each deployment are set in that file.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from securemed.serving.model_runner import pin_checkpoint
from securemed.serving.settings import parse_service_settings
from services.anonymizer import AnonymizerDeployment
from services.api import ReportAPI
from services.generator import GeneratorDeployment
from services.sealer import SealerDeployment
from services.validator import ValidatorDeployment


def build_app(args: dict[str, Any]) -> Application:
    """The application for ``args`` (see :class:`~securemed.serving.settings.ServiceSettings`);
    the checkpoint is resolved and its digest pinned here, once, for every replica."""
    settings = pin_checkpoint(parse_service_settings(args))
    return ReportAPI.bind(
        settings,
        AnonymizerDeployment.bind(settings),
        GeneratorDeployment.bind(settings),
        ValidatorDeployment.bind(settings),
        SealerDeployment.bind(settings),
    )
