"""The aggregator's side of a secure-aggregation round, as a state machine that does no I/O.

It routes what it cannot read and adds what it cannot unmask: masked uploads go straight into a
running total in Z_2^32 and are never stored one by one, so at no step does this object hold a
single hospital's update in the clear. An ``observer`` sees every vector it ever holds, which is
how the tests prove that. Phases close when the transport says so (everyone answered, or the
phase's deadline passed); a phase that ends with fewer than ``min_survivors`` hospitals aborts
the round with :class:`RoundAborted`.

A Byzantine hospital cannot stall the round: a share it returns is checked against its
dealer's commitments and dropped if wrong, a complaint about a dealer is judged on the signed
evidence, and either way the hospital at fault is named in :attr:`SecAggServer.culprits`. The
round completes from the honest shares while at least ``t`` remain for every secret, and is
aborted cleanly (never left open) when they do not.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from securemed.errors import (
    DuplicateSubmission,
    InvalidUpdate,
    ProtocolViolation,
    RoundAborted,
    StaleRound,
)
from securemed.secagg import crypto, feldman, shamir
from securemed.secagg.graph import neighbour_graph
from securemed.secagg.params import SecAggParams
from securemed.secagg.prg import MaskGenerator
from securemed.secagg.protocol import (
    EncryptedShare,
    KeyAdvert,
    RoundInfo,
    ShareComplaint,
    ShareKind,
    SurvivorSignature,
    UnmaskShare,
    mask_sign,
    pair_context,
    share_message,
    signed_advert_message,
    view_message,
)

Observer = Callable[[str, np.ndarray], None]


class SecAggPhase(enum.Enum):
    ADVERTISE = "advertise"
    SHARE = "share"
    MASK = "mask"
    CONSISTENCY = "consistency"
    UNMASK = "unmask"
    DONE = "done"
    ABORTED = "aborted"


_ORDER = list(SecAggPhase)


@dataclass(frozen=True)
class Culprit:
    """A hospital caught breaking the protocol, and how (names only: no data)."""

    hospital: str
    fault: str


@dataclass(frozen=True)
class UnmaskedSum:
    """The outcome of a round: the survivors' summed levels and who they are."""

    levels: np.ndarray
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]


class SecAggServer:
    """One secure sum over ``info.participants``.

    Args:
        info: the round as announced (the participants and the fresh round id).
        params: the agreed parameters.
        length: coordinates in every upload.
        observer: called with a label and every vector the server holds (tests instrument it).
    """

    def __init__(
        self,
        info: RoundInfo,
        params: SecAggParams,
        *,
        length: int,
        observer: Observer | None = None,
    ) -> None:
        if len(info.participants) != params.hospitals:
            raise ValueError("the parameters were made for another number of hospitals")
        self.info = info
        self.params = params
        self.length = length
        self.graph = neighbour_graph(info.participants, params.neighbours, seed=info.round_id)
        self._observer = observer
        self.phase = SecAggPhase.ADVERTISE
        self._adverts: dict[str, KeyAdvert] = {}
        self._declined: set[str] = set()
        self._shares: dict[str, list[EncryptedShare]] = {}
        self._uploaded: list[str] = []
        self._total = np.zeros(length, dtype=np.uint32)
        self._signatures: dict[str, SurvivorSignature] = {}
        self._unmask: dict[str, list[UnmaskShare]] = {}
        self._survivors: tuple[str, ...] = ()
        self._dropped: tuple[str, ...] = ()
        self._view = b""  # what each survivor signs in the consistency check
        #: hospitals caught breaking the protocol this round (the round's audit record)
        self.culprits: list[Culprit] = []

    # -- helpers --------------------------------------------------------------------------------

    def _observe(self, label: str, vector: np.ndarray) -> None:
        if self._observer is not None:
            self._observer(label, vector)

    def _require(self, phase: SecAggPhase, hospital: str) -> None:
        if hospital not in self.graph:
            raise ProtocolViolation(
                f"{hospital!r} is not a participant of secure round {self.info.round}"
            )
        if self.phase is SecAggPhase.ABORTED:
            raise RoundAborted(f"secure round {self.info.round} was aborted")
        if _ORDER.index(self.phase) > _ORDER.index(phase):
            raise StaleRound(
                f"the {phase.value!r} step of secure round {self.info.round} has closed; "
                "wait for the next round"
            )
        if self.phase is not phase:
            raise ProtocolViolation(
                f"secure round {self.info.round} is in its {self.phase.value!r} step, "
                f"not {phase.value!r}"
            )

    def _abort_below(self, count: int, step: str) -> None:
        if count < self.params.min_survivors:
            self.phase = SecAggPhase.ABORTED
            raise RoundAborted(
                f"secure round {self.info.round}: only {count} hospitals completed the {step} "
                f"step, fewer than the {self.params.min_survivors} needed; nothing from this "
                "round is applied"
            )

    def pending(self) -> tuple[str, ...]:
        """Who the open phase still waits for."""
        expected: Sequence[str]
        done: Collection[str]
        if self.phase is SecAggPhase.ADVERTISE:
            expected, done = self.info.participants, self._adverts.keys() | self._declined
        elif self.phase is SecAggPhase.SHARE:
            expected, done = tuple(self._adverts), self._shares.keys()
        elif self.phase is SecAggPhase.MASK:
            expected, done = tuple(self._shares), self._uploaded
        elif self.phase is SecAggPhase.CONSISTENCY:
            expected, done = self._survivors, self._signatures.keys()
        elif self.phase is SecAggPhase.UNMASK:
            expected, done = tuple(self._signatures), self._unmask.keys()
        else:
            return ()
        return tuple(name for name in expected if name not in done)

    # -- step 1: adverts ----------------------------------------------------------------------

    def receive_advert(
        self, hospital: str, advert: KeyAdvert, *, caller_certificate: bytes
    ) -> None:
        """Accept signed keys; ``caller_certificate`` is what the hospital's TLS session showed."""
        self._require(SecAggPhase.ADVERTISE, hospital)
        if advert.hospital != hospital:
            raise ProtocolViolation(
                f"keys signed for {advert.hospital!r} were sent over {hospital!r}'s connection"
            )
        if hospital in self._adverts or hospital in self._declined:
            raise DuplicateSubmission(
                f"{hospital!r} already advertised keys for, or declined, round {self.info.round}"
            )
        if advert.certificate_pem.strip() != caller_certificate.strip():
            raise ProtocolViolation(
                "the advertised certificate is not the one the connection presented"
            )
        crypto.verify_signed_by(
            caller_certificate, signed_advert_message(self.info, advert), advert.signature
        )
        advert.check_commitments(self.params.threshold)
        self._adverts[hospital] = advert

    def decline(self, hospital: str) -> None:
        """A participant sits the round out before advertising: it is not waited for, and the
        round goes on without it as without any hospital that never advertised."""
        self._require(SecAggPhase.ADVERTISE, hospital)
        if hospital in self._adverts:
            raise ProtocolViolation(
                f"{hospital!r} already advertised keys for round {self.info.round}; it can no "
                "longer decline it"
            )
        self._declined.add(hospital)

    def close_advertising(self) -> None:
        self._require(SecAggPhase.ADVERTISE, self.info.participants[0])
        self._abort_below(len(self._adverts), "key advertisement")
        self.phase = SecAggPhase.SHARE

    def adverts_for(self, hospital: str) -> list[KeyAdvert]:
        """The adverts of ``hospital``'s neighbours that advertised."""
        return [self._adverts[name] for name in self.graph[hospital] if name in self._adverts]

    # -- step 2: shares -----------------------------------------------------------------------

    def receive_shares(self, hospital: str, shares: Sequence[EncryptedShare]) -> None:
        """Accept one encrypted share for each neighbour that advertised, and nothing else."""
        self._require(SecAggPhase.SHARE, hospital)
        if hospital not in self._adverts:
            raise ProtocolViolation(
                f"{hospital!r} did not advertise keys in round {self.info.round}"
            )
        if hospital in self._shares:
            raise DuplicateSubmission(
                f"{hospital!r} already sent its shares for round {self.info.round}"
            )
        expected = {name for name in self.graph[hospital] if name in self._adverts}
        recipients = []
        for share in shares:
            if share.sender != hospital:
                raise ProtocolViolation(
                    f"a share from {share.sender!r} arrived over {hospital!r}'s connection"
                )
            if share.recipient not in self.graph[hospital]:
                raise ProtocolViolation(
                    f"{hospital!r} sent a share for {share.recipient!r}, which is not its "
                    f"neighbour in round {self.info.round}"
                )
            recipients.append(share.recipient)
        if len(recipients) != len(set(recipients)) or set(recipients) != expected:
            raise ProtocolViolation(
                f"{hospital!r} must send exactly one share to each of its {len(expected)} "
                "neighbours that advertised keys"
            )
        self._shares[hospital] = list(shares)

    def close_sharing(self) -> None:
        self._require(SecAggPhase.SHARE, self.info.participants[0])
        self._abort_below(len(self._shares), "key sharing")
        self.phase = SecAggPhase.MASK

    def shares_for(self, hospital: str) -> list[EncryptedShare]:
        """The ciphertexts addressed to ``hospital`` by hospitals that completed sharing."""
        return [
            share
            for sender, shares in self._shares.items()
            for share in shares
            if share.recipient == hospital
        ]

    # -- step 3: masked uploads ---------------------------------------------------------------

    def receive_masked(
        self, hospital: str, masked: np.ndarray, complaints: Sequence[ShareComplaint] = ()
    ) -> None:
        """Add one masked upload into the running total; the upload itself is not kept.

        ``complaints`` name the dealers whose shares failed the uploader's checks; each is
        judged on its evidence (:meth:`_judge`) and the party at fault named.
        """
        self._require(SecAggPhase.MASK, hospital)
        if hospital not in self._shares:
            raise ProtocolViolation(
                f"{hospital!r} did not share its keys in round {self.info.round}"
            )
        if hospital in self._uploaded:
            raise DuplicateSubmission(f"{hospital!r} already uploaded its masked update")
        if masked.dtype != np.uint32 or masked.shape != (self.length,):
            raise InvalidUpdate(
                f"a masked update must be {self.length} uint32 values, got {masked.dtype} "
                f"{list(masked.shape)}"
            )
        routed = {share.sender for share in self.shares_for(hospital)}
        dealers = [complaint.dealer for complaint in complaints]
        if len(set(dealers)) != len(dealers) or not set(dealers) <= routed:
            raise ProtocolViolation(
                f"{hospital!r} complained about hospitals whose shares were not routed to it, "
                "or twice about one"
            )
        self._observe("masked upload", masked)
        np.add(self._total, masked, out=self._total)
        self._observe("running total", self._total)
        self._uploaded.append(hospital)
        for complaint in complaints:
            self.culprits.append(self._judge(hospital, complaint))

    def _judge(self, holder: str, complaint: ShareComplaint) -> Culprit:
        """Who is at fault for shares ``holder`` says ``complaint.dealer`` dealt it.

        The dealer, when its signature covers shares that miss its own commitments; the
        holder, when the shares it shows are fine or not the dealer's. A share that did not
        decrypt leaves no evidence: both are named, the fault left open.
        """
        dealer = complaint.dealer
        if not complaint.signature:
            return Culprit(
                dealer,
                f"{holder!r} could not open {dealer!r}'s shares (unproven: either one may lie)",
            )
        message = share_message(
            self.info, dealer, holder, complaint.seed_share, complaint.key_share
        )
        try:
            crypto.verify_signed_by(
                self._adverts[dealer].certificate_pem, message, complaint.signature
            )
        except ProtocolViolation:
            return Culprit(holder, f"showed shares {dealer!r} never signed")
        point = self.graph[dealer].index(holder) + 1
        advert = self._adverts[dealer]
        if feldman.share_is_valid(
            complaint.seed_share, point, advert.seed_commitments
        ) and feldman.share_is_valid(complaint.key_share, point, advert.key_commitments):
            return Culprit(holder, f"complained about valid shares from {dealer!r}")
        return Culprit(dealer, f"dealt {holder!r} shares that miss its own commitments")

    def close_masking(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """End uploads; returns (survivors, dropped) for the unmask request."""
        self._require(SecAggPhase.MASK, self.info.participants[0])
        self._abort_below(len(self._uploaded), "masked upload")
        self._survivors = tuple(sorted(self._uploaded))
        self._dropped = tuple(sorted(set(self._shares) - set(self._uploaded)))
        self._view = view_message(self.info, self._survivors, self._dropped)
        self.phase = SecAggPhase.CONSISTENCY
        return self._survivors, self._dropped

    # -- step 4: consistency check ------------------------------------------------------------

    def receive_confirmation(self, hospital: str, signature: SurvivorSignature) -> None:
        """Accept a survivor's signature over the view it was given (it must be ours)."""
        self._require(SecAggPhase.CONSISTENCY, hospital)
        if hospital not in self._survivors:
            raise ProtocolViolation(f"{hospital!r} did not upload, so it has nothing to confirm")
        if hospital in self._signatures:
            raise DuplicateSubmission(f"{hospital!r} already confirmed the survivor set")
        if signature.hospital != hospital:
            raise ProtocolViolation(
                f"a confirmation signed for {signature.hospital!r} came over {hospital!r}'s "
                "connection"
            )
        crypto.verify_signed_by(
            self._adverts[hospital].certificate_pem, self._view, signature.signature
        )
        self._signatures[hospital] = signature

    def close_consistency(self) -> None:
        self._require(SecAggPhase.CONSISTENCY, self.info.participants[0])
        self._abort_below(len(self._signatures), "consistency check")
        self.phase = SecAggPhase.UNMASK

    def signatures_for(self, hospital: str) -> list[SurvivorSignature]:
        """The view signatures of ``hospital``'s neighbours (what it checks before unmasking)."""
        return [self._signatures[name] for name in self.graph[hospital] if name in self._signatures]

    # -- step 5: unmask -----------------------------------------------------------------------

    def receive_unmask(self, hospital: str, shares: Sequence[UnmaskShare]) -> None:
        """Accept a survivor's shares: seeds of surviving neighbours, keys of dropped ones."""
        self._require(SecAggPhase.UNMASK, hospital)
        if hospital not in self._signatures:
            raise ProtocolViolation(
                f"{hospital!r} did not confirm the survivor set, so it has no unmask step"
            )
        if hospital in self._unmask:
            raise DuplicateSubmission(f"{hospital!r} already sent its unmask shares")
        for share in shares:
            wanted = "seed" if share.owner in self._survivors else "key"
            if share.owner not in self.graph[hospital] or share.owner not in self._shares:
                raise ProtocolViolation(
                    f"{hospital!r} sent a share of {share.owner!r}, not its neighbour"
                )
            if share.kind != wanted:
                raise ProtocolViolation(
                    f"{hospital!r} sent a {share.kind} share of {share.owner!r}"
                )
        self._unmask[hospital] = list(shares)

    def finish(self) -> UnmaskedSum:
        """Reconstruct the secrets and remove every mask: the survivors' sum of levels.

        Raises:
            RoundAborted: too few survivors answered to reconstruct some secret.
        """
        self._require(SecAggPhase.UNMASK, self.info.participants[0])
        self._abort_below(len(self._unmask), "unmask")
        collected: dict[tuple[str, ShareKind], dict[str, bytes]] = {}
        for holder, shares in self._unmask.items():
            for share in shares:
                collected.setdefault((share.owner, share.kind), {})[holder] = share.share
        needed: list[tuple[str, ShareKind]] = [(name, "seed") for name in self._survivors]
        needed += [(name, "key") for name in self._dropped]
        secrets_ = {
            (owner, kind): self._reconstruct(owner, kind, collected.get((owner, kind), {}))
            for owner, kind in needed
        }
        total = self._total
        generator = MaskGenerator(self.length)
        for name in self._survivors:
            generator.add(total, secrets_[(name, "seed")], sign=-1)
        for name in self._dropped:
            private = secrets_[(name, "key")]
            if crypto.public_of(private) != self._adverts[name].s_public:
                self.culprits.append(Culprit(name, "shared a key other than the one it advertised"))
                self.phase = SecAggPhase.ABORTED
                raise RoundAborted(
                    f"the shares of {name!r}'s mask key do not match its advertised key"
                )
            for neighbour in self.graph[name]:
                if neighbour in self._survivors and name in self._holders_of(neighbour):
                    key = crypto.agree(
                        private,
                        self._adverts[neighbour].s_public,
                        purpose=b"mask",
                        context=pair_context(self.info, name, neighbour),
                    )
                    # the survivor added sign(neighbour, name) * mask; take it back out
                    generator.add(total, key, sign=-mask_sign(neighbour, name))
        self._observe("unmasked sum", total)
        self.phase = SecAggPhase.DONE
        return UnmaskedSum(levels=total, survivors=self._survivors, dropped=self._dropped)

    def _reconstruct(self, owner: str, kind: ShareKind, by_holder: Mapping[str, bytes]) -> bytes:
        """``owner``'s secret from its holders' shares, checked against its commitments.

        The common case costs one check of the result. When it fails, every share is checked,
        the holders of bad ones are named and left out, and the secret is rebuilt from the
        rest; too few good shares abort the round.
        """
        published = self._adverts[owner].commitments(kind)
        points = {self.graph[owner].index(holder) + 1: holder for holder in by_holder}
        shares = {point: by_holder[holder] for point, holder in points.items()}
        threshold = self.params.threshold
        if len(shares) >= threshold:
            with contextlib.suppress(ProtocolViolation):  # a malformed share: check them all
                secret = shamir.combine(shares, threshold=threshold)
                if feldman.secret_is_valid(secret, published):
                    return secret
        good = {}
        for point, share in shares.items():
            if feldman.share_is_valid(share, point, published):
                good[point] = share
            else:
                fault = f"returned a {kind} share of {owner!r} that is not the one dealt"
                self.culprits.append(Culprit(points[point], fault))
        if len(good) < threshold:
            self.phase = SecAggPhase.ABORTED
            raise RoundAborted(
                f"secure round {self.info.round}: {len(good)} valid shares of a {kind} of "
                f"{owner!r} arrived, {threshold} are needed; nothing is applied"
            )
        return shamir.combine(good, threshold=threshold)

    def _holders_of(self, hospital: str) -> set[str]:
        """The senders whose shares were routed to ``hospital`` (it masked with exactly those)."""
        return {share.sender for share in self.shares_for(hospital)}

    @property
    def adverts(self) -> Mapping[str, KeyAdvert]:
        return dict(self._adverts)

    @property
    def survivors(self) -> tuple[str, ...]:
        """Who uploaded a masked update (set when the upload step closes)."""
        return self._survivors

    @property
    def dropped(self) -> tuple[str, ...]:
        """Who shared keys but did not upload (their masks are removed via their shares)."""
        return self._dropped
