"""Split a data set's sample indices across hospitals: IID, label skew, or quantity skew.

Federated results depend as much on how data is spread across hospitals as on the algorithm,
so every experiment names its partition and its seed. Each partitioner returns one sorted
index array per hospital; together they are disjoint and cover every sample exactly once.

Given ``patient_ids`` (one per sample), every partitioner deals out *patients* instead of
samples, so all of a patient's studies land in one hospital: a patient who spanned hospitals
would be counted by several local accountants, and patient-level epsilon would no longer
describe what an adversary learns about them. Shares are then sized in samples as closely as
whole patients allow. Without ``patient_ids`` the partitions are exactly what they always
were for the same seed.

This module only decides *which* indices a hospital holds; it never loads or renders data, so a
hospital can render or read just its own share.
"""

from __future__ import annotations

import numpy as np

from securemed.errors import DataError

MAX_ATTEMPTS = 100  # redraws of a Dirichlet partition before giving up on min_samples


def iid_partition(
    num_samples: int,
    num_hospitals: int,
    *,
    seed: int,
    patient_ids: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Shuffle the samples and deal them out in near-equal shares (sizes differ by at most 1).

    With ``patient_ids`` the shuffled patients are cut into shares of near-equal sample
    counts (off by at most about one patient's studies), each holding at least one patient.

    Raises:
        DataError: fewer samples (or patients) than hospitals, or a non-positive count.
    """
    _check_counts(num_samples, num_hospitals, min_samples=1)
    if patient_ids is not None:
        patient_of, counts = _patients(patient_ids, num_samples)
        if counts.size < num_hospitals:
            raise DataError(
                f"{counts.size} patients cannot be spread over {num_hospitals} hospitals "
                "without splitting a patient; use fewer hospitals or more patients"
            )
        order = np.random.default_rng(seed).permutation(counts.size)
        targets = np.arange(1, num_hospitals) * (num_samples / num_hospitals)
        cuts = _at_least_one_each(_nearest_cuts(counts[order], targets), counts.size)
        hospital_of = np.empty(counts.size, dtype=np.int64)
        hospital_of[order] = np.repeat(np.arange(num_hospitals), np.diff([0, *cuts, counts.size]))
        return _expand(hospital_of, patient_of, num_hospitals)
    order = np.random.default_rng(seed).permutation(num_samples)
    return [np.sort(part) for part in np.array_split(order, num_hospitals)]


def dirichlet_partition(
    labels: np.ndarray,
    num_hospitals: int,
    *,
    alpha: float,
    seed: int,
    min_samples: int = 1,
    patient_ids: np.ndarray | None = None,
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
        patient_ids: one id per sample; given, patients are spread instead of samples, each
            grouped by the rarest finding of any of their studies, and cut where the running
            count of samples is nearest each hospital's Dirichlet share.

    Raises:
        DataError: bad arguments, or no draw met ``min_samples`` (raise alpha or lower it).
    """
    groups = _primary_groups(labels)
    _check_counts(groups.size, num_hospitals, min_samples=min_samples)
    if not np.isfinite(alpha) or alpha <= 0:
        raise DataError(f"alpha must be a positive number, got {alpha}")
    rng = np.random.default_rng(seed)
    if patient_ids is not None:
        return _dirichlet_by_patient(
            labels, patient_ids, num_hospitals, alpha=float(alpha), rng=rng, min_samples=min_samples
        )
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
    patient_ids: np.ndarray | None = None,
) -> list[np.ndarray]:
    """IID samples, hospital sizes skewed by Dirichlet(beta) proportions.

    Every hospital first gets ``min_samples``; the rest are shared out by the Dirichlet
    proportions. That meets the minimum on every draw, where redrawing could loop for small
    beta, and leaves the skew of the remainder untouched.

    With ``patient_ids`` the shuffled patients are cut where the running sample count is
    nearest those sizes. Whole patients can miss a size by a few studies, so each hospital is
    first allotted ``min_samples`` plus the largest patient's studies, when there are samples
    enough, and a share still below ``min_samples`` is an error.

    Raises:
        DataError: bad arguments, or fewer samples than ``num_hospitals * min_samples``.
    """
    _check_counts(num_samples, num_hospitals, min_samples=min_samples)
    if not np.isfinite(beta) or beta <= 0:
        raise DataError(f"beta must be a positive number, got {beta}")
    rng = np.random.default_rng(seed)
    if patient_ids is not None:
        patient_of, counts = _patients(patient_ids, num_samples)
        slack = min(int(counts.max()), num_samples // num_hospitals - min_samples)
        proportions = rng.dirichlet(np.full(num_hospitals, float(beta)))
        spare = num_samples - num_hospitals * (min_samples + slack)
        sizes = min_samples + slack + rng.multinomial(spare, proportions)
        order = rng.permutation(counts.size)
        cuts = _nearest_cuts(counts[order], np.cumsum(sizes)[:-1])
        hospital_of = np.empty(counts.size, dtype=np.int64)
        hospital_of[order] = np.repeat(np.arange(num_hospitals), np.diff([0, *cuts, counts.size]))
        parts = _expand(hospital_of, patient_of, num_hospitals)
        if min(part.size for part in parts) < min_samples:
            raise DataError(
                f"whole patients could not give each of {num_hospitals} hospitals "
                f"{min_samples} samples; lower min_samples or use fewer hospitals"
            )
        return parts
    proportions = rng.dirichlet(np.full(num_hospitals, float(beta)))
    spare = num_samples - num_hospitals * min_samples
    sizes = min_samples + rng.multinomial(spare, proportions)
    order = rng.permutation(num_samples)
    return [np.sort(part) for part in np.split(order, np.cumsum(sizes)[:-1])]


def _dirichlet_by_patient(
    labels: np.ndarray,
    patient_ids: np.ndarray,
    num_hospitals: int,
    *,
    alpha: float,
    rng: np.random.Generator,
    min_samples: int,
) -> list[np.ndarray]:
    array = np.asarray(labels)
    patient_of, counts = _patients(patient_ids, array.shape[0])
    if array.ndim == 1:  # class ids: one-hot, so a patient's studies can unite their classes
        array = np.eye(int(array.max()) + 1 if array.size else 1)[array.astype(np.int64)]
    findings = np.zeros((counts.size, array.shape[1]), dtype=np.float32)
    np.maximum.at(findings, patient_of, (array > 0.5).astype(np.float32))
    groups = _primary_groups(findings)
    members = [rng.permutation(np.flatnonzero(groups == g)) for g in np.unique(groups)]
    hospital_of = np.empty(counts.size, dtype=np.int64)
    for _ in range(MAX_ATTEMPTS):
        for group in members:
            proportions = rng.dirichlet(np.full(num_hospitals, alpha))
            weights = counts[group]
            cuts = _nearest_cuts(weights, np.cumsum(proportions)[:-1] * weights.sum())
            hospital_of[group] = np.repeat(
                np.arange(num_hospitals), np.diff([0, *cuts, group.size])
            )
        parts = _expand(hospital_of, patient_of, num_hospitals)
        if min(part.size for part in parts) >= min_samples:
            return parts
    raise DataError(
        f"no Dirichlet(alpha={alpha}) partition of whole patients over {num_hospitals} "
        f"hospitals gave every hospital at least {min_samples} samples in {MAX_ATTEMPTS} draws; "
        "raise alpha, lower min_samples or use fewer hospitals"
    )


def _patients(patient_ids: np.ndarray, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """(patient position of every sample, samples per patient), patients in id order."""
    ids = np.asarray(patient_ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise DataError(f"patient_ids must be a 1-D integer array, got {ids.dtype} {ids.shape}")
    if ids.size != num_samples:
        raise DataError(f"patient_ids has {ids.size} ids for {num_samples} samples; give one each")
    _, patient_of, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return patient_of.astype(np.int64), counts.astype(np.int64)


def _nearest_cuts(weights: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """How many leading units to take so their total weight is nearest each target."""
    cumulative = np.concatenate([[0], np.cumsum(weights)])
    right = np.searchsorted(cumulative, targets, side="left").clip(0, weights.size)
    left = np.maximum(right - 1, 0)
    nearer_left = targets - cumulative[left] < cumulative[right] - targets
    return np.where(nearer_left, left, right).astype(np.int64)


def _at_least_one_each(cuts: np.ndarray, num_units: int) -> np.ndarray:
    """Nudge increasing cut positions so every share holds at least one unit."""
    cuts = cuts.copy()
    for k in range(cuts.size):
        cuts[k] = max(cuts[k], (cuts[k - 1] if k else 0) + 1)
    for k in reversed(range(cuts.size)):
        cuts[k] = min(cuts[k], (cuts[k + 1] if k + 1 < cuts.size else num_units) - 1)
    return cuts


def _expand(
    hospital_of: np.ndarray, patient_of: np.ndarray, num_hospitals: int
) -> list[np.ndarray]:
    """Per-patient hospitals to sorted per-hospital sample indices."""
    hospital_of_sample = hospital_of[patient_of]
    return [np.flatnonzero(hospital_of_sample == h) for h in range(num_hospitals)]


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
