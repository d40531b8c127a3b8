"""A hospital's side of a secure-aggregation round, as a state machine that does no I/O.

The transport calls the five steps in order with what the aggregator sent; each step checks
what it received (certificates, signatures, the neighbour graph, which step comes next) and
raises :class:`ProtocolViolation` rather than help a misbehaving aggregator. What another
hospital got wrong (a share that does not decrypt or does not match its dealer's commitments)
is not a reason to stop: the share is not kept and a complaint goes with the upload. A client
object serves one round; the hospital makes a new one per round, so keys never outlive it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from securemed.errors import ProtocolViolation, RoundAborted
from securemed.pki import FederationIdentity
from securemed.secagg import crypto, feldman, shamir
from securemed.secagg.graph import neighbour_graph
from securemed.secagg.params import SecAggParams
from securemed.secagg.prg import MaskGenerator
from securemed.secagg.protocol import (
    EncryptedShare,
    KeyAdvert,
    RoundInfo,
    ShareComplaint,
    SurvivorSignature,
    UnmaskShare,
    advert_message,
    mask_sign,
    pack_shares,
    pair_context,
    share_context,
    share_message,
    signed_advert_message,
    unpack_shares,
    view_message,
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
        self._graph = neighbour_graph(info.participants, params.neighbours, seed=info.round_id)
        self.neighbours = self._graph[hospital]
        self._c_private, self._c_public = crypto.new_x25519()
        # both secrets are field elements, so that their shares can be checked (Feldman)
        self._s_private = shamir.random_secret()
        self._s_public = crypto.public_of(self._s_private)
        self._polynomials = {
            kind: shamir.Polynomial.for_secret(secret, threshold=params.threshold)
            for kind, secret in (("seed", shamir.random_secret()), ("key", self._s_private))
        }
        self._adverts: dict[str, KeyAdvert] = {}
        self._routed: list[str] = []  # senders whose shares reached us: we mask with them
        self._held: dict[str, tuple[bytes, bytes]] = {}  # neighbour -> (seed share, key share)
        self._view: tuple[frozenset[str], frozenset[str]] | None = None
        self.complaints: list[ShareComplaint] = []
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
        seed_commitments = feldman.commitments(self._polynomials["seed"])
        key_commitments = feldman.commitments(self._polynomials["key"])
        message = advert_message(
            self.info,
            self.hospital,
            self._c_public,
            self._s_public,
            seed_commitments,
            key_commitments,
        )
        return KeyAdvert(
            hospital=self.hospital,
            c_public=self._c_public,
            s_public=self._s_public,
            signature=crypto.sign(self._identity.key_pem, message),
            certificate_pem=self._identity.certificate_pem,
            seed_commitments=seed_commitments,
            key_commitments=key_commitments,
        )

    # -- step 2 -------------------------------------------------------------------------------

    def share(self, adverts: Sequence[KeyAdvert]) -> list[EncryptedShare]:
        """Check the neighbours' adverts and send each one its signed shares of our two
        secrets, encrypted for it."""
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
                advert.certificate_pem, signed_advert_message(self.info, advert), advert.signature
            )
            advert.check_commitments(self.params.threshold)
            self._adverts[advert.hospital] = advert
        if len(self._adverts) < self.params.threshold:
            raise RoundAborted(
                f"only {len(self._adverts)} neighbours of {self.hospital!r} advertised keys; "
                f"sharing needs at least {self.params.threshold}"
            )
        shares = []
        for name in sorted(self._adverts):
            point = self.neighbours.index(name) + 1
            seed_share = self._polynomials["seed"].share(point)
            key_share = self._polynomials["key"].share(point)
            signature = crypto.sign(
                self._identity.key_pem,
                share_message(self.info, self.hospital, name, seed_share, key_share),
            )
            plaintext = pack_shares(self.hospital, name, seed_share, key_share, signature)
            context = share_context(self.info, self.hospital, name)
            sealed = crypto.seal(self._channel_key(name), plaintext, context)
            shares.append(EncryptedShare(self.hospital, name, sealed))
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
        """Keep the neighbours' shares that check out and return our masked levels.

        We mask with exactly the neighbours whose shares were routed to us (the aggregator
        knows who they are, and removes those masks if the neighbour drops). A share that does
        not decrypt, is not signed by its dealer or does not match the dealer's commitments is
        not kept, and a complaint is filed (:attr:`complaints`): the round can still finish
        from the dealer's other holders.
        """
        self._enter("mask", "confirm")
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
            if item.sender in self._routed:
                raise ProtocolViolation(f"two shares from {item.sender!r} were routed")
            self._routed.append(item.sender)
            complaint = self._keep_share(item)
            if complaint is not None:
                self.complaints.append(complaint)
        masked = levels.copy()
        generator = MaskGenerator(len(levels))
        generator.add(masked, self._polynomials["seed"].secret)
        for name in self._routed:
            pair_key = crypto.agree(
                self._s_private,
                self._adverts[name].s_public,
                purpose=b"mask",
                context=pair_context(self.info, self.hospital, name),
            )
            generator.add(masked, pair_key, sign=mask_sign(self.hospital, name))
        return masked

    def _keep_share(self, item: EncryptedShare) -> ShareComplaint | None:
        """Open, authenticate and verify one dealer's shares; a complaint if they fail."""
        dealer = item.sender
        try:
            plaintext = crypto.open_sealed(
                self._channel_key(dealer),
                item.ciphertext,
                share_context(self.info, dealer, self.hospital),
            )
            sender, recipient, seed_share, key_share, signature = unpack_shares(plaintext)
        except ProtocolViolation:
            return ShareComplaint(dealer)  # nothing the aggregator could check
        if (sender, recipient) != (dealer, self.hospital):
            return ShareComplaint(dealer)
        message = share_message(self.info, dealer, self.hospital, seed_share, key_share)
        try:
            crypto.verify_signed_by(self._adverts[dealer].certificate_pem, message, signature)
        except ProtocolViolation:
            return ShareComplaint(dealer)
        point = self._graph[dealer].index(self.hospital) + 1
        advert = self._adverts[dealer]
        if not (
            feldman.share_is_valid(seed_share, point, advert.seed_commitments)
            and feldman.share_is_valid(key_share, point, advert.key_commitments)
        ):
            return ShareComplaint(dealer, seed_share, key_share, signature)
        self._held[dealer] = (seed_share, key_share)
        return None

    # -- step 4 -------------------------------------------------------------------------------

    def confirm(self, survivors: Sequence[str], dropped: Sequence[str]) -> SurvivorSignature:
        """Check the view the aggregator asks us to unmask and sign it (consistency check)."""
        self._enter("confirm", "unmask")
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
        self._view = (frozenset(alive), frozenset(gone))
        message = view_message(self.info, survivors, dropped)
        return SurvivorSignature(self.hospital, crypto.sign(self._identity.key_pem, message))

    # -- step 5 -------------------------------------------------------------------------------

    def unmask(self, signatures: Sequence[SurvivorSignature]) -> list[UnmaskShare]:
        """Reveal, once, what the aggregator needs: seeds of survivors, keys of the dropped.

        Only after at least ``t`` surviving neighbours signed the very view we signed: an
        aggregator that told some neighbours another story (to collect both secrets of one
        hospital from two groups of holders) is caught here, before anything is revealed.
        """
        self._enter("unmask", "done")
        assert self._view is not None
        alive, gone = self._view
        message = view_message(self.info, sorted(alive), sorted(gone))
        signers: set[str] = set()
        for item in signatures:
            if item.hospital not in self.neighbours or item.hospital not in alive:
                raise ProtocolViolation(
                    f"the aggregator forwarded a view signature of {item.hospital!r}, not a "
                    f"surviving neighbour of {self.hospital!r}"
                )
            if item.hospital in signers:
                raise ProtocolViolation(f"two view signatures of {item.hospital!r} were forwarded")
            try:
                crypto.verify_signed_by(
                    self._adverts[item.hospital].certificate_pem, message, item.signature
                )
            except (KeyError, ProtocolViolation):
                raise ProtocolViolation(
                    f"{item.hospital!r} did not sign the survivor set {self.hospital!r} was given: "
                    "the aggregator told hospitals different survivor sets; nothing is revealed"
                ) from None
            signers.add(item.hospital)
        if len(signers) < self.params.threshold:
            raise RoundAborted(
                f"only {len(signers)} neighbours of {self.hospital!r} confirmed the survivor set; "
                f"{self.params.threshold} are needed before any share is revealed"
            )
        answers = []
        for name, (seed_share, key_share) in sorted(self._held.items()):
            if name in alive:
                answers.append(UnmaskShare(name, "seed", seed_share))
            elif name in gone:
                answers.append(UnmaskShare(name, "key", key_share))
        return answers
