"""Protobuf messages ↔ the core's secure-aggregation and report types."""

from __future__ import annotations

import numpy as np

from securemed.errors import InvalidUpdate, ProtocolViolation
from securemed.federation.coordinator import HospitalReport
from securemed.federation.secure_round import SecureAssignment
from securemed.secagg.params import SecAggParams
from securemed.secagg.protocol import (
    EncryptedShare,
    KeyAdvert,
    RoundInfo,
    ShareComplaint,
    SurvivorSignature,
    UnmaskShare,
)
from securemed.transport.federation.v1 import federation_pb2 as pb


def assignment_to_proto(assignment: SecureAssignment) -> pb.SecureRound:
    params = assignment.params
    return pb.SecureRound(
        round_id=assignment.info.round_id,
        participants=list(assignment.info.participants),
        neighbours=params.neighbours,
        threshold=params.threshold,
        min_survivors=params.min_survivors,
        clip=params.clip,
        bits=params.bits,
        norm_bound=assignment.norm_bound or 0.0,
        phase_seconds=assignment.phase_seconds,
    )


def assignment_from_proto(message: pb.SecureRound, round_number: int) -> SecureAssignment:
    """Rebuild (and re-check) what the aggregator announced; bad parameters are refused."""
    params = SecAggParams(
        hospitals=len(message.participants),
        neighbours=message.neighbours,
        threshold=message.threshold,
        min_survivors=message.min_survivors,
        clip=message.clip,
        bits=message.bits,
    )
    params.check()
    return SecureAssignment(
        info=RoundInfo(
            round=round_number,
            round_id=message.round_id,
            participants=tuple(message.participants),
        ),
        params=params,
        norm_bound=message.norm_bound or None,
        phase_seconds=message.phase_seconds,
    )


def advert_to_proto(advert: KeyAdvert) -> pb.KeyAdvert:
    return pb.KeyAdvert(
        hospital=advert.hospital,
        c_public=advert.c_public,
        s_public=advert.s_public,
        signature=advert.signature,
        certificate_pem=advert.certificate_pem,
        seed_commitments=list(advert.seed_commitments),
        key_commitments=list(advert.key_commitments),
    )


def advert_from_proto(message: pb.KeyAdvert) -> KeyAdvert:
    return KeyAdvert(
        hospital=message.hospital,
        c_public=message.c_public,
        s_public=message.s_public,
        signature=message.signature,
        certificate_pem=message.certificate_pem,
        seed_commitments=tuple(message.seed_commitments),
        key_commitments=tuple(message.key_commitments),
    )


def share_to_proto(share: EncryptedShare) -> pb.EncryptedShare:
    return pb.EncryptedShare(
        sender=share.sender, recipient=share.recipient, ciphertext=share.ciphertext
    )


def share_from_proto(message: pb.EncryptedShare) -> EncryptedShare:
    return EncryptedShare(message.sender, message.recipient, message.ciphertext)


def complaint_to_proto(complaint: ShareComplaint) -> pb.ShareComplaint:
    return pb.ShareComplaint(
        dealer=complaint.dealer,
        seed_share=complaint.seed_share,
        key_share=complaint.key_share,
        signature=complaint.signature,
    )


def complaint_from_proto(message: pb.ShareComplaint) -> ShareComplaint:
    return ShareComplaint(message.dealer, message.seed_share, message.key_share, message.signature)


def signature_to_proto(signature: SurvivorSignature) -> pb.SurvivorSignature:
    return pb.SurvivorSignature(hospital=signature.hospital, signature=signature.signature)


def signature_from_proto(message: pb.SurvivorSignature) -> SurvivorSignature:
    return SurvivorSignature(message.hospital, message.signature)


def unmask_share_to_proto(share: UnmaskShare) -> pb.UnmaskShare:
    return pb.UnmaskShare(owner=share.owner, kind=share.kind, share=share.share)


def unmask_share_from_proto(message: pb.UnmaskShare) -> UnmaskShare:
    if message.kind not in ("seed", "key"):
        raise ProtocolViolation(f"an unmask share must be of a seed or a key, not {message.kind!r}")
    return UnmaskShare(message.owner, "seed" if message.kind == "seed" else "key", message.share)


def masked_to_bytes(masked: np.ndarray) -> bytes:
    return masked.astype("<u4", copy=False).tobytes()


def masked_from_bytes(data: bytes) -> np.ndarray:
    """A masked upload: little-endian uint32 words."""
    if len(data) % 4:
        raise InvalidUpdate(f"a masked update must be whole uint32 words, got {len(data)} bytes")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def report_to_proto(report: HospitalReport) -> pb.UpdateReport:
    message = pb.UpdateReport(num_samples=report.num_samples, privacy_unit=report.privacy_unit)
    if report.epsilon is not None:
        message.epsilon = report.epsilon
    return message


def report_from_proto(message: pb.UpdateReport, *, update_bytes: int) -> HospitalReport:
    if message.privacy_unit not in ("record", "patient", ""):
        raise InvalidUpdate(
            f"privacy_unit must be 'record' or 'patient', not {message.privacy_unit!r}"
        )
    return HospitalReport(
        num_samples=message.num_samples,
        epsilon=message.epsilon if message.HasField("epsilon") else None,
        privacy_unit=message.privacy_unit or "record",
        update_bytes=update_bytes,
    )
