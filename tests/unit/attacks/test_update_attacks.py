import math

import pytest
import torch

from securemed.attacks import (
    AttackTarget,
    GaussianNoise,
    LittleIsEnough,
    Scaling,
    SignFlip,
    alie_z_max,
    flatten_update,
    unflatten_update,
)
from securemed.errors import ConfigError, InvalidUpdate


def small_update():
    return {
        "w": torch.tensor([[1.0, -2.0], [0.5, 0.0]]),
        "b": torch.tensor([3.0], dtype=torch.float64),
        "num_batches_tracked": torch.tensor(7),
    }


def test_sign_flip_negates_floating_tensors_and_copies_counters():
    update = small_update()
    result = SignFlip().apply(update)
    assert torch.equal(result["w"], torch.tensor([[-1.0, 2.0], [-0.5, 0.0]]))
    assert torch.equal(result["b"], torch.tensor([-3.0], dtype=torch.float64))
    assert result["num_batches_tracked"].dtype == torch.int64
    assert int(result["num_batches_tracked"]) == 7
    assert SignFlip.target is AttackTarget.UPDATE


def test_sign_flip_with_scale_pushes_further_the_other_way():
    result = SignFlip(scale=2.5).apply(small_update())
    assert torch.equal(result["w"], torch.tensor([[-2.5, 5.0], [-1.25, 0.0]]))


def test_scaling_boosts_the_update_by_the_factor():
    result = Scaling(factor=10.0).apply(small_update())
    assert torch.equal(result["w"], torch.tensor([[10.0, -20.0], [5.0, 0.0]]))
    assert torch.equal(result["b"], torch.tensor([30.0], dtype=torch.float64))


def test_attacks_leave_the_honest_update_untouched():
    update = small_update()
    for attack in (SignFlip(), Scaling(factor=3.0), GaussianNoise(sigma=1.0, seed=0)):
        attack.apply(update)
    assert torch.equal(update["w"], small_update()["w"])
    assert torch.equal(update["b"], small_update()["b"])


@pytest.mark.parametrize(
    "build",
    [
        lambda: SignFlip(scale=0.0),
        lambda: SignFlip(scale=-1.0),
        lambda: Scaling(factor=math.inf),
        lambda: Scaling(factor=True),
        lambda: GaussianNoise(sigma=0.0, seed=1),
        lambda: GaussianNoise(sigma=1.0, seed=1, mode="multiply"),
        lambda: GaussianNoise(sigma=1.0, seed=1.5),
    ],
)
def test_bad_attack_parameters_are_a_config_error(build):
    with pytest.raises(ConfigError):
        build()


def test_gaussian_noise_replaces_the_update_with_seeded_noise():
    update = {"w": torch.ones(3, 2)}
    result = GaussianNoise(sigma=0.5, seed=11).apply(update)
    expected = torch.randn((3, 2), generator=torch.Generator().manual_seed(11)) * 0.5
    assert torch.allclose(result["w"], expected)


def test_gaussian_noise_add_mode_adds_the_same_noise_to_the_update():
    update = {"w": torch.full((4,), 2.0)}
    replaced = GaussianNoise(sigma=1.0, seed=3).apply(update)
    added = GaussianNoise(sigma=1.0, seed=3, mode="add").apply(update)
    assert torch.allclose(added["w"], update["w"] + replaced["w"])


def test_gaussian_noise_is_reproducible_per_seed_and_differs_across_seeds():
    update = {"w": torch.zeros(50)}
    first, again = GaussianNoise(sigma=1.0, seed=5), GaussianNoise(sigma=1.0, seed=5)
    assert torch.equal(first.apply(update)["w"], again.apply(update)["w"])
    # The generator advances: consecutive calls draw fresh, but replayable, noise.
    assert torch.equal(first.apply(update)["w"], again.apply(update)["w"])
    other = GaussianNoise(sigma=1.0, seed=6).apply(update)["w"]
    assert not torch.equal(GaussianNoise(sigma=1.0, seed=5).apply(update)["w"], other)


def test_gaussian_noise_has_the_requested_spread():
    noise = GaussianNoise(sigma=3.0, seed=0).apply({"w": torch.zeros(20_000)})["w"]
    assert abs(float(noise.std()) - 3.0) < 0.1
    assert abs(float(noise.mean())) < 0.1


def test_alie_z_max_matches_the_papers_formula_by_hand():
    # n=50, f=12: s = floor(26) - 12 = 14; Phi^-1((50 - 14) / 50) = Phi^-1(0.72) = 0.58284.
    assert alie_z_max(50, 12) == pytest.approx(0.5828415, abs=1e-6)
    # n=10, f=2: s = 6 - 2 = 4; Phi^-1(0.6) = 0.25335.
    assert alie_z_max(10, 2) == pytest.approx(0.2533471, abs=1e-6)


@pytest.mark.parametrize(
    ("n", "f", "message"),
    [
        (1, 1, "at least 2 hospitals"),
        (10, 0, "1 <= num_malicious"),
        (10, 10, "1 <= num_malicious"),
        (10, 6, "majority"),
        (10.0, 2, "integer"),
        (10, True, "integer"),
    ],
)
def test_alie_refuses_counts_outside_the_papers_setting(n, f, message):
    with pytest.raises(ConfigError, match=message):
        alie_z_max(n, f)
    with pytest.raises(ConfigError, match=message):
        LittleIsEnough(num_hospitals=n, num_malicious=f)


def test_alie_submits_mean_minus_z_std_of_the_reference():
    reference = torch.tensor([[1.0, 2.0, 0.0], [3.0, 6.0, 0.0]])
    attack = LittleIsEnough(num_hospitals=10, num_malicious=2)
    result = attack.malicious_vector(reference)
    # mean = [2, 4, 0]; sample std = [sqrt(2), sqrt(8), 0]; z = 0.2533471.
    z = 0.2533471
    expected = torch.tensor([2 - z * 1.4142136, 4 - z * 2.8284271, 0.0], dtype=torch.float64)
    assert torch.allclose(result, expected, atol=1e-6)


def test_alie_output_has_the_updates_shapes_and_dtypes():
    update = {
        "a": torch.zeros(2, dtype=torch.float32),
        "n": torch.tensor(4),
        "b": torch.zeros(1, dtype=torch.float64),
    }
    reference = torch.tensor([[1.0, 1.0, 1.0], [3.0, 3.0, 5.0]])
    attack = LittleIsEnough(num_hospitals=10, num_malicious=2, z_max=1.0)
    result = attack.apply(update, reference=reference)
    assert list(result) == ["a", "n", "b"]
    assert torch.allclose(result["a"], torch.full((2,), 2 - math.sqrt(2)))
    assert result["a"].dtype == torch.float32
    assert int(result["n"]) == 4
    assert torch.allclose(result["b"], torch.tensor([3 - math.sqrt(8)], dtype=torch.float64))
    assert LittleIsEnough.needs_reference


def test_alie_without_enough_reference_is_refused():
    attack = LittleIsEnough(num_hospitals=10, num_malicious=2)
    update = {"w": torch.zeros(2)}
    with pytest.raises(ConfigError, match="reference"):
        attack.apply(update)
    with pytest.raises(ConfigError, match="at least 2"):
        attack.apply(update, reference=torch.zeros(1, 2))
    with pytest.raises(InvalidUpdate, match="columns"):
        attack.apply(update, reference=torch.zeros(3, 5))
    with pytest.raises(InvalidUpdate, match="NaN"):
        attack.apply(update, reference=torch.tensor([[0.0, math.nan], [1.0, 1.0]]))


def test_flatten_and_unflatten_round_trip_the_floating_tensors():
    update = small_update()
    vector = flatten_update(update)
    assert vector.tolist() == [1.0, -2.0, 0.5, 0.0, 3.0]
    restored = unflatten_update(vector, update)
    for name in update:
        assert torch.equal(restored[name], update[name])
        assert restored[name].dtype == update[name].dtype
