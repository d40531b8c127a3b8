"""Split a data set's sample indices across hospitals: IID, label skew, or quantity skew.

Federated results depend as much on how data is spread across hospitals as on the algorithm,
so every experiment names its partition and its seed. Each partitioner returns one sorted
index array per hospital; together they are disjoint and cover every sample exactly once.

This module only decides *which* indices a hospital holds; it never loads or renders data, so a
hospital can render or read just its own share.
"""

from __future__ import annotations

import numpy as np

from securemed.errors import DataError

MAX_ATTEMPTS = 100  # redraws of a Dirichlet partition before giving up on min_samples


def iid_partition(num_samples: int, num_hospitals: int, *, seed: int) -> list[np.ndarray]:
    """Shuffle the samples and deal them out in near-equal shares (sizes differ by at most 1).

    Raises:
        DataError: fewer samples than hospitals, or a non-positive count.
    """
    _check_counts(num_samples, num_hospitals, min_samples=1)
    order = np.random.default_rng(seed).permutation(num_samples)
    return [np.sort(part) for part in np.array_split(order, num_hospitals)]


def dirichlet_partition(
    labels: np.ndarray,
    num_hospitals: int,
    *,
    alpha: float,
    seed: int,
    min_samples: int = 1,
) -> list[np.ndarray]:
    """Label-skewed split of multi-label data: each class's samples spread by Dirichlet(alpha).

    The classic recipe (Hsu et al. 2019) assumes one label per sample. With multi-label data
    each sample is assigned one *primary* group, its rarest positive finding (rare findings
    are the ones whose distribution across hospitals matters most), or a "no finding" group
    when it has none. Each group is then spread over the hospitals with its own
    Dirichlet(alpha) proportions: small alpha concentrates a group in few hospitals, large
    alpha approaches an IID split.

    Args:
        labels: (N, C) multi-hot array, or (N,) class ids.
        num_hospitals: how many shares to make.
        alpha: Dirichlet concentration, > 0.
        seed: seeds every draw, so the same arguments give the same partition.
        min_samples: every hospital must end with at least this many samples; the proportions
            are redrawn up to ``MAX_ATTEMPTS`` times to meet it.

    Raises:
        DataError: bad arguments, or no draw met ``min_samples`` (raise alpha or lower it).
    """
    groups = _primary_groups(labels)
    _check_counts(groups.size, num_hospitals, min_samples=min_samples)
    if not np.isfinite(alpha) or alpha <= 0:
        raise DataError(f"alpha must be a positive number, got {alpha}")
    rng = np.random.default_rng(seed)
    members = [rng.permutation(np.flatnonzero(groups == g)) for g in np.unique(groups)]
    for _ in range(MAX_ATTEMPTS):
        shares: list[list[np.ndarray]] = [[] for _ in range(num_hospitals)]
        for group in members:
            proportions = rng.dirichlet(np.full(num_hospitals, float(alpha)))
            cuts = (np.cumsum(proportions)[:-1] * group.size).astype(np.int64)
            for hospital, part in enumerate(np.split(group, cuts)):
                shares[hospital].append(part)
        parts = [np.sort(np.concatenate(share)) for share in shares]
        if min(part.size for part in parts) >= min_samples:
            return parts
    raise DataError(
        f"no Dirichlet(alpha={alpha}) partition over {num_hospitals} hospitals gave every "
        f"hospital at least {min_samples} samples in {MAX_ATTEMPTS} draws; raise alpha, "
        "lower min_samples or use fewer hospitals"
    )


def quantity_skew_partition(
    num_samples: int,
    num_hospitals: int,
    *,
    beta: float,
    seed: int,
    min_samples: int = 1,
) -> list[np.ndarray]:
    """IID samples, hospital sizes skewed by Dirichlet(beta) proportions.

    Every hospital first gets ``min_samples``; the rest are shared out by the Dirichlet
    proportions. That meets the minimum on every draw, where redrawing could loop for small
    beta, and leaves the skew of the remainder untouched.

    Raises:
        DataError: bad arguments, or fewer samples than ``num_hospitals * min_samples``.
    """
    _check_counts(num_samples, num_hospitals, min_samples=min_samples)
    if not np.isfinite(beta) or beta <= 0:
        raise DataError(f"beta must be a positive number, got {beta}")
    rng = np.random.default_rng(seed)
    proportions = rng.dirichlet(np.full(num_hospitals, float(beta)))
    spare = num_samples - num_hospitals * min_samples
    sizes = min_samples + rng.multinomial(spare, proportions)
    order = rng.permutation(num_samples)
    return [np.sort(part) for part in np.split(order, np.cumsum(sizes)[:-1])]


def _check_counts(num_samples: int, num_hospitals: int, *, min_samples: int) -> None:
    for name, value in (
        ("num_samples", num_samples),
        ("num_hospitals", num_hospitals),
        ("min_samples", min_samples),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise DataError(f"{name} must be an integer, got {value!r}")
    if num_hospitals < 1:
        raise DataError(f"num_hospitals must be at least 1, got {num_hospitals}")
    if min_samples < 1:
        raise DataError(f"min_samples must be at least 1, got {min_samples}")
    if num_samples < num_hospitals * min_samples:
        raise DataError(
            f"{num_samples} samples cannot give {num_hospitals} hospitals "
            f"{min_samples} sample(s) each; use fewer hospitals or more samples"
        )


def _primary_groups(labels: np.ndarray) -> np.ndarray:
    """One group id per sample: its rarest positive class, or C ("no finding") if none."""
    array = np.asarray(labels)
    if array.ndim == 1:
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise DataError(f"1-D labels must be integer class ids, got dtype {array.dtype}")
        return array.astype(np.int64)
    if array.ndim != 2 or array.shape[1] == 0:
        raise DataError(f"labels must be (N, C) multi-hot or (N,) class ids, got {array.shape}")
    positive = array > 0.5
    counts = positive.sum(axis=0)
    # Rank classes rarest first (ties by class index) and pick each sample's best-ranked one.
    rank = np.empty(array.shape[1], dtype=np.int64)
    rank[np.argsort(counts, kind="stable")] = np.arange(array.shape[1])
    ranked = np.where(positive, rank[None, :], array.shape[1])
    best = ranked.argmin(axis=1)
    return np.where(positive.any(axis=1), best, array.shape[1])
