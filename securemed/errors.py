"""One exception hierarchy for the whole product.

Each class names what went wrong in the domain; the transport maps them to gRPC status codes in
one place (:mod:`securemed.transport.status`). Messages say what to do and never carry PHI.
"""

from __future__ import annotations


class SecureMedError(Exception):
    """Base class of every error SecureMed raises on purpose."""


class ConfigError(SecureMedError):
    """A configuration value is missing, malformed or inconsistent."""


class DataError(SecureMedError):
    """A data set cannot be generated, partitioned or loaded as asked."""


class UnknownHospital(SecureMedError):
    """A request names a hospital that is not a member of the federation."""


class CertificateRevoked(UnknownHospital):
    """A caller's certificate is on the federation CA's revocation list: whoever holds it is no
    longer a member, so every call is refused as a non-member's would be."""


class StaleRound(SecureMedError):
    """A request refers to a round that is not the one now open."""


class NotSelected(SecureMedError):
    """A hospital submitted to a round it was not selected for."""


class DuplicateSubmission(SecureMedError):
    """A hospital submitted a second update to the same round."""


class InvalidUpdate(SecureMedError):
    """An update does not match the global model (names, dtypes, shapes) or is not finite."""


class FederationFinished(SecureMedError):
    """The federation has run all its rounds and accepts no more work."""


class AggregatorUnavailable(SecureMedError):
    """The aggregator cannot be reached: not started, wrong address, or the network is down."""


class AggregationPreconditionError(SecureMedError):
    """A robust aggregation rule was asked to run where its published guarantee does not hold
    (for example Krum with n <= 2f + 2), or a combination of options would protect nothing."""


class BudgetExhausted(SecureMedError):
    """A hospital would spend more privacy than its budget allows; it must not release."""


class LedgerError(SecureMedError):
    """The privacy ledger cannot be read or written, or holds inconsistent entries."""


class AuditLogCorrupted(SecureMedError):
    """The hash chain of an audit log is broken: an entry was changed, removed or reordered."""


class ProtocolViolation(SecureMedError):
    """A secure-aggregation message breaks the protocol: bad signature, replayed round, a share
    for a hospital that is not a neighbour, a malformed ciphertext."""


class RoundAborted(SecureMedError):
    """A secure-aggregation round lost too many hospitals to reconstruct the sum; nothing from it
    is applied and the next round runs."""


class CheckpointError(SecureMedError):
    """A model checkpoint or pretrained folder cannot be used: a file is missing, its hash
    differs from the manifest (tampered or corrupted), or its weights do not fit the model."""


class Rejected(SecureMedError):
    """A refusal with a stable machine-readable ``reason`` beside the message for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type[Rejected], tuple[str, str]]:
        # pickled across processes (Ray Serve replicas) with both arguments, not just the message
        return type(self), (self.reason, str(self))


class EnvelopeRejected(Rejected):
    """A sealed report failed a check when opened."""


class ClinicianRejected(Rejected):
    """A clinician, their token or their key was refused by the registry."""


class InputRejected(Rejected):
    """A request's input cannot be served: not an image, a truncated or unsupported DICOM, a
    file over the size limit. The reason is stable (``not_an_image``, ``truncated_dicom``...);
    the message says what to send instead and never echoes the input."""
