"""Shamir secret sharing over the prime field GF(2^521 - 1).

The secrets are 32-byte values (a self-mask seed, an X25519 private key); a 521-bit Mersenne
prime holds any of them as one field element, so a secret is one polynomial and a share is one
point, with no chunking. Evaluation points are 1..n (never 0, where the secret lives). The
coefficients come from :func:`secrets.randbelow`: fewer than ``threshold`` shares reveal
nothing about the secret.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from securemed.errors import ProtocolViolation

PRIME = (1 << 521) - 1
SHARE_BYTES = 66  # ceil(521 / 8)
SECRET_BYTES = 32


def split(secret: bytes, *, threshold: int, points: list[int]) -> dict[int, bytes]:
    """Share ``secret`` so that any ``threshold`` of the points recover it; fewer learn nothing."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"secrets are {SECRET_BYTES} bytes, got {len(secret)}")
    if not 1 <= threshold <= len(points):
        raise ValueError(f"threshold {threshold} must be in [1, {len(points)}]")
    if len(set(points)) != len(points) or any(not 0 < x < PRIME for x in points):
        raise ValueError("share points must be distinct and non-zero")
    coefficients = [int.from_bytes(secret, "big")]
    coefficients += [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    shares: dict[int, bytes] = {}
    for x in points:
        value = 0
        for coefficient in reversed(coefficients):  # Horner
            value = (value * x + coefficient) % PRIME
        shares[x] = value.to_bytes(SHARE_BYTES, "big")
    return shares


def combine(shares: Mapping[int, bytes], *, threshold: int) -> bytes:
    """Recover the secret from at least ``threshold`` shares (Lagrange interpolation at 0).

    Raises:
        ProtocolViolation: too few shares, a malformed share, or a result that is not a
            32-byte secret (shares from different secrets were mixed).
    """
    if len(shares) < threshold:
        raise ProtocolViolation(
            f"{len(shares)} shares cannot recover a secret that needs {threshold}"
        )
    chosen = sorted(shares)[:threshold]
    values = {}
    for x in chosen:
        share = shares[x]
        if len(share) != SHARE_BYTES:
            raise ProtocolViolation(f"a share must be {SHARE_BYTES} bytes, got {len(share)}")
        values[x] = int.from_bytes(share, "big")
        if values[x] >= PRIME:
            raise ProtocolViolation("a share lies outside the field")
    secret = 0
    for x in chosen:
        numerator, denominator = 1, 1
        for other in chosen:
            if other != x:
                numerator = numerator * (-other) % PRIME
                denominator = denominator * (x - other) % PRIME
        secret = (secret + values[x] * numerator * pow(denominator, -1, PRIME)) % PRIME
    if secret >= 1 << (8 * SECRET_BYTES):
        raise ProtocolViolation("the shares do not belong to one secret")
    return secret.to_bytes(SECRET_BYTES, "big")
