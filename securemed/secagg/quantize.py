"""Real updates ↔ integers in the ring Z_2^32, the only values masks can hide.

Each coordinate is clipped to [-c, c] and stochastically rounded to one of 2^b levels: the
rounding is unbiased (E[decode(q)] = x), so the error of a sum of n updates averages out
instead of accumulating a bias. The levels of n hospitals add up without wrapping because
:class:`~securemed.secagg.params.SecAggParams` checks b + log2(n) <= 32.

Why Z_2^32 rather than a prime field: uint32 arithmetic wraps for free in numpy, so masking and
unmasking a million coordinates costs a vector add, and AES keystream bytes are already uniform
words of the ring; a prime field would need a modular reduction per coordinate and rejection
sampling of the mask. Shamir sharing, which does need a field, works on the 32-byte seeds only
(:mod:`securemed.secagg.shamir`).
"""

from __future__ import annotations

import numpy as np

#: the size of the ring every level, mask and sum lives in
RING = 2**32


def _scale(clip: float, bits: int) -> float:
    return (2**bits - 1) / (2.0 * clip)


def quantize(vector: np.ndarray, *, clip: float, bits: int, rng: np.random.Generator) -> np.ndarray:
    """Clip to [-clip, clip] and round stochastically to uint32 levels in [0, 2^bits - 1]."""
    scaled = (np.clip(vector.astype(np.float64), -clip, clip) + clip) * _scale(clip, bits)
    floor = np.floor(scaled)
    levels = floor + (rng.random(scaled.shape) < (scaled - floor))
    return np.minimum(levels, 2**bits - 1).astype(np.uint32)


def level_scale(*, clip: float, bits: int) -> float:
    """Levels per unit of a coordinate: what one unit of an update becomes in the ring."""
    return _scale(clip, bits)


def add_ring_noise(levels: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Integer noise added to quantized levels in Z_2^32 (negative values wrap, as masks do).

    Noise added here, after clipping and rounding, reaches the released sum unchanged: the
    sum of the noise is exactly what the DP analysis assumes (added before clipping, part of
    it would be clipped away).
    """
    return ((levels.astype(np.int64) + noise.astype(np.int64)) % RING).astype(np.uint32)


def dequantize_sum(total: np.ndarray, *, count: int, clip: float, bits: int) -> np.ndarray:
    """The real-valued sum of ``count`` updates from the sum of their levels (float64).

    The ring sum is read as the integer nearest the middle of the levels' range, so integer
    noise that took it below zero or past the levels' maximum (it wraps) decodes correctly
    while its size stays under 2^31 minus half the range.
    """
    middle = count * (2**bits - 1) // 2
    centred = (total.astype(np.int64) - middle + RING // 2) % RING - RING // 2 + middle
    return centred.astype(np.float64) / _scale(clip, bits) - count * clip
