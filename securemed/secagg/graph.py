"""The SecAgg+ communication graph (Bell et al. 2020): each hospital masks with k neighbours.

Bonawitz et al.'s protocol has every pair of clients agree a mask, O(n^2) work for the server
and O(n) per client. Bell et al. show that a random k-regular graph with k = O(log n) keeps the
sum private and recoverable with high probability. We use their construction: a Harary graph
(each node joined to the k/2 nodes on either side of it on a ring) over a random permutation
of the hospitals, the permutation drawn from the round's public seed so every party derives
the same graph.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np


def default_neighbours(n: int) -> int:
    """k for n hospitals: the even number at or above 3 log2(n), capped by n - 1 (complete)."""
    if n < 2:
        return 0
    k = 2 * math.ceil(1.5 * math.log2(n))
    return min(k, n - 1)


def neighbour_graph(hospitals: Sequence[str], k: int, *, seed: bytes) -> dict[str, tuple[str, ...]]:
    """Each hospital's k neighbours (symmetric). k >= n - 1 gives the complete graph."""
    names = sorted(hospitals)
    n = len(names)
    if k >= n - 1:
        return {name: tuple(other for other in names if other != name) for name in names}
    if k % 2:
        raise ValueError(f"a sparse neighbour graph needs an even k, got {k}")
    digest = hashlib.sha256(b"securemed-secagg-graph" + seed).digest()
    order = np.random.default_rng(np.frombuffer(digest, dtype=np.uint32)).permutation(n)
    ring = [names[i] for i in order]
    position = {name: i for i, name in enumerate(ring)}
    half = k // 2
    return {
        name: tuple(
            sorted(
                ring[(position[name] + step) % n]
                for offset in range(1, half + 1)
                for step in (offset, -offset)
            )
        )
        for name in names
    }
