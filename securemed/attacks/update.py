"""Attacks on a hospital's update: sign flip, scaling, Gaussian noise and "A little is enough".

Only floating-point tensors are attacked. Integer tensors in an update are counters such as
``num_batches_tracked``; changing them moves no decision boundary and would only make the update
fail dtype checks, which would hide the attack behind a rejection instead of testing the
aggregation rule.

Noise comes from a seeded ``torch.Generator``, never the global one: an experiment must replay
exactly. This is simulation randomness, not cryptographic randomness.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import ClassVar, Literal

import torch

from securemed.attacks.base import UpdateAttack
from securemed.errors import ConfigError, InvalidUpdate


def _positive_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {value}")
    return float(value)


def flatten_update(update: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate the update's floating-point tensors, in the update's order, into one vector.

    This is the ``d`` axis of the ``reference`` that :class:`LittleIsEnough` reads: the wiring
    stacks ``flatten_update`` of each colluder's honest update into an ``(m, d)`` tensor.
    """
    parts = [t.detach().reshape(-1) for t in update.values() if t.is_floating_point()]
    if not parts:
        raise InvalidUpdate("the update has no floating-point tensors to attack")
    return torch.cat([p.to(torch.float64) for p in parts])


def unflatten_update(
    vector: torch.Tensor, like: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Inverse of :func:`flatten_update`: shapes and dtypes from ``like``, integers copied."""
    expected = sum(t.numel() for t in like.values() if t.is_floating_point())
    if vector.dim() != 1 or vector.numel() != expected:
        raise InvalidUpdate(
            f"a flattened update must be a vector of {expected} values, got shape "
            f"{list(vector.shape)}"
        )
    result: dict[str, torch.Tensor] = {}
    offset = 0
    for name, tensor in like.items():
        if not tensor.is_floating_point():
            result[name] = tensor.clone()
            continue
        chunk = vector[offset : offset + tensor.numel()]
        offset += tensor.numel()
        result[name] = chunk.reshape(tensor.shape).to(dtype=tensor.dtype, device=tensor.device)
    return result


class SignFlip(UpdateAttack):
    """Submit ``-scale * update``: push the global model away from where training leads.

    Args:
        scale: how far to push; 1 reverses the update exactly.
    """

    def __init__(self, *, scale: float = 1.0) -> None:
        self.scale = _positive_finite("sign_flip scale", scale)

    def apply(
        self, update: Mapping[str, torch.Tensor], *, reference: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Return ``-scale * update`` for floating tensors, integer tensors copied."""
        return {
            name: tensor * -self.scale if tensor.is_floating_point() else tensor.clone()
            for name, tensor in update.items()
        }


class Scaling(UpdateAttack):
    """Submit ``factor * update`` (model replacement, Bagdasaryan et al. 2020): one boosted
    update outweighs the honest ones in a plain mean.

    Args:
        factor: the boost, typically about the number of hospitals.
    """

    def __init__(self, *, factor: float) -> None:
        self.factor = _positive_finite("scaling factor", factor)

    def apply(
        self, update: Mapping[str, torch.Tensor], *, reference: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Return ``factor * update`` for floating tensors, integer tensors copied."""
        return {
            name: tensor * self.factor if tensor.is_floating_point() else tensor.clone()
            for name, tensor in update.items()
        }


class GaussianNoise(UpdateAttack):
    """Submit noise drawn from ``N(0, sigma^2)``, instead of the update or added to it.

    The generator lives as long as the object, so the k-th call draws the same noise in every
    run with the same seed.

    Args:
        sigma: standard deviation of the noise.
        seed: seeds the attack's own ``torch.Generator``.
        mode: ``"replace"`` submits pure noise; ``"add"`` submits update plus noise.
    """

    MODES: ClassVar[tuple[str, ...]] = ("replace", "add")

    def __init__(
        self, *, sigma: float, seed: int, mode: Literal["replace", "add"] = "replace"
    ) -> None:
        self.sigma = _positive_finite("gaussian_noise sigma", sigma)
        if mode not in self.MODES:
            raise ConfigError(
                f"gaussian_noise mode must be one of {', '.join(self.MODES)}; got {mode!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"gaussian_noise seed must be an integer, got {seed!r}")
        self.mode = mode
        self.seed = seed
        self._generator = torch.Generator().manual_seed(seed)

    def apply(
        self, update: Mapping[str, torch.Tensor], *, reference: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Return noise (or update plus noise) for floating tensors, integer tensors copied."""
        result: dict[str, torch.Tensor] = {}
        for name, tensor in update.items():
            if not tensor.is_floating_point():
                result[name] = tensor.clone()
                continue
            # Drawn on the CPU in at least float32 so the stream does not depend on the device
            # or on whether the model runs in half precision.
            draw_dtype = torch.float64 if tensor.dtype == torch.float64 else torch.float32
            noise = torch.randn(tensor.shape, generator=self._generator, dtype=draw_dtype)
            noise = (noise * self.sigma).to(dtype=tensor.dtype, device=tensor.device)
            result[name] = noise if self.mode == "replace" else tensor + noise
        return result


def alie_z_max(num_hospitals: int, num_malicious: int) -> float:
    """The largest deviation, in standard deviations, that stays inside the benign spread.

    Baruch et al. 2019, "A Little Is Enough": the attackers need ``s = floor(n/2 + 1) - f``
    benign hospitals on their side to form a majority, and ``z_max = Phi^{-1}((n - s) / n)`` is
    the deviation that still leaves that many benign updates farther from the mean than theirs.

    Raises:
        ConfigError: counts that are not integers, ``n < 2``, ``f < 1``, or ``f`` so large that
            ``s <= 0`` (the attackers already hold a majority and need no stealth).
    """
    for name, value in (("num_hospitals", num_hospitals), ("num_malicious", num_malicious)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"alie {name} must be an integer, got {value!r}")
    n, f = num_hospitals, num_malicious
    if n < 2:
        raise ConfigError(f"alie needs at least 2 hospitals in the federation, got n={n}")
    if not 1 <= f < n:
        raise ConfigError(f"alie needs 1 <= num_malicious < num_hospitals, got f={f}, n={n}")
    s = math.floor(n / 2 + 1) - f
    if s <= 0:
        raise ConfigError(
            f"with n={n} and f={f} the attackers already form a majority (s={s} <= 0); "
            f"'a little is enough' needs f <= {math.floor(n / 2 + 1) - 1}"
        )
    return NormalDist().inv_cdf((n - s) / n)


class LittleIsEnough(UpdateAttack):
    """The "a little is enough" attack (Baruch et al. 2019): ``mean - z_max * std`` per value.

    The colluding hospitals estimate the benign mean and spread from ``reference`` (typically
    their own honest updates) and all submit the same vector, shifted just little enough to
    pass for benign under median- and distance-based rules. The hospital's own honest update is
    not used except through ``reference``.

    Args:
        num_hospitals: ``n``, hospitals in the round.
        num_malicious: ``f``, colluding malicious hospitals.
        z_max: override the paper's value (for ablations); computed from ``n`` and ``f`` when
            omitted.
    """

    needs_reference: ClassVar[bool] = True

    def __init__(
        self, *, num_hospitals: int, num_malicious: int, z_max: float | None = None
    ) -> None:
        computed = alie_z_max(num_hospitals, num_malicious)
        self.num_hospitals = num_hospitals
        self.num_malicious = num_malicious
        self.z_max = computed if z_max is None else _positive_finite("alie z_max", z_max)

    def malicious_vector(self, reference: torch.Tensor) -> torch.Tensor:
        """Return ``mean - z_max * std`` over the rows of an ``(m, d)`` reference.

        ``std`` is the sample standard deviation (Bessel-corrected), hence ``m >= 2``.
        """
        if reference.dim() != 2:
            raise InvalidUpdate(
                f"alie reference must be an (m, d) tensor of flattened updates, got shape "
                f"{list(reference.shape)}"
            )
        if reference.shape[0] < 2:
            raise ConfigError(
                "alie needs at least 2 reference updates to estimate the spread; let at least "
                "two colluding hospitals share their honest updates"
            )
        if not bool(torch.isfinite(reference).all()):
            raise InvalidUpdate("alie reference contains NaN or infinite values")
        as_float = reference.to(torch.float64)
        return as_float.mean(dim=0) - self.z_max * as_float.std(dim=0)

    def apply(
        self, update: Mapping[str, torch.Tensor], *, reference: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Return the malicious vector shaped like ``update``; integer tensors copied."""
        if reference is None:
            raise ConfigError(
                "alie needs reference updates: pass reference=torch.stack([flatten_update(u) "
                "for u in colluders_honest_updates])"
            )
        expected = sum(t.numel() for t in update.values() if t.is_floating_point())
        if reference.dim() == 2 and reference.shape[1] != expected:
            raise InvalidUpdate(
                f"alie reference has {reference.shape[1]} columns but the update has "
                f"{expected} floating-point values"
            )
        return unflatten_update(self.malicious_vector(reference), update)
