import pytest

from securemed.config import JobConfig, load_config, parse_config
from securemed.errors import ConfigError


def test_defaults_match_the_documented_federated_run():
    config = JobConfig()
    assert config.federation.hospitals == 4 and config.federation.rounds >= 5
    assert config.partition.scheme == "dirichlet" and config.partition.alpha == 0.5
    assert config.privacy.enabled and config.privacy.target_epsilon <= 8
    assert config.privacy.delta == 1e-5


def test_shipped_config_file_is_valid():
    assert load_config("configs/federated.yaml").federation.hospitals == 4


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"federation": {"hospitals": 0}}, "federation.hospitals"),
        ({"federation": {"participation": 1.5}}, "federation.participation"),
        ({"privacy": {"delta": 2}}, "privacy.delta"),
        ({"privacy": {"accountant": "gdp"}}, "privacy.accountant"),
        ({"training": {"model": "vgg"}}, "training.model"),
        ({"data": {"image_size": 100}}, "data.image_size"),
        ({"federation": {"rounds": 3, "typo": 1}}, "federation.typo"),
    ],
)
def test_bad_value_names_the_field(raw, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_config(raw)


def test_noise_source_must_be_exactly_one():
    with pytest.raises(ConfigError, match="exactly one"):
        parse_config({"privacy": {"target_epsilon": 4, "noise_multiplier": 1.0}})
    with pytest.raises(ConfigError, match="exactly one"):
        parse_config({"privacy": {"target_epsilon": None}})
    assert parse_config({"privacy": {"enabled": False, "target_epsilon": None}})


def test_medmnist_source_needs_a_path():
    with pytest.raises(ConfigError, match=r"data\.path is required"):
        parse_config({"data": {"source": "medmnist"}})


def test_missing_file_and_bad_yaml_are_reported_clearly(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("federation: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listed)


def test_secure_aggregation_with_one_hospital_a_round_is_refused() -> None:
    with pytest.raises(ConfigError, match="secure sum of one update is that update"):
        parse_config({"federation": {"hospitals": 3, "participation": 0.34}})


def test_secure_sums_of_fewer_than_min_participants_are_refused_at_load() -> None:
    """Hospitals refuse a secure sum over fewer than min_participants (3 unless set): a config
    whose rounds or buckets would be smaller fails at load instead of declining every round."""
    with pytest.raises(ConfigError, match="each hospital learns the other's"):
        parse_config({"federation": {"hospitals": 2}})
    assert (
        parse_config(
            {"federation": {"hospitals": 2}, "secure_aggregation": {"min_participants": 2}}
        ).secure_aggregation.min_participants
        == 2
    )
    with pytest.raises(ConfigError, match="hospitals would refuse every bucket"):
        parse_config({"secure_aggregation": {"bucket_size": 2}})


def test_client_level_dp_needs_secure_aggregation_and_a_norm_bound() -> None:
    with pytest.raises(ConfigError, match="needs norm_bound"):
        parse_config({"secure_aggregation": {"client_dp_noise_multiplier": 1.0}})
    with pytest.raises(ConfigError, match="enable secure_aggregation"):
        parse_config(
            {
                "secure_aggregation": {
                    "enabled": False,
                    "norm_bound": 1.0,
                    "client_dp_noise_multiplier": 1.0,
                }
            }
        )


def test_an_attack_on_a_hospital_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ConfigError, match="only 4"):
        parse_config({"attacks": [{"hospital": 9, "attack": "sign_flip"}]})
