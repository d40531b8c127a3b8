"""Shamir secret sharing over the scalar field of secp256k1, so that shares can be verified.

The secrets are 32-byte values below the group order (a self-mask seed, an X25519 private
key; :func:`random_secret` draws them). Sharing over the order of a prime-order group, rather
than any large prime, is what lets :mod:`securemed.secagg.feldman` publish commitments to the
polynomial: a holder checks its share on receipt and the aggregator checks every share it is
given back, so a hospital that deals or returns a bad share is caught and named instead of
silently spoiling the reconstruction. Evaluation points are 1..n (never 0, where the secret
lives). Coefficients come from :mod:`secrets`: fewer than ``threshold`` shares reveal nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from securemed.errors import ProtocolViolation

#: the order of the secp256k1 group, a 256-bit prime
PRIME = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SHARE_BYTES = 32
SECRET_BYTES = 32


def random_secret() -> bytes:
    """32 bytes from the OS encoding a uniform non-zero field element (about 256 bits)."""
    return (1 + secrets.randbelow(PRIME - 1)).to_bytes(SECRET_BYTES, "big")


def to_scalar(value: bytes) -> int:
    """A 32-byte share or secret as a field element; ProtocolViolation for anything else."""
    if len(value) != SHARE_BYTES:
        raise ProtocolViolation(f"a share must be {SHARE_BYTES} bytes, got {len(value)}")
    scalar = int.from_bytes(value, "big")
    if not 0 < scalar < PRIME:
        raise ProtocolViolation("a share must be a non-zero element of the field")
    return scalar


@dataclass(frozen=True)
class Polynomial:
    """A random polynomial of degree ``threshold - 1`` whose constant term is the secret."""

    coefficients: tuple[int, ...]

    @classmethod
    def for_secret(cls, secret: bytes, *, threshold: int) -> Polynomial:
        if len(secret) != SECRET_BYTES:
            raise ValueError(f"secrets are {SECRET_BYTES} bytes, got {len(secret)}")
        if threshold < 1:
            raise ValueError(f"threshold must be at least 1, got {threshold}")
        constant = int.from_bytes(secret, "big")
        if not 0 < constant < PRIME:
            raise ValueError("a secret must be a non-zero element of the field (random_secret)")
        rest = [1 + secrets.randbelow(PRIME - 1) for _ in range(threshold - 1)]
        return cls((constant, *rest))

    @property
    def threshold(self) -> int:
        return len(self.coefficients)

    @property
    def secret(self) -> bytes:
        return self.coefficients[0].to_bytes(SECRET_BYTES, "big")

    def share(self, x: int) -> bytes:
        """The share at point ``x`` (Horner's rule)."""
        if not 0 < x < PRIME:
            raise ValueError("share points must be non-zero")
        value = 0
        for coefficient in reversed(self.coefficients):
            value = (value * x + coefficient) % PRIME
        return value.to_bytes(SHARE_BYTES, "big")


def split(secret: bytes, *, threshold: int, points: Sequence[int]) -> dict[int, bytes]:
    """Share ``secret`` so that any ``threshold`` of the points recover it; fewer learn nothing."""
    if not 1 <= threshold <= len(points):
        raise ValueError(f"threshold {threshold} must be in [1, {len(points)}]")
    if len(set(points)) != len(points):
        raise ValueError("share points must be distinct")
    polynomial = Polynomial.for_secret(secret, threshold=threshold)
    return {x: polynomial.share(x) for x in points}


def combine(shares: Mapping[int, bytes], *, threshold: int) -> bytes:
    """Recover the secret from ``threshold`` of the shares (Lagrange interpolation at 0).

    Mixed or altered shares interpolate to some other field element without any sign of it:
    check the result (or each share) against the dealer's commitments.

    Raises:
        ProtocolViolation: too few shares, or a malformed one.
    """
    if len(shares) < threshold:
        raise ProtocolViolation(
            f"{len(shares)} shares cannot recover a secret that needs {threshold}"
        )
    chosen = sorted(shares)[:threshold]
    values = {x: to_scalar(shares[x]) for x in chosen}
    secret = 0
    for x in chosen:
        numerator, denominator = 1, 1
        for other in chosen:
            if other != x:
                numerator = numerator * (-other) % PRIME
                denominator = denominator * (x - other) % PRIME
        secret = (secret + values[x] * numerator * pow(denominator, -1, PRIME)) % PRIME
    return secret.to_bytes(SECRET_BYTES, "big")
