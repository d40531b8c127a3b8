from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RoundPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUND_PHASE_UNSPECIFIED: _ClassVar[RoundPhase]
    ROUND_PHASE_WAITING: _ClassVar[RoundPhase]
    ROUND_PHASE_OPEN: _ClassVar[RoundPhase]
    ROUND_PHASE_FINISHED: _ClassVar[RoundPhase]

class DeclineReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECLINE_REASON_UNSPECIFIED: _ClassVar[DeclineReason]
    DECLINE_REASON_BUDGET: _ClassVar[DeclineReason]
    DECLINE_REASON_POLICY: _ClassVar[DeclineReason]
ROUND_PHASE_UNSPECIFIED: RoundPhase
ROUND_PHASE_WAITING: RoundPhase
ROUND_PHASE_OPEN: RoundPhase
ROUND_PHASE_FINISHED: RoundPhase
DECLINE_REASON_UNSPECIFIED: DeclineReason
DECLINE_REASON_BUDGET: DeclineReason
DECLINE_REASON_POLICY: DeclineReason

class Tensor(_message.Message):
    __slots__ = ("name", "dtype", "shape", "data")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("num_samples",)
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    num_samples: int
    def __init__(self, num_samples: _Optional[int] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("total_rounds", "current_round")
    TOTAL_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ROUND_FIELD_NUMBER: _ClassVar[int]
    total_rounds: int
    current_round: int
    def __init__(self, total_rounds: _Optional[int] = ..., current_round: _Optional[int] = ...) -> None: ...

class RoundStatusRequest(_message.Message):
    __slots__ = ("after_round", "wait_seconds")
    AFTER_ROUND_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    after_round: int
    wait_seconds: float
    def __init__(self, after_round: _Optional[int] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class RoundStatus(_message.Message):
    __slots__ = ("round", "phase", "selected", "seconds_left", "total_rounds", "secure")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FIELD_NUMBER: _ClassVar[int]
    SECONDS_LEFT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    SECURE_FIELD_NUMBER: _ClassVar[int]
    round: int
    phase: RoundPhase
    selected: bool
    seconds_left: float
    total_rounds: int
    secure: SecureRound
    def __init__(self, round: _Optional[int] = ..., phase: _Optional[_Union[RoundPhase, str]] = ..., selected: _Optional[bool] = ..., seconds_left: _Optional[float] = ..., total_rounds: _Optional[int] = ..., secure: _Optional[_Union[SecureRound, _Mapping]] = ...) -> None: ...

class SecureRound(_message.Message):
    __slots__ = ("round_id", "participants", "neighbours", "threshold", "min_survivors", "clip", "bits", "norm_bound", "phase_seconds")
    ROUND_ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_SURVIVORS_FIELD_NUMBER: _ClassVar[int]
    CLIP_FIELD_NUMBER: _ClassVar[int]
    BITS_FIELD_NUMBER: _ClassVar[int]
    NORM_BOUND_FIELD_NUMBER: _ClassVar[int]
    PHASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    round_id: bytes
    participants: _containers.RepeatedScalarFieldContainer[str]
    neighbours: int
    threshold: int
    min_survivors: int
    clip: float
    bits: int
    norm_bound: float
    phase_seconds: float
    def __init__(self, round_id: _Optional[bytes] = ..., participants: _Optional[_Iterable[str]] = ..., neighbours: _Optional[int] = ..., threshold: _Optional[int] = ..., min_survivors: _Optional[int] = ..., clip: _Optional[float] = ..., bits: _Optional[int] = ..., norm_bound: _Optional[float] = ..., phase_seconds: _Optional[float] = ...) -> None: ...

class GlobalModelRequest(_message.Message):
    __slots__ = ("round",)
    ROUND_FIELD_NUMBER: _ClassVar[int]
    round: int
    def __init__(self, round: _Optional[int] = ...) -> None: ...

class GlobalModel(_message.Message):
    __slots__ = ("round", "tensors")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    round: int
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    def __init__(self, round: _Optional[int] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ...) -> None: ...

class UpdateReport(_message.Message):
    __slots__ = ("num_samples", "epsilon", "privacy_unit")
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_UNIT_FIELD_NUMBER: _ClassVar[int]
    num_samples: int
    epsilon: float
    privacy_unit: str
    def __init__(self, num_samples: _Optional[int] = ..., epsilon: _Optional[float] = ..., privacy_unit: _Optional[str] = ...) -> None: ...

class UpdateRequest(_message.Message):
    __slots__ = ("round", "tensors", "report")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    round: int
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    report: UpdateReport
    def __init__(self, round: _Optional[int] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., report: _Optional[_Union[UpdateReport, _Mapping]] = ...) -> None: ...

class UpdateReceipt(_message.Message):
    __slots__ = ("round", "received", "expected", "server_seconds")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    SERVER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    round: int
    received: int
    expected: int
    server_seconds: float
    def __init__(self, round: _Optional[int] = ..., received: _Optional[int] = ..., expected: _Optional[int] = ..., server_seconds: _Optional[float] = ...) -> None: ...

class KeyAdvert(_message.Message):
    __slots__ = ("hospital", "c_public", "s_public", "signature", "certificate_pem", "seed_commitments", "key_commitments")
    HOSPITAL_FIELD_NUMBER: _ClassVar[int]
    C_PUBLIC_FIELD_NUMBER: _ClassVar[int]
    S_PUBLIC_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    SEED_COMMITMENTS_FIELD_NUMBER: _ClassVar[int]
    KEY_COMMITMENTS_FIELD_NUMBER: _ClassVar[int]
    hospital: str
    c_public: bytes
    s_public: bytes
    signature: bytes
    certificate_pem: bytes
    seed_commitments: _containers.RepeatedScalarFieldContainer[bytes]
    key_commitments: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, hospital: _Optional[str] = ..., c_public: _Optional[bytes] = ..., s_public: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., certificate_pem: _Optional[bytes] = ..., seed_commitments: _Optional[_Iterable[bytes]] = ..., key_commitments: _Optional[_Iterable[bytes]] = ...) -> None: ...

class AdvertiseKeysRequest(_message.Message):
    __slots__ = ("round", "advert")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    ADVERT_FIELD_NUMBER: _ClassVar[int]
    round: int
    advert: KeyAdvert
    def __init__(self, round: _Optional[int] = ..., advert: _Optional[_Union[KeyAdvert, _Mapping]] = ...) -> None: ...

class NeighbourKeys(_message.Message):
    __slots__ = ("round", "adverts")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    ADVERTS_FIELD_NUMBER: _ClassVar[int]
    round: int
    adverts: _containers.RepeatedCompositeFieldContainer[KeyAdvert]
    def __init__(self, round: _Optional[int] = ..., adverts: _Optional[_Iterable[_Union[KeyAdvert, _Mapping]]] = ...) -> None: ...

class EncryptedShare(_message.Message):
    __slots__ = ("sender", "recipient", "ciphertext")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    sender: str
    recipient: str
    ciphertext: bytes
    def __init__(self, sender: _Optional[str] = ..., recipient: _Optional[str] = ..., ciphertext: _Optional[bytes] = ...) -> None: ...

class ShareKeysRequest(_message.Message):
    __slots__ = ("round", "shares")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    round: int
    shares: _containers.RepeatedCompositeFieldContainer[EncryptedShare]
    def __init__(self, round: _Optional[int] = ..., shares: _Optional[_Iterable[_Union[EncryptedShare, _Mapping]]] = ...) -> None: ...

class RoutedShares(_message.Message):
    __slots__ = ("round", "shares")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    round: int
    shares: _containers.RepeatedCompositeFieldContainer[EncryptedShare]
    def __init__(self, round: _Optional[int] = ..., shares: _Optional[_Iterable[_Union[EncryptedShare, _Mapping]]] = ...) -> None: ...

class ShareComplaint(_message.Message):
    __slots__ = ("dealer", "seed_share", "key_share", "signature")
    DEALER_FIELD_NUMBER: _ClassVar[int]
    SEED_SHARE_FIELD_NUMBER: _ClassVar[int]
    KEY_SHARE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    dealer: str
    seed_share: bytes
    key_share: bytes
    signature: bytes
    def __init__(self, dealer: _Optional[str] = ..., seed_share: _Optional[bytes] = ..., key_share: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class MaskedUpdateRequest(_message.Message):
    __slots__ = ("round", "masked", "report", "complaints")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    COMPLAINTS_FIELD_NUMBER: _ClassVar[int]
    round: int
    masked: bytes
    report: UpdateReport
    complaints: _containers.RepeatedCompositeFieldContainer[ShareComplaint]
    def __init__(self, round: _Optional[int] = ..., masked: _Optional[bytes] = ..., report: _Optional[_Union[UpdateReport, _Mapping]] = ..., complaints: _Optional[_Iterable[_Union[ShareComplaint, _Mapping]]] = ...) -> None: ...

class DeclineRequest(_message.Message):
    __slots__ = ("round", "reason")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    round: int
    reason: DeclineReason
    def __init__(self, round: _Optional[int] = ..., reason: _Optional[_Union[DeclineReason, str]] = ...) -> None: ...

class DeclineReceipt(_message.Message):
    __slots__ = ("round",)
    ROUND_FIELD_NUMBER: _ClassVar[int]
    round: int
    def __init__(self, round: _Optional[int] = ...) -> None: ...

class UnmaskRequest(_message.Message):
    __slots__ = ("round", "survivors", "dropped")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SURVIVORS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    round: int
    survivors: _containers.RepeatedScalarFieldContainer[str]
    dropped: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, round: _Optional[int] = ..., survivors: _Optional[_Iterable[str]] = ..., dropped: _Optional[_Iterable[str]] = ...) -> None: ...

class SurvivorSignature(_message.Message):
    __slots__ = ("hospital", "signature")
    HOSPITAL_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    hospital: str
    signature: bytes
    def __init__(self, hospital: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class ConfirmSurvivorsRequest(_message.Message):
    __slots__ = ("round", "confirmation")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATION_FIELD_NUMBER: _ClassVar[int]
    round: int
    confirmation: SurvivorSignature
    def __init__(self, round: _Optional[int] = ..., confirmation: _Optional[_Union[SurvivorSignature, _Mapping]] = ...) -> None: ...

class SurvivorSignatures(_message.Message):
    __slots__ = ("round", "signatures")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    round: int
    signatures: _containers.RepeatedCompositeFieldContainer[SurvivorSignature]
    def __init__(self, round: _Optional[int] = ..., signatures: _Optional[_Iterable[_Union[SurvivorSignature, _Mapping]]] = ...) -> None: ...

class UnmaskShare(_message.Message):
    __slots__ = ("owner", "kind", "share")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    owner: str
    kind: str
    share: bytes
    def __init__(self, owner: _Optional[str] = ..., kind: _Optional[str] = ..., share: _Optional[bytes] = ...) -> None: ...

class UnmaskResponse(_message.Message):
    __slots__ = ("round", "shares")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    round: int
    shares: _containers.RepeatedCompositeFieldContainer[UnmaskShare]
    def __init__(self, round: _Optional[int] = ..., shares: _Optional[_Iterable[_Union[UnmaskShare, _Mapping]]] = ...) -> None: ...
