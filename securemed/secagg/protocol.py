"""The messages of a secure-aggregation round, and the bytes each party signs or authenticates.

A round (Bonawitz et al. 2017, §4, the actively secure variant, over the SecAgg+ graph of
:mod:`securemed.secagg.graph`):

1. **Advertise keys.** The aggregator opens the round with fresh random ``round_id`` bytes.
   Each selected hospital makes two X25519 pairs (``c`` for share encryption, ``s`` for masks),
   draws a self-mask seed ``b``, and fixes the polynomials that will share ``b`` and the ``s``
   private key. It sends the public keys and Feldman commitments to both polynomials, signed
   with its federation certificate's key over the round. The aggregator checks the signature
   against the certificate the hospital presented in the TLS handshake and forwards each
   hospital its neighbours' adverts (with certificates, which must be hospitals').
2. **Share keys.** Each hospital checks every neighbour's certificate and signature, and sends
   each neighbour its shares of ``b`` and of ``s``, signed, encrypted under the key agreed with
   that neighbour's ``c``. The aggregator routes ciphertexts it cannot read.
3. **Masked input.** Each hospital checks the shares it received against their dealers'
   commitments; a share that fails (or does not decrypt) is not kept, and the hospital files a
   complaint with the signed share as proof, so the aggregator can name the dealer. It uploads
   ``levels + PRG(b) + sum_v ±PRG(s_uv)`` in Z_2^32, masking with every neighbour whose shares
   were routed to it. The aggregator only adds uploads into a running total.
4. **Consistency check.** The aggregator names the survivors (uploaded) and the dropped
   (shared but did not upload). Each survivor signs exactly that view and the aggregator hands
   each one its neighbours' signatures: a hospital goes on only when at least ``t`` neighbours
   signed the very view it was given, so an aggregator that tells different hospitals
   different stories is caught before any secret is revealed.
5. **Unmask.** Each survivor answers once: for a surviving neighbour, its share of ``b``; for
   a dropped one, its share of ``s``, never both for one hospital. With ``t > k/2`` shares
   needed, no split of the neighbours gives the aggregator both secrets of anyone. It checks
   every returned share against its dealer's commitments (a bad one names its holder and is
   dropped), removes the survivors' self masks and the dropped hospitals' pairwise masks: what
   is left is the sum of the survivors' levels, exactly.

Security model: the aggregator may be actively malicious (it knows the code and the config, may
drop, delay, reorder or forge anything it relays) and may collude with fewer than ``t`` of a
hospital's neighbours; hospitals authenticate each other's keys and views by their federation
certificates, and each one enforces its own floor on n, k, t and the survivors
(:class:`securemed.hospital.HospitalPolicy`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from securemed.errors import ProtocolViolation
from securemed.secagg import feldman

ShareKind = Literal["seed", "key"]


@dataclass(frozen=True)
class RoundInfo:
    """What the aggregator announces when it opens a secure round."""

    round: int
    round_id: bytes
    participants: tuple[str, ...]


@dataclass(frozen=True)
class KeyAdvert:
    """A hospital's public keys and share commitments for one round, signed with its
    federation certificate's key."""

    hospital: str
    c_public: bytes
    s_public: bytes
    signature: bytes
    certificate_pem: bytes
    #: Feldman commitments to the polynomials sharing its seed and its mask key (t points each)
    seed_commitments: tuple[bytes, ...] = ()
    key_commitments: tuple[bytes, ...] = ()

    def commitments(self, kind: ShareKind) -> tuple[bytes, ...]:
        return self.seed_commitments if kind == "seed" else self.key_commitments

    def check_commitments(self, threshold: int) -> None:
        """Both polynomials must be committed to with exactly ``threshold`` curve points."""
        for kind in ("seed", "key"):
            published = self.commitments(kind)
            if len(published) != threshold or not feldman.points_are_valid(published):
                raise ProtocolViolation(
                    f"{self.hospital!r} advertised {len(published)} {kind} commitments; the "
                    f"round needs {threshold} valid curve points"
                )


@dataclass(frozen=True)
class EncryptedShare:
    """Shares of ``sender``'s seed and mask key for ``recipient``, AES-GCM under their key."""

    sender: str
    recipient: str
    ciphertext: bytes


@dataclass(frozen=True)
class ShareComplaint:
    """A holder's report that ``dealer``'s shares for it failed their checks.

    With the decrypted shares and the dealer's signature over them, the aggregator can prove
    the dealer at fault (the signature verifies, the shares do not match the commitments) or
    the complainer (they do). Empty when the ciphertext did not even decrypt: that cannot be
    proven either way, and is reported as such.
    """

    dealer: str
    seed_share: bytes = b""
    key_share: bytes = b""
    signature: bytes = b""


@dataclass(frozen=True)
class SurvivorSignature:
    """A survivor's signature over the view (survivors, dropped) it was asked to unmask."""

    hospital: str
    signature: bytes


@dataclass(frozen=True)
class UnmaskShare:
    """A survivor's share of one neighbour's secret: its seed (it survived) or key (dropped)."""

    owner: str
    kind: ShareKind
    share: bytes


def _field(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _round(info: RoundInfo) -> tuple[bytes, bytes]:
    return struct.pack(">q", info.round), info.round_id


def advert_message(
    info: RoundInfo,
    hospital: str,
    c_public: bytes,
    s_public: bytes,
    seed_commitments: Sequence[bytes],
    key_commitments: Sequence[bytes],
) -> bytes:
    """The bytes a hospital signs: the round (number and id), its name, both public keys and
    its commitments to both sharing polynomials."""
    return b"securemed-secagg-advert/v2" + b"".join(
        _field(part)
        for part in (
            *_round(info),
            hospital.encode(),
            c_public,
            s_public,
            _field(b"".join(_field(point) for point in seed_commitments)),
            _field(b"".join(_field(point) for point in key_commitments)),
        )
    )


def signed_advert_message(info: RoundInfo, advert: KeyAdvert) -> bytes:
    """:func:`advert_message` of a received advert, to check its signature."""
    return advert_message(
        info,
        advert.hospital,
        advert.c_public,
        advert.s_public,
        advert.seed_commitments,
        advert.key_commitments,
    )


def share_message(
    info: RoundInfo, sender: str, recipient: str, seed_share: bytes, key_share: bytes
) -> bytes:
    """What a dealer signs for each holder: the round, both names and both shares. A holder
    can show it to prove which shares the dealer handed it."""
    return b"securemed-secagg-dealt/v1" + b"".join(
        _field(part)
        for part in (*_round(info), sender.encode(), recipient.encode(), seed_share, key_share)
    )


def view_message(info: RoundInfo, survivors: Sequence[str], dropped: Sequence[str]) -> bytes:
    """What each survivor signs in the consistency check: the round and the view it was given
    (names in sorted order, so one view has one encoding)."""
    return b"securemed-secagg-view/v1" + b"".join(
        _field(part)
        for part in (
            *_round(info),
            _field(b"".join(_field(name.encode()) for name in sorted(survivors))),
            _field(b"".join(_field(name.encode()) for name in sorted(dropped))),
        )
    )


def share_context(info: RoundInfo, sender: str, recipient: str) -> bytes:
    """Associated data of an encrypted share: it belongs to this round, sender and recipient."""
    return b"securemed-secagg-share/v1" + b"".join(
        _field(part) for part in (*_round(info), sender.encode(), recipient.encode())
    )


def pair_context(info: RoundInfo, first: str, second: str) -> bytes:
    """HKDF context of the key two hospitals agree: the round and the pair, in name order."""
    low, high = sorted((first, second))
    return b"".join(_field(part) for part in (*_round(info), low.encode(), high.encode()))


def mask_sign(owner: str, neighbour: str) -> int:
    """+1 for the hospital whose name sorts first in the pair, -1 for the other: masks cancel."""
    return 1 if owner < neighbour else -1


def pack_shares(
    sender: str, recipient: str, seed_share: bytes, key_share: bytes, signature: bytes
) -> bytes:
    """Plaintext of an encrypted share: the two names again, both shares, the dealer's
    signature over them (:func:`share_message`)."""
    return b"".join(
        _field(part)
        for part in (sender.encode(), recipient.encode(), seed_share, key_share, signature)
    )


def unpack_shares(plaintext: bytes) -> tuple[str, str, bytes, bytes, bytes]:
    parts: list[bytes] = []
    offset = 0
    while offset + 4 <= len(plaintext):
        (length,) = struct.unpack_from(">I", plaintext, offset)
        offset += 4
        parts.append(plaintext[offset : offset + length])
        offset += length
    if len(parts) != 5 or offset != len(plaintext):
        raise ProtocolViolation("an encrypted share holds a malformed plaintext")
    try:
        return parts[0].decode(), parts[1].decode(), parts[2], parts[3], parts[4]
    except UnicodeDecodeError:
        raise ProtocolViolation("an encrypted share holds a malformed plaintext") from None
