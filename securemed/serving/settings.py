"""What the report service is told at start: the config of ``deploy/serve.yaml``'s ``args``.

Validated when the application is built, so a typo fails ``serve run`` at once with the field
named, not at the first request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from securemed.config import StrictConfig, describe_errors
from securemed.errors import ConfigError
from securemed.safety import SafetyPolicy


class ServiceSettings(StrictConfig):
    """Where the model and the secrets are, and the limits every request is held to."""

    state_dir: Path = Field(
        default=Path("var/serve"), description="keys and clinician registry (serve-init)"
    )
    checkpoint: Path | None = Field(
        default=None, description="report model checkpoint; default: the newest under runs_dir"
    )
    checkpoint_digest: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="pin: refuse to serve any checkpoint whose digest differs",
    )
    runs_dir: Path = Path("runs")
    variant_preference: tuple[str, ...] = Field(
        default=("dp", "adversarial-ft", "standard", "adversarial"),
        min_length=1,
        description="which training variant to serve when several are found",
    )
    max_image_pixels: int = Field(
        default=50_000_000, ge=64 * 64, description="decompression-bomb guard for PNG/JPEG"
    )
    phi_operator: Literal["redact", "tag", "pseudonym"] = "tag"
    num_beams: int = Field(default=1, ge=1, le=8)
    envelope_validity_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    safety: SafetyPolicy = Field(
        default_factory=SafetyPolicy,
        description="the validator's thresholds, upload limit, and which codes flag or block",
    )


def parse_service_settings(raw: dict[str, Any] | None, *, origin: str = "args") -> ServiceSettings:
    """Validate the application's args, raising :class:`ConfigError` naming each bad field."""
    try:
        return ServiceSettings.model_validate(raw or {})
    except ValidationError as error:
        raise ConfigError(
            f"the report service's {origin} are invalid:\n{describe_errors(error)}"
        ) from None
