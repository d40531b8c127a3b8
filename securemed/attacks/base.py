"""What every attack declares: where it acts, and the one method that acts there.

Two small abstract classes rather than one with optional methods, so the wiring can branch on
``attack.target`` once and then call a method whose signature it knows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from enum import StrEnum
from typing import ClassVar

import numpy as np
import torch


class AttackTarget(StrEnum):
    """Where a malicious hospital applies its attack."""

    DATA = "data"
    """The hospital's training labels, before local training."""
    UPDATE = "update"
    """The hospital's update (trained minus global weights), before submission."""


class UpdateAttack(ABC):
    """Turns a hospital's honest update into the one it submits."""

    target: ClassVar[AttackTarget] = AttackTarget.UPDATE
    #: Whether :meth:`apply` needs ``reference`` (benign updates the colluders can estimate).
    needs_reference: ClassVar[bool] = False

    @abstractmethod
    def apply(
        self, update: Mapping[str, torch.Tensor], *, reference: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Return the malicious update; ``update`` itself is left untouched.

        Args:
            update: the honest update, tensor name -> tensor.
            reference: an ``(m, d)`` stack of benign updates flattened with
                :func:`securemed.attacks.flatten_update`; only attacks with
                ``needs_reference`` read it.
        """


class DataAttack(ABC):
    """Corrupts a hospital's training labels before it trains."""

    target: ClassVar[AttackTarget] = AttackTarget.DATA
    needs_reference: ClassVar[bool] = False

    @abstractmethod
    def apply(self, labels: np.ndarray) -> np.ndarray:
        """Return corrupted labels; ``labels`` itself is left untouched."""
