"""The messages of a secure-aggregation round, and the bytes each party signs or authenticates.

A round (Bonawitz et al. 2017, §4, over the SecAgg+ graph of :mod:`securemed.secagg.graph`):

1. **Advertise keys.** The aggregator opens the round with fresh random ``round_id`` bytes.
   Each selected hospital makes two X25519 pairs (``c`` for share encryption, ``s`` for masks)
   and sends the public halves signed with its federation certificate's key over the round id.
   The aggregator checks the signature against the certificate the hospital presented in the
   TLS handshake and forwards each hospital its neighbours' adverts (with certificates).
2. **Share keys.** Each hospital checks every neighbour's certificate and signature, draws a
   self-mask seed ``b``, Shamir-shares ``b`` and its ``s`` private key among its neighbours, and
   encrypts each neighbour's pair of shares under the key agreed with that neighbour's ``c``.
   The aggregator routes ciphertexts it cannot read; a share for a non-neighbour is refused.
3. **Masked input.** Each hospital uploads ``levels + PRG(b) + sum_v ±PRG(s_uv)`` in Z_2^32,
   masking with every neighbour whose shares reached it. The aggregator only adds uploads into
   a running total; it never stores one.
4. **Unmask.** The aggregator names the survivors (uploaded) and the dropped (shared but did not
   upload). Each survivor answers once: for a surviving neighbour, its share of ``b``; for a
   dropped one, its share of ``s``, never both for one hospital. With ``t > k/2`` shares needed,
   no split of the neighbours gives the aggregator both secrets of anyone. It removes the
   survivors' self masks and the dropped hospitals' pairwise masks: what is left is the sum of
   the survivors' levels, exactly.

Security model: the aggregator is honest but curious: it follows the protocol (it may drop or
delay messages) and tries to learn from what it holds; hospitals' keys are authenticated by
their federation certificates, so it cannot stand in for a hospital. Each survivor answers the
unmask step once and t > k/2, so no split of one hospital's neighbours yields both of its
secrets. What this does not stop is an actively malicious aggregator that tells a hospital's
neighbours that they all dropped while they had uploaded (it would learn their mask keys and
so that hospital's update); Bonawitz et al.'s ConsistencyCheck round, where survivors sign
the survivor list, narrows that and is not implemented.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from securemed.errors import ProtocolViolation

ShareKind = Literal["seed", "key"]


@dataclass(frozen=True)
class RoundInfo:
    """What the aggregator announces when it opens a secure round."""

    round: int
    round_id: bytes
    participants: tuple[str, ...]


@dataclass(frozen=True)
class KeyAdvert:
    """A hospital's public keys for one round, signed with its federation certificate's key."""

    hospital: str
    c_public: bytes
    s_public: bytes
    signature: bytes
    certificate_pem: bytes


@dataclass(frozen=True)
class EncryptedShare:
    """Shares of ``sender``'s seed and mask key for ``recipient``, AES-GCM under their key."""

    sender: str
    recipient: str
    ciphertext: bytes


@dataclass(frozen=True)
class UnmaskShare:
    """A survivor's share of one neighbour's secret: its seed (it survived) or key (dropped)."""

    owner: str
    kind: ShareKind
    share: bytes


def _field(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def advert_message(info: RoundInfo, hospital: str, c_public: bytes, s_public: bytes) -> bytes:
    """The bytes a hospital signs: the round (number and id), its name and both public keys."""
    return b"securemed-secagg-advert/v1" + b"".join(
        _field(part)
        for part in (
            struct.pack(">q", info.round),
            info.round_id,
            hospital.encode(),
            c_public,
            s_public,
        )
    )


def share_context(info: RoundInfo, sender: str, recipient: str) -> bytes:
    """Associated data of an encrypted share: it belongs to this round, sender and recipient."""
    return b"securemed-secagg-share/v1" + b"".join(
        _field(part)
        for part in (
            struct.pack(">q", info.round),
            info.round_id,
            sender.encode(),
            recipient.encode(),
        )
    )


def pair_context(info: RoundInfo, first: str, second: str) -> bytes:
    """HKDF context of the key two hospitals agree: the round and the pair, in name order."""
    low, high = sorted((first, second))
    return b"".join(
        _field(part)
        for part in (struct.pack(">q", info.round), info.round_id, low.encode(), high.encode())
    )


def mask_sign(owner: str, neighbour: str) -> int:
    """+1 for the hospital whose name sorts first in the pair, -1 for the other: masks cancel."""
    return 1 if owner < neighbour else -1


def pack_shares(sender: str, recipient: str, seed_share: bytes, key_share: bytes) -> bytes:
    """Plaintext of an encrypted share: the two names again, then both shares."""
    return b"".join(
        _field(part) for part in (sender.encode(), recipient.encode(), seed_share, key_share)
    )


def unpack_shares(plaintext: bytes) -> tuple[str, str, bytes, bytes]:
    parts: list[bytes] = []
    offset = 0
    while offset < len(plaintext):
        (length,) = struct.unpack_from(">I", plaintext, offset)
        offset += 4
        parts.append(plaintext[offset : offset + length])
        offset += length
    if len(parts) != 4 or offset != len(plaintext):
        raise ProtocolViolation("an encrypted share holds a malformed plaintext")
    return parts[0].decode(), parts[1].decode(), parts[2], parts[3]
