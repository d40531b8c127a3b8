"""A hospital's side of a secure-aggregation round, as a state machine that does no I/O.

The transport calls the four steps in order with what the aggregator sent; each step checks
what it received (certificates, signatures, the neighbour graph, which step comes next) and
raises :class:`ProtocolViolation` rather than help a misbehaving aggregator. A client object
serves one round; the hospital makes a new one per round, so keys never outlive their round.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import numpy as np

from securemed.errors import ProtocolViolation, RoundAborted
from securemed.pki import FederationIdentity
from securemed.secagg import crypto, shamir
from securemed.secagg.graph import neighbour_graph
from securemed.secagg.params import SecAggParams
from securemed.secagg.prg import MaskGenerator
from securemed.secagg.protocol import (
    EncryptedShare,
    KeyAdvert,
    RoundInfo,
    UnmaskShare,
    advert_message,
    mask_sign,
    pack_shares,
    pair_context,
    share_context,
    unpack_shares,
)


class SecAggClient:
    """One hospital in one round.

    Args:
        hospital: this hospital's name (the common name of its certificate).
        info: the round as the aggregator announced it.
        params: the round's agreed parameters.
        identity: the hospital's federation key (signs its adverts), certificate (sent with
            them) and CA (checks the neighbours' certificates).
    """

    def __init__(
        self,
        hospital: str,
        info: RoundInfo,
        params: SecAggParams,
        identity: FederationIdentity,
    ) -> None:
        if hospital not in info.participants:
            raise ProtocolViolation(
                f"hospital {hospital!r} is not a participant of round {info.round}"
            )
        if len(info.participants) != params.hospitals:
            raise ProtocolViolation(
                f"round {info.round} names {len(info.participants)} participants, the parameters "
                f"say {params.hospitals}"
            )
        if identity.name != hospital:
            raise ProtocolViolation(
                f"the identity given is {identity.name!r}'s, not {hospital!r}'s"
            )
        self.hospital = hospital
        self.info = info
        self.params = params
        self._identity = identity
        self.neighbours = neighbour_graph(info.participants, params.neighbours, seed=info.round_id)[
            hospital
        ]
        self._c_private, self._c_public = crypto.new_x25519()
        self._s_private, self._s_public = crypto.new_x25519()
        self._seed = secrets.token_bytes(shamir.SECRET_BYTES)
        self._adverts: dict[str, KeyAdvert] = {}
        self._held: dict[str, tuple[bytes, bytes]] = {}  # neighbour -> (seed share, key share)
        self._step = "advertise"

    def _enter(self, step: str, following: str) -> None:
        if self._step != step:
            raise ProtocolViolation(
                f"secure round {self.info.round}: expected step {self._step!r}, got {step!r}"
            )
        self._step = following

    # -- step 1 -------------------------------------------------------------------------------

    def advertise(self) -> KeyAdvert:
        """This hospital's public keys for the round, signed."""
        self._enter("advertise", "share")
        message = advert_message(self.info, self.hospital, self._c_public, self._s_public)
        return KeyAdvert(
            hospital=self.hospital,
            c_public=self._c_public,
            s_public=self._s_public,
            signature=crypto.sign(self._identity.key_pem, message),
            certificate_pem=self._identity.certificate_pem,
        )

    # -- step 2 -------------------------------------------------------------------------------

    def share(self, adverts: Sequence[KeyAdvert]) -> list[EncryptedShare]:
        """Check the neighbours' adverts and encrypt each one its shares of our two secrets."""
        self._enter("share", "mask")
        for advert in adverts:
            if advert.hospital not in self.neighbours:
                raise ProtocolViolation(
                    f"the aggregator forwarded keys of {advert.hospital!r}, which is not a "
                    f"neighbour of {self.hospital!r} in round {self.info.round}"
                )
            if advert.hospital in self._adverts:
                raise ProtocolViolation(f"keys of {advert.hospital!r} were forwarded twice")
            crypto.verify_member_certificate(
                advert.certificate_pem, self._identity.ca_pem, advert.hospital
            )
            crypto.verify_signed_by(
                advert.certificate_pem,
                advert_message(self.info, advert.hospital, advert.c_public, advert.s_public),
                advert.signature,
            )
            self._adverts[advert.hospital] = advert
        if len(self._adverts) < self.params.threshold:
            raise RoundAborted(
                f"only {len(self._adverts)} neighbours of {self.hospital!r} advertised keys; "
                f"sharing needs at least {self.params.threshold}"
            )
        recipients = sorted(self._adverts)
        points = [self.neighbours.index(name) + 1 for name in recipients]
        seed_shares = shamir.split(self._seed, threshold=self.params.threshold, points=points)
        key_shares = shamir.split(self._s_private, threshold=self.params.threshold, points=points)
        shares = []
        for name, point in zip(recipients, points, strict=True):
            key = self._channel_key(name)
            plaintext = pack_shares(self.hospital, name, seed_shares[point], key_shares[point])
            context = share_context(self.info, self.hospital, name)
            shares.append(EncryptedShare(self.hospital, name, crypto.seal(key, plaintext, context)))
        return shares

    def _channel_key(self, neighbour: str) -> bytes:
        return crypto.agree(
            self._c_private,
            self._adverts[neighbour].c_public,
            purpose=b"share",
            context=share_context(self.info, *sorted((self.hospital, neighbour))),
        )

    # -- step 3 -------------------------------------------------------------------------------

    def mask(self, levels: np.ndarray, received: Sequence[EncryptedShare]) -> np.ndarray:
        """Keep the shares the neighbours sent us and return our masked levels.

        We mask with exactly the neighbours whose shares reached us: those are the ones the
        aggregator can unmask if they drop later.
        """
        self._enter("mask", "unmask")
        if levels.dtype != np.uint32 or levels.ndim != 1:
            raise ValueError("masked input must be a 1-D uint32 vector of quantized levels")
        for item in received:
            if item.recipient != self.hospital:
                raise ProtocolViolation(
                    f"a share for {item.recipient!r} was routed to {self.hospital!r}"
                )
            if item.sender not in self._adverts:
                raise ProtocolViolation(
                    f"a share from {item.sender!r}, which is not a neighbour that advertised keys, "
                    f"was routed to {self.hospital!r}"
                )
            if item.sender in self._held:
                raise ProtocolViolation(f"two shares from {item.sender!r} were routed")
            plaintext = crypto.open_sealed(
                self._channel_key(item.sender),
                item.ciphertext,
                share_context(self.info, item.sender, self.hospital),
            )
            sender, recipient, seed_share, key_share = unpack_shares(plaintext)
            if (sender, recipient) != (item.sender, self.hospital):
                raise ProtocolViolation(
                    "an encrypted share names other hospitals than its envelope"
                )
            self._held[item.sender] = (seed_share, key_share)
        masked = levels.copy()
        generator = MaskGenerator(len(levels))
        generator.add(masked, self._seed)
        for name in self._held:
            pair_key = crypto.agree(
                self._s_private,
                self._adverts[name].s_public,
                purpose=b"mask",
                context=pair_context(self.info, self.hospital, name),
            )
            generator.add(masked, pair_key, sign=mask_sign(self.hospital, name))
        return masked

    # -- step 4 -------------------------------------------------------------------------------

    def unmask(self, survivors: Sequence[str], dropped: Sequence[str]) -> list[UnmaskShare]:
        """Reveal, once, what the aggregator needs: seeds of survivors, keys of the dropped."""
        self._enter("unmask", "done")
        alive, gone = set(survivors), set(dropped)
        if len(alive) != len(survivors) or len(gone) != len(dropped):
            raise ProtocolViolation("the aggregator named a hospital twice in the unmask request")
        if alive & gone:
            raise ProtocolViolation("the aggregator named a hospital both survived and dropped")
        strangers = (alive | gone) - set(self.info.participants)
        if strangers:
            # a padded survivor set would pass the count with fewer real sums (and, under
            # client-level DP, less noise than each hospital's share was sized for)
            raise ProtocolViolation(
                f"the aggregator named {len(strangers)} hospital(s) that are not participants "
                f"of round {self.info.round}"
            )
        if self.hospital not in alive:
            raise ProtocolViolation(f"{self.hospital!r} uploaded but is not named a survivor")
        if len(alive) < self.params.min_survivors:
            raise RoundAborted(
                f"only {len(alive)} hospitals survived; the round needs {self.params.min_survivors}"
            )
        answers = []
        for name, (seed_share, key_share) in sorted(self._held.items()):
            if name in alive:
                answers.append(UnmaskShare(name, "seed", seed_share))
            elif name in gone:
                answers.append(UnmaskShare(name, "key", key_share))
        return answers
