"""The report job's config: defaults, the shipped YAML, and every inconsistency refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from securemed.errors import ConfigError
from securemed.report_training.config import (
    ReportJobConfig,
    load_report_config,
    parse_report_config,
)

REPO = Path(__file__).resolve().parents[3]


def test_the_shipped_config_is_the_defaults() -> None:
    assert load_report_config(REPO / "configs" / "report.yaml") == ReportJobConfig()


def test_default_variants_are_standard_adversarial_and_dp_fine_tuning() -> None:
    variants = {v.name: v for v in ReportJobConfig().variants}
    assert variants["standard"].modes == ("standard",)
    assert variants["adversarial"].modes == ("adversarial",)
    assert variants["dp"].modes == ("dp",) and variants["dp"].init_from == "standard"
    base = ReportJobConfig().adversarial
    assert variants["adversarial"].adversarial_config(base) == base  # the 5 % default
    fine_tuning = variants["adversarial-ft"].adversarial_config(base)
    assert fine_tuning is not None and fine_tuning.share == 0.25
    assert fine_tuning.attacks == base.attacks
    assert variants["standard"].adversarial_config(base) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"variants": []}, "at least one"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "used twice"),
        ({"variants": [{"name": "a", "init_from": "b"}, {"name": "b"}]}, "earlier variant"),
        ({"variants": [{"name": "a", "dp": True}], "privacy": {"enabled": False}}, "asks for DP"),
        ({"variants": [{"name": "Bad Name"}]}, "variants.0.name"),
        ({"data": {"source": "openi"}}, "data.path"),
        ({"data": {"image_size": 48}}, "multiple of 32"),
        ({"adversarial": {"attacks": []}}, "at least one of fgsm"),
        ({"adversarial": {"attacks": ["cw"]}}, "adversarial.attacks.0"),
        ({"privacy": {"target_epsilon": None}}, "exactly one"),
        ({"optimisation": {"batch_size": 1}}, "optimisation.batch_size"),
        ({"colour": "blue"}, "colour"),
        (
            {"data": {"private_samples": 0}, "variants": [{"name": "a", "dp": True}]},
            "private split, which is empty",
        ),
        (
            {"variants": [{"name": "a", "dp": True}, {"name": "b", "dp": True, "init_from": "a"}]},
            "epsilons compose",
        ),
        ({"optimisation": {"workers": 0}}, "optimisation.workers"),
        ({"variants": [{"name": "a", "adversarial_share": 0.5}]}, "needs adversarial: true"),
    ],
)
def test_inconsistent_configs_are_refused_with_the_field_named(raw, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_report_config(raw)


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_report_config(tmp_path / "nope.yaml")
