"""Centered clipping (Karimireddy, He and Jaggi 2021, "Learning from history for Byzantine
robust optimization", ICML).

Each input's difference from a centre is clipped to radius ``tau`` before averaging, and the
centre moves to the result, ``L`` times per round. A Byzantine input therefore moves the
aggregate by at most ``tau / n`` per iteration however large it is, and because the centre is
the previous round's aggregate, an attacker cannot drag it far across rounds either. ``tau``
is in the units of the updates, so it has no safe default and must be chosen per model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from securemed.aggregation.base import check_f, require, validate_inputs
from securemed.errors import ConfigError, InvalidUpdate


def centered_clip(
    matrix: torch.Tensor, center: torch.Tensor, tau: float, iterations: int
) -> torch.Tensor:
    """Iterate ``v <- v + mean_i (x_i - v) * min(1, tau / |x_i - v|)`` from ``v = center``."""
    v = center.to(device=matrix.device, dtype=matrix.dtype)
    for _ in range(iterations):
        differences = matrix - v
        norms = differences.norm(dim=1)
        # tau / 0 is inf and clamps to 1: an input at the centre is kept as it is.
        scale = (tau / norms).clamp(max=1.0)
        v = v + (differences * scale[:, None]).mean(dim=0)
    return v


class CenteredClipping:
    """Centered clipping, stateful: the centre is the previous aggregate (zero at first).

    Starting from zero matches the paper's momentum, which starts at zero; in the first round
    the output is therefore the clipped mean of the updates around "no change".

    Args:
        f: Byzantine inputs to tolerate.
        tau: clipping radius, ``> 0``, in the units of the updates.
        iterations: clipping iterations ``L`` per round, ``>= 1`` (the paper finds one enough
            when the centre is good).

    Attributes:
        center: the centre for the next call, ``None`` before the first.
    """

    name = "centered_clipping"
    needs_individual_updates = True
    needs_hospital_ids = False

    def __init__(self, f: int, *, tau: float, iterations: int = 1) -> None:
        self.f = check_f(f)
        if isinstance(tau, bool) or not isinstance(tau, int | float) or not 0 < tau < float("inf"):
            raise ConfigError(f"centered clipping tau (clipping radius) must be > 0, not {tau!r}")
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ConfigError(
                f"centered clipping iterations must be an integer >= 1, not {iterations!r}"
            )
        self.tau = float(tau)
        self.iterations = iterations
        self.center: torch.Tensor | None = None

    def check(self, n: int) -> None:
        """Require ``n > 2f``: honest inputs must outnumber Byzantine ones."""
        require(
            n > 2 * self.f,
            rule="centered clipping",
            f=self.f,
            n=n,
            condition="n > 2f",
            bound=2 * self.f,
            source="Karimireddy et al. 2021",
        )

    def aggregate(
        self,
        matrix: torch.Tensor,
        weights: torch.Tensor | None = None,
        *,
        hospitals: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Clip around the stored centre, store the result as the next centre, return it.

        Raises:
            InvalidUpdate: the updates have another length than the stored centre (the model
                changed under a running federation: call :meth:`reset`).
        """
        validate_inputs(matrix, weights)
        self.check(matrix.shape[0])
        d = matrix.shape[1]
        if self.center is None:
            center = torch.zeros(d, dtype=matrix.dtype, device=matrix.device)
        elif self.center.numel() != d:
            raise InvalidUpdate(
                f"centered clipping holds a centre of {self.center.numel()} values but the "
                f"updates have {d}: reset the rule when the model changes"
            )
        else:
            center = self.center
        result = centered_clip(matrix, center, self.tau, self.iterations)
        self.center = result.clone()
        return result

    def reset(self) -> None:
        """Forget the centre; the next call starts from zero."""
        self.center = None
