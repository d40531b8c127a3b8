"""Malicious-hospital behaviours for robustness experiments.

A configuration names one attack per malicious hospital; :func:`build_attack` turns that name
into an object whose ``target`` says where the hospital applies it: to its training labels
(``AttackTarget.DATA``) before local training, or to its honest update (``AttackTarget.UPDATE``)
before submission. The attacks are pure transformations; choosing which hospitals are malicious
and collecting the colluders' reference updates belong to the orchestration that hosts them.
"""

from securemed.attacks.base import AttackTarget, DataAttack, UpdateAttack
from securemed.attacks.factory import ATTACK_NAMES, build_attack
from securemed.attacks.labels import LabelFlipping
from securemed.attacks.update import (
    GaussianNoise,
    LittleIsEnough,
    Scaling,
    SignFlip,
    alie_z_max,
    flatten_update,
    unflatten_update,
)

__all__ = [
    "ATTACK_NAMES",
    "AttackTarget",
    "DataAttack",
    "GaussianNoise",
    "LabelFlipping",
    "LittleIsEnough",
    "Scaling",
    "SignFlip",
    "UpdateAttack",
    "alie_z_max",
    "build_attack",
    "flatten_update",
    "unflatten_update",
]
