"""One exception hierarchy for the whole product.

Each class names what went wrong in the domain; the transport maps them to gRPC status codes in
one place (:mod:`securemed.transport.status`). Messages say what to do and never carry PHI.
"""


class SecureMedError(Exception):
    """Base class of every error SecureMed raises on purpose."""


class ConfigError(SecureMedError):
    """A configuration value is missing, malformed or inconsistent."""


class DataError(SecureMedError):
    """A data set cannot be generated, partitioned or loaded as asked."""


class UnknownHospital(SecureMedError):
    """A request names a hospital that is not a member of the federation."""


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
