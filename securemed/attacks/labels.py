"""Label flipping on multi-label chest X-ray targets: the data attack.

Labels are float32 multi-hot arrays of shape ``(N, C)``, one column per finding. A malicious
hospital corrupts a fixed, seeded subset of its samples before training, so its update is
"honest" training on wrong labels: no norm or sign gives it away, which is what makes it a
useful counterpart to the update attacks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np

from securemed.attacks.base import DataAttack
from securemed.errors import ConfigError, DataError


class LabelFlipping(DataAttack):
    """Corrupt the labels of ``fraction * N`` samples (halves round up), chosen with ``seed``.

    Modes:
        ``"invert"``: ``1 - y`` for the chosen samples: every finding they have is removed and
            every finding they lack is added.
        ``"permute"``: a sample with finding ``c`` is relabelled with finding ``permutation[c]``.
            Without an explicit ``permutation`` each finding moves to the next one
            (``c -> (c + 1) % C``), a fixed permutation that leaves no class in place.

    The same seed and the same number of samples always choose the same samples, so the attack
    is identical in every epoch and every rerun.

    Args:
        mode: ``"invert"`` or ``"permute"``.
        fraction: share of samples to corrupt, in ``[0, 1]``.
        seed: seeds the ``numpy.random.Generator`` that chooses the samples.
        permutation: for ``"permute"``, the target class of each class; must be a permutation
            of ``range(C)`` other than the identity.
    """

    MODES: ClassVar[tuple[str, ...]] = ("invert", "permute")

    def __init__(
        self,
        *,
        mode: Literal["invert", "permute"],
        fraction: float,
        seed: int,
        permutation: Sequence[int] | None = None,
    ) -> None:
        if mode not in self.MODES:
            raise ConfigError(
                f"label_flip mode must be one of {', '.join(self.MODES)}; got {mode!r}"
            )
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, int | float)
            or not 0.0 <= fraction <= 1.0
        ):
            raise ConfigError(f"label_flip fraction must be a number in [0, 1], got {fraction!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"label_flip seed must be an integer, got {seed!r}")
        if permutation is not None:
            if mode != "permute":
                raise ConfigError("label_flip permutation only applies to mode='permute'")
            permutation = [int(c) for c in permutation]
            if sorted(permutation) != list(range(len(permutation))):
                raise ConfigError(
                    f"label_flip permutation must hold each of 0..{len(permutation) - 1} once, "
                    f"got {permutation}"
                )
            if permutation == list(range(len(permutation))):
                raise ConfigError("label_flip permutation is the identity; it would flip nothing")
        self.mode = mode
        self.fraction = float(fraction)
        self.seed = seed
        self.permutation: tuple[int, ...] | None = (
            None if permutation is None else tuple(permutation)
        )

    def chosen_samples(self, num_samples: int) -> np.ndarray:
        """Indices (sorted) of the samples this attack corrupts among ``num_samples``."""
        count = math.floor(self.fraction * num_samples + 0.5)
        generator = np.random.default_rng(self.seed)
        return np.sort(generator.choice(num_samples, size=count, replace=False))

    def class_permutation(self, num_classes: int) -> np.ndarray:
        """The permutation used by ``"permute"`` for ``num_classes`` findings."""
        if self.permutation is None:
            if num_classes < 2:
                raise DataError("label_flip 'permute' needs at least 2 classes")
            return (np.arange(num_classes) + 1) % num_classes
        if len(self.permutation) != num_classes:
            raise ConfigError(
                f"label_flip permutation covers {len(self.permutation)} classes but the labels "
                f"have {num_classes}"
            )
        return np.asarray(self.permutation)

    def apply(self, labels: np.ndarray) -> np.ndarray:
        """Return a corrupted copy of ``labels`` (``(N, C)`` multi-hot, values 0 or 1)."""
        if not isinstance(labels, np.ndarray) or labels.ndim != 2:
            raise DataError("label_flip expects labels as a 2-D (samples, classes) numpy array")
        if not np.isin(labels, (0, 1)).all():
            raise DataError("label_flip expects multi-hot labels holding only 0 and 1")
        corrupted = labels.copy()
        chosen = self.chosen_samples(labels.shape[0])
        if self.mode == "invert":
            corrupted[chosen] = 1 - labels[chosen]
        else:
            permutation = self.class_permutation(labels.shape[1])
            # Column c of the original moves to column permutation[c].
            corrupted[np.ix_(chosen, permutation)] = labels[chosen]
        return corrupted
