"""Build an attack from the name and parameters a configuration gives for a malicious hospital.

A plain table of names, no registration decorators: the set of attacks is read here at a glance.
Parameters are checked against the attack's signature first, so a typo in a config fails with
the list of accepted parameters instead of a bare ``TypeError``.
"""

from __future__ import annotations

import inspect
from typing import Any

from securemed.attacks.base import DataAttack, UpdateAttack
from securemed.attacks.labels import LabelFlipping
from securemed.attacks.update import GaussianNoise, LittleIsEnough, Scaling, SignFlip
from securemed.errors import ConfigError

_ATTACKS: dict[str, type[UpdateAttack] | type[DataAttack]] = {
    "sign_flip": SignFlip,
    "scaling": Scaling,
    "gaussian_noise": GaussianNoise,
    "alie": LittleIsEnough,
    "label_flip": LabelFlipping,
}

#: The names :func:`build_attack` accepts.
ATTACK_NAMES: tuple[str, ...] = tuple(sorted(_ATTACKS))


def build_attack(name: str, **params: Any) -> UpdateAttack | DataAttack:
    """Return the attack called ``name``, built with ``params``.

    Example:
        >>> build_attack("scaling", factor=10.0).target
        <AttackTarget.UPDATE: 'update'>

    Raises:
        ConfigError: an unknown name (the message lists the valid ones), an unknown or missing
            parameter, or a parameter value the attack refuses.
    """
    try:
        cls = _ATTACKS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown attack {name!r}; valid attacks: {', '.join(ATTACK_NAMES)}"
        ) from None
    signature = inspect.signature(cls.__init__)
    accepted = [p for p in signature.parameters.values() if p.name != "self"]
    accepted_names = [p.name for p in accepted]
    unknown = sorted(set(params) - set(accepted_names))
    if unknown:
        raise ConfigError(
            f"attack {name!r} does not take {', '.join(unknown)}; "
            f"it takes: {', '.join(accepted_names)}"
        )
    missing = [p.name for p in accepted if p.default is p.empty and p.name not in params]
    if missing:
        raise ConfigError(f"attack {name!r} needs parameters: {', '.join(missing)}")
    return cls(**params)
