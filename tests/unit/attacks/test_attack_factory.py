import pytest

from securemed.attacks import (
    ATTACK_NAMES,
    AttackTarget,
    GaussianNoise,
    LabelFlipping,
    LittleIsEnough,
    Scaling,
    SignFlip,
    build_attack,
)
from securemed.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "params", "cls", "target"),
    [
        ("sign_flip", {}, SignFlip, AttackTarget.UPDATE),
        ("scaling", {"factor": 5.0}, Scaling, AttackTarget.UPDATE),
        ("gaussian_noise", {"sigma": 1.0, "seed": 0}, GaussianNoise, AttackTarget.UPDATE),
        ("alie", {"num_hospitals": 10, "num_malicious": 2}, LittleIsEnough, AttackTarget.UPDATE),
        ("label_flip", {"mode": "invert", "fraction": 0.5, "seed": 0}, LabelFlipping, "data"),
    ],
)
def test_each_name_builds_its_attack_and_says_where_it_acts(name, params, cls, target):
    attack = build_attack(name, **params)
    assert isinstance(attack, cls)
    assert attack.target == target


def test_every_listed_name_is_covered():
    assert set(ATTACK_NAMES) == {"sign_flip", "scaling", "gaussian_noise", "alie", "label_flip"}


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid attacks: alie, gaussian_noise, label_flip"):
        build_attack("backdoor")


def test_unknown_and_missing_parameters_are_named():
    with pytest.raises(ConfigError, match="does not take sigma; it takes: factor"):
        build_attack("scaling", sigma=1.0)
    with pytest.raises(ConfigError, match="needs parameters: sigma, seed"):
        build_attack("gaussian_noise")


def test_a_bad_value_is_refused_by_the_attack_itself():
    with pytest.raises(ConfigError, match="majority"):
        build_attack("alie", num_hospitals=4, num_malicious=3)
