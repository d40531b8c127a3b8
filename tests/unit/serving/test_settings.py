"""Service settings: defaults that run, and every bad field named at start."""

from __future__ import annotations

import pytest

from securemed.errors import ConfigError
from securemed.serving.settings import parse_service_settings


def test_defaults_validate() -> None:
    settings = parse_service_settings({})
    assert settings.phi_operator == "tag" and settings.checkpoint is None


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"phi_operator": "shred"}, "phi_operator"),
        ({"checkpoint_digest": "abc"}, "checkpoint_digest"),
        ({"num_beams": 0}, "num_beams"),
        ({"safety": {"max_image_bytes": 0}}, "safety.max_image_bytes"),
        ({"safety": {"actions": {"no_such_code": "flag"}}}, "safety.actions"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_settings_name_the_field(raw: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_service_settings(raw)
