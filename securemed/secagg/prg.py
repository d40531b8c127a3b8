"""Masks from a cryptographic generator: AES-256 in counter mode, keyed by an agreed secret.

A mask is the keystream of AES-256-CTR under a 32-byte key, read as little-endian uint32 words:
uniform on the ring Z_2^32 because AES is a pseudorandom permutation, and reproducible by anyone
who holds the key (the two neighbours that agreed it, or the aggregator once it reconstructs a
dropped hospital's key). Never numpy's or Python's ``random``: those are predictable from their
output. The keystream is written straight into a preallocated buffer (``update_into``), which
runs at several GB/s with AES-NI; ``make bench`` reports the figure.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_BYTES = 32
_NONCE = bytes(16)  # each key masks one vector of one round: a fixed counter start is safe
_BLOCK = 16


class MaskGenerator:
    """Expands keys into uint32 masks of one length, reusing its buffers between masks."""

    def __init__(self, length: int) -> None:
        if length < 0:
            raise ValueError("mask length must be non-negative")
        self.length = length
        nbytes = 4 * length
        # update_into wants room for one extra block; the zero input is the plaintext.
        self._zeros = bytes(nbytes)
        self._out = bytearray(nbytes + _BLOCK - 1)
        self._view = np.frombuffer(self._out, dtype="<u4", count=length)

    def mask(self, key: bytes) -> np.ndarray:
        """The mask for ``key``: a view into this generator's buffer, valid until the next call."""
        if len(key) != KEY_BYTES:
            raise ValueError(f"mask keys are {KEY_BYTES} bytes, got {len(key)}")
        encryptor = Cipher(algorithms.AES(key), modes.CTR(_NONCE)).encryptor()
        encryptor.update_into(self._zeros, self._out)
        return self._view

    def add(self, target: np.ndarray, key: bytes, *, sign: int = 1) -> None:
        """``target += sign * mask(key)`` in Z_2^32 (uint32 arithmetic wraps)."""
        if sign == 1:
            np.add(target, self.mask(key), out=target)
        elif sign == -1:
            np.subtract(target, self.mask(key), out=target)
        else:
            raise ValueError("sign must be +1 or -1")
