"""The distributed Skellam mechanism: client-level DP noise added in the integer domain.

Under secure aggregation the aggregator sees only the sum of the hospitals' integer vectors,
so the noise that protects a hospital has to be in that sum already, and it has to be an
integer to survive the ring. Each hospital adds symmetric Skellam noise (the difference of two
Poisson draws) to its own scaled, stochastically rounded update; the sum of independent
symmetric Skellams is again symmetric Skellam with the variances added, so m hospitals adding
variance ``mu / m`` each release exactly the Skellam mechanism with variance ``mu`` (Agarwal,
Kairouz and Liu, "The Skellam Mechanism for Differentially Private Federated Learning",
NeurIPS 2021). Wrapping the noisy sum modulo 2^32 is a function of that sum, so it costs
utility when it happens, never privacy.

This module holds the four pieces the secure round needs and nothing else:

* :func:`skellam_noise` draws one hospital's share of the noise;
* :func:`integer_sensitivity` bounds one hospital's integer vector (the L1 and L2 sensitivity
  under client-level DP, where a neighbouring round differs by one hospital's whole update);
* :func:`skellam_rdp` is the published RDP bound of one release;
* :func:`skellam_epsilon` composes rounds and converts to (epsilon, delta) exactly as the rest
  of the project does (Opacus' ``get_privacy_spent``).

What it does not do: clip, scale, round, mask or decode updates (the caller owns the
quantization and its offset), pick a scale or a variance for a target epsilon, amplify by
sampling hospitals (every round is accounted as a full release), or decide how many hospitals
the noise is split over. The accounting is for neighbouring rounds whose sums differ by one
hospital's integer vector while the total noise variance is the same in both (the hospital's
update replaced by zeros); when a hospital's own share may be known to the adversary, account
with the variance of the other hospitals' shares only. Sampling uses numpy's Poisson sampler,
which is exact in law up to floating-point arithmetic, not a constant-time sampler.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import numpy.typing as npt
from opacus.accountants.analysis import rdp as rdp_analysis

from securemed.errors import ConfigError

#: Integer RDP orders: the published bound holds for integer orders only. Dense where the
#: optimum lies for the epsilons we train at, sparse out to the very small epsilons.
DEFAULT_ORDERS: tuple[int, ...] = (*range(2, 129), 160, 192, 256, 384, 512, 768, 1024)


def skellam_noise(
    shape: int | tuple[int, ...], *, variance: float, rng: np.random.Generator
) -> np.ndarray:
    """Symmetric Skellam noise with the given variance: Poisson(v/2) - Poisson(v/2), int64.

    Each coordinate is the difference of two independent Poisson(variance / 2) draws, so its
    mean is 0 and its variance is exactly ``variance``. Sums of independent symmetric Skellams
    are symmetric Skellam with the variances added, which is what makes the distributed
    mechanism exact: m hospitals adding ``mu / m`` each (or any split that adds up to ``mu``)
    put exactly Skellam noise of variance ``mu`` into the released sum, the distribution the
    privacy bound is proved for. The distributed discrete Gaussian lacks this: a sum of
    discrete Gaussians is not a discrete Gaussian, and its accounting carries a correction.

    Args:
        shape: shape of the noise, that of the hospital's integer vector.
        variance: this hospital's share of the total variance, in integer units (after
            scaling); positive.
        rng: a generator seeded from the OS (``np.random.default_rng()`` with no seed, or
            seeded from :mod:`secrets`), never from a config seed: whoever can replay the
            noise can subtract it.

    Returns:
        An int64 array of ``shape``.

    Example:
        >>> share = skellam_noise(4, variance=100.0 / 8, rng=np.random.default_rng())
    """
    _check_positive("Skellam noise variance", variance)
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(
            f"Skellam noise needs a numpy Generator seeded from the OS, got {type(rng).__name__}"
            ": pass np.random.default_rng() (no seed)"
        )
    rate = variance / 2.0
    # Two independent draws; their difference is symmetric whatever the sampler's rounding.
    first = rng.poisson(rate, size=shape).astype(np.int64)
    return first - rng.poisson(rate, size=shape).astype(np.int64)


def integer_sensitivity(*, norm_bound: float, scale: float, dimension: int) -> tuple[float, float]:
    """The (L1, L2) sensitivity of one hospital's integer vector, a worst case over rounding.

    The hospital's real update x has ``||x||_2 <= norm_bound``; it is multiplied by ``scale``
    and each coordinate is rounded to the integer just below or just above, so the integer
    vector y satisfies ``|y_i - scale * x_i| < 1``. By the triangle inequality

    * ``||y||_2 <= scale * norm_bound + sqrt(d)``, and
    * ``||y||_1 <= sqrt(d) * ||y||_2``; the direct bound ``scale * norm_bound * sqrt(d) + d``
      (``||scale * x||_1 <= sqrt(d) * scale * norm_bound`` plus at most 1 per coordinate) is
      the same number, and ``||y||_1 <= ||y||_2^2`` (integer coordinates) never beats it here
      since ``||y||_2`` may reach ``sqrt(d)``; the minimum of the valid bounds is returned.

    These hold for every outcome of the rounding, not with high probability, so the rounding
    needs no conditioning or rejection (unlike the conditional rounding of Kairouz et al.,
    ICML 2021, which trades a smaller bound for a retry loop and a failure probability).
    Under client-level DP a neighbouring round adds or removes one hospital's whole update,
    so this bound on one hospital's integer vector is the sensitivity of the sum. An offset h
    added to every level before rounding (the quantizer's (2^bits - 1) / 2, a half-integer)
    leaves the bound intact when the neighbouring round has the hospital's update replaced by
    zeros and the count of hospitals is the same: round ``scale * x_i + h`` and ``h`` with the
    same uniform u (stochastic rounding of v is ``floor(v - u) + 1``) and the two levels differ
    by less than ``|scale * x_i| + 1``, so the coupled vectors differ within the bounds above,
    and the Rényi divergence of the mixtures over rounding is at most the largest divergence
    over the coupled outcomes (it is jointly quasi-convex).

    Args:
        norm_bound: the L2 bound on one hospital's real update; positive.
        scale: the factor applied before rounding (levels per unit); positive.
        dimension: the number of coordinates d; positive.

    Returns:
        ``(l1, l2)`` in integer units, ready for :func:`skellam_rdp`.
    """
    _check_positive("norm_bound", norm_bound)
    _check_positive("scale", scale)
    if isinstance(dimension, bool) or not isinstance(dimension, numbers.Integral) or dimension < 1:
        raise ConfigError(
            f"dimension must be a positive integer (the number of coordinates), got {dimension!r}"
        )
    root_d = math.sqrt(dimension)
    l2 = scale * norm_bound + root_d
    l1 = min(root_d * l2, l2 * l2)
    return l1, l2


def skellam_rdp(orders: npt.ArrayLike, *, l1: float, l2: float, variance: float) -> np.ndarray:
    """The RDP of one release of the multi-dimensional Skellam mechanism, as published.

    Agarwal, Kairouz and Liu, "The Skellam Mechanism for Differentially Private Federated
    Learning" (NeurIPS 2021, arXiv:2110.04995), Corollary 3.6, the RDP of the multi-dimensional
    Skellam mechanism: for an integer-valued query with L1 and L2 sensitivity l1, l2 and
    independent symmetric Skellam noise of variance V on every coordinate, for every integer
    order alpha > 1,

        eps(alpha) <= alpha * l2^2 / (2 V)
                      + min( ((2 alpha - 1) * l2^2 + 6 * l1) / (4 V^2),  3 * l1 / (2 V) ).

    Parameterisation: V is the variance, as in the authors' reference accounting
    (google-research/federated, distributed_dp/accounting_utils.py, whose ``mu`` is the central
    variance of noise drawn as Poisson(V/2) - Poisson(V/2)). Written with Sk(lambda, lambda) =
    Poisson(lambda) - Poisson(lambda), variance 2 lambda, the same bound reads
    ``alpha l2^2/(4 lambda) + min(((2 alpha - 1) l2^2 + 6 l1)/(16 lambda^2), 3 l1/(4 lambda))``;
    a Poisson rate put where V belongs would overstate it two- to four-fold. The first term is the
    Gaussian mechanism's RDP at variance V; the minimum is the price of discreteness, which
    vanishes as V grows, so the curve approaches the Gaussian's from above.

    Args:
        orders: integer RDP orders alpha > 1 (the bound is proved for integers only).
        l1: L1 sensitivity of one hospital's integer vector (:func:`integer_sensitivity`).
        l2: L2 sensitivity, at most ``l1``.
        variance: variance per coordinate of the noise in the released sum (all shares).

    Returns:
        float64 array of eps(alpha), one per order.
    """
    alphas = _check_orders(orders)
    _check_sensitivity(l1, l2)
    _check_positive("Skellam variance", variance)
    gaussian = alphas * l2**2 / (2.0 * variance)
    discrete = np.minimum(
        ((2.0 * alphas - 1.0) * l2**2 + 6.0 * l1) / (4.0 * variance**2),
        3.0 * l1 / (2.0 * variance),
    )
    return gaussian + discrete


def skellam_epsilon(
    *,
    rounds: int,
    l1: float,
    l2: float,
    variance: float,
    delta: float,
    orders: npt.ArrayLike = DEFAULT_ORDERS,
) -> float:
    """Epsilon at ``delta`` after ``rounds`` releases of the Skellam mechanism.

    RDP composes by addition, so ``rounds`` identical releases cost ``rounds`` times the curve
    of one; the curve is converted to (epsilon, delta) with Opacus' ``get_privacy_spent`` (Balle
    et al., AISTATS 2020), the conversion the project's Gaussian accounting uses, so the two
    are comparable number for number.

    Args:
        rounds: how many rounds released a noisy sum; positive.
        l1, l2: sensitivities of one hospital's integer vector (:func:`integer_sensitivity`).
        variance: variance per coordinate of the total noise in each released sum.
        delta: target delta, in (0, 1).
        orders: integer RDP orders alpha > 1 to optimise over.

    Returns:
        The smallest epsilon over ``orders``.

    Example:
        >>> l1, l2 = integer_sensitivity(norm_bound=1.0, scale=100.0, dimension=10_000)
        >>> eps = skellam_epsilon(rounds=50, l1=l1, l2=l2, variance=4e4, delta=1e-5)
    """
    if isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral) or rounds < 1:
        raise ConfigError(f"rounds must be a positive integer, got {rounds!r}")
    if (
        isinstance(delta, bool)
        or not isinstance(delta, numbers.Real)
        or not (math.isfinite(delta) and 0 < delta < 1)
    ):
        raise ConfigError(f"delta must be in (0, 1), e.g. 1e-5, got {delta!r}")
    alphas = _check_orders(orders)
    curve = int(rounds) * skellam_rdp(alphas, l1=l1, l2=l2, variance=variance)
    with warnings.catch_warnings():
        # An optimum at the edge of the orders gives a valid, only looser, epsilon.
        warnings.filterwarnings("ignore", message="Optimal order is the")
        epsilon, _ = rdp_analysis.get_privacy_spent(
            orders=alphas.tolist(), rdp=curve.tolist(), delta=float(delta)
        )
    return float(epsilon)


# ------------------------------------------------------------------------------- helpers


def _check_positive(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not (math.isfinite(float(value)) and float(value) > 0)
    ):
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")


def _check_sensitivity(l1: float, l2: float) -> None:
    _check_positive("L1 sensitivity l1", l1)
    _check_positive("L2 sensitivity l2", l2)
    if l1 < l2:
        raise ConfigError(
            f"L1 sensitivity {l1} is below the L2 sensitivity {l2}, which no vector allows: "
            "were l1 and l2 swapped? Take both from integer_sensitivity()"
        )


def _check_orders(orders: npt.ArrayLike) -> np.ndarray:
    try:
        alphas = np.asarray(orders, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"RDP orders must be numbers, got {orders!r}") from error
    if alphas.size == 0:
        raise ConfigError("RDP orders are empty: pass integers >= 2, e.g. DEFAULT_ORDERS")
    bad = alphas[~(np.isfinite(alphas) & (alphas > 1) & (alphas == np.round(alphas)))]
    if bad.size:
        raise ConfigError(
            f"Skellam RDP orders must be integers >= 2 (the published bound holds for integer "
            f"orders only), got {bad.tolist()}"
        )
    return alphas
