"""Feldman's verifiable secret sharing (1987) on secp256k1, through libsecp256k1 (coincurve).

A dealer publishes ``C_j = a_j G`` for each coefficient of its sharing polynomial, signed into
its key advert. Anyone can then check a share ``y`` at point ``x`` without learning anything:
``y G == sum_j x^j C_j``. Holders check what they receive, so a dealer that hands out
inconsistent shares is caught by them; the aggregator checks what holders give back, so a
holder that returns a corrupted share is caught and its answer dropped. ``C_0 = secret G``
reveals nothing usable about a 256-bit random secret (finding it is a discrete logarithm).
"""

from __future__ import annotations

from collections.abc import Sequence

from coincurve import PublicKey

from securemed.errors import ProtocolViolation
from securemed.secagg.shamir import PRIME, SHARE_BYTES, Polynomial, to_scalar

#: a compressed secp256k1 point
COMMITMENT_BYTES = 33


def commitments(polynomial: Polynomial) -> tuple[bytes, ...]:
    """The public commitments to each coefficient (the dealer publishes these)."""
    return tuple(
        PublicKey.from_secret(c.to_bytes(SHARE_BYTES, "big")).format(compressed=True)
        for c in polynomial.coefficients
    )


def _points(published: Sequence[bytes]) -> list[PublicKey]:
    try:
        return [PublicKey(bytes(point)) for point in published]
    except (ValueError, TypeError):
        raise ProtocolViolation("a share commitment is not a valid curve point") from None


def points_are_valid(published: Sequence[bytes]) -> bool:
    """Whether every commitment is a compressed curve point."""
    try:
        _points(published)
    except ProtocolViolation:
        return False
    return all(len(point) == COMMITMENT_BYTES for point in published)


def share_is_valid(share: bytes, x: int, published: Sequence[bytes]) -> bool:
    """Whether ``share`` is the dealer's polynomial at ``x``; malformed input is invalid."""
    try:
        scalar = to_scalar(share)
        points = _points(published)
    except ProtocolViolation:
        return False
    if not points:
        return False
    terms = [points[0]]
    power = 1
    for point in points[1:]:
        power = power * x % PRIME
        terms.append(point.multiply(power.to_bytes(SHARE_BYTES, "big")))
    try:
        expected = PublicKey.combine_keys(terms)
    except ValueError:  # the sum is the point at infinity: no non-zero share matches it
        return False
    return PublicKey.from_secret(scalar.to_bytes(SHARE_BYTES, "big")) == expected


def secret_is_valid(secret: bytes, published: Sequence[bytes]) -> bool:
    """Whether ``secret`` is what the dealer committed to (its constant term)."""
    if not published:
        return False
    return share_is_valid(secret, 0, published[:1])
