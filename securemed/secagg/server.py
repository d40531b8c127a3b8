"""The aggregator's side of a secure-aggregation round, as a state machine that does no I/O.

It routes what it cannot read and adds what it cannot unmask: masked uploads go straight into a
running total in Z_2^32 and are never stored one by one, so at no step does this object hold a
single hospital's update in the clear. An ``observer`` sees every vector it ever holds, which is
how the tests prove that. Phases close when the transport says so (everyone answered, or the
phase's deadline passed); a phase that ends with fewer than ``min_survivors`` hospitals aborts
the round with :class:`RoundAborted`.
"""

from __future__ import annotations

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
    pair_context,
)

Observer = Callable[[str, np.ndarray], None]


class SecAggPhase(enum.Enum):
    ADVERTISE = "advertise"
    SHARE = "share"
    MASK = "mask"
    UNMASK = "unmask"
    DONE = "done"
    ABORTED = "aborted"


_ORDER = list(SecAggPhase)


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
        self._unmask: dict[str, list[UnmaskShare]] = {}
        self._survivors: tuple[str, ...] = ()
        self._dropped: tuple[str, ...] = ()

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
        elif self.phase is SecAggPhase.UNMASK:
            expected, done = self._survivors, self._unmask.keys()
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
            caller_certificate,
            advert_message(self.info, hospital, advert.c_public, advert.s_public),
            advert.signature,
        )
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

    def receive_masked(self, hospital: str, masked: np.ndarray) -> None:
        """Add one masked upload into the running total; the upload itself is not kept."""
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
        self._observe("masked upload", masked)
        np.add(self._total, masked, out=self._total)
        self._observe("running total", self._total)
        self._uploaded.append(hospital)

    def close_masking(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """End uploads; returns (survivors, dropped) for the unmask request."""
        self._require(SecAggPhase.MASK, self.info.participants[0])
        self._abort_below(len(self._uploaded), "masked upload")
        self._survivors = tuple(sorted(self._uploaded))
        self._dropped = tuple(sorted(set(self._shares) - set(self._uploaded)))
        self.phase = SecAggPhase.UNMASK
        return self._survivors, self._dropped

    # -- step 4: unmask -----------------------------------------------------------------------

    def receive_unmask(self, hospital: str, shares: Sequence[UnmaskShare]) -> None:
        """Accept a survivor's shares: seeds of surviving neighbours, keys of dropped ones."""
        self._require(SecAggPhase.UNMASK, hospital)
        if hospital not in self._survivors:
            raise ProtocolViolation(f"{hospital!r} did not upload, so it has no unmask step")
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
        collected: dict[tuple[str, str], dict[int, bytes]] = {}
        for holder, shares in self._unmask.items():
            for share in shares:
                point = self.graph[share.owner].index(holder) + 1
                collected.setdefault((share.owner, share.kind), {})[point] = share.share
        secrets_: dict[tuple[str, str], bytes] = {}
        for owner, kind in [(name, "seed") for name in self._survivors] + [
            (name, "key") for name in self._dropped
        ]:
            points = collected.get((owner, kind), {})
            if len(points) < self.params.threshold:
                self.phase = SecAggPhase.ABORTED
                raise RoundAborted(
                    f"secure round {self.info.round}: {len(points)} shares of a {kind} of "
                    f"{owner!r} arrived, {self.params.threshold} are needed; nothing is applied"
                )
            secrets_[(owner, kind)] = shamir.combine(points, threshold=self.params.threshold)
        total = self._total
        generator = MaskGenerator(self.length)
        for name in self._survivors:
            generator.add(total, secrets_[(name, "seed")], sign=-1)
        for name in self._dropped:
            private = secrets_[(name, "key")]
            if crypto.public_of(private) != self._adverts[name].s_public:
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
