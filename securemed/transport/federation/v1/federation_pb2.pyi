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
ROUND_PHASE_UNSPECIFIED: RoundPhase
ROUND_PHASE_WAITING: RoundPhase
ROUND_PHASE_OPEN: RoundPhase
ROUND_PHASE_FINISHED: RoundPhase

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
    __slots__ = ("hospital", "num_samples")
    HOSPITAL_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    hospital: str
    num_samples: int
    def __init__(self, hospital: _Optional[str] = ..., num_samples: _Optional[int] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("total_rounds", "current_round")
    TOTAL_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ROUND_FIELD_NUMBER: _ClassVar[int]
    total_rounds: int
    current_round: int
    def __init__(self, total_rounds: _Optional[int] = ..., current_round: _Optional[int] = ...) -> None: ...

class RoundStatusRequest(_message.Message):
    __slots__ = ("hospital", "after_round", "wait_seconds")
    HOSPITAL_FIELD_NUMBER: _ClassVar[int]
    AFTER_ROUND_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    hospital: str
    after_round: int
    wait_seconds: float
    def __init__(self, hospital: _Optional[str] = ..., after_round: _Optional[int] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class RoundStatus(_message.Message):
    __slots__ = ("round", "phase", "selected", "seconds_left", "total_rounds")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FIELD_NUMBER: _ClassVar[int]
    SECONDS_LEFT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    round: int
    phase: RoundPhase
    selected: bool
    seconds_left: float
    total_rounds: int
    def __init__(self, round: _Optional[int] = ..., phase: _Optional[_Union[RoundPhase, str]] = ..., selected: _Optional[bool] = ..., seconds_left: _Optional[float] = ..., total_rounds: _Optional[int] = ...) -> None: ...

class GlobalModelRequest(_message.Message):
    __slots__ = ("hospital", "round")
    HOSPITAL_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    hospital: str
    round: int
    def __init__(self, hospital: _Optional[str] = ..., round: _Optional[int] = ...) -> None: ...

class GlobalModel(_message.Message):
    __slots__ = ("round", "tensors")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    round: int
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    def __init__(self, round: _Optional[int] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ...) -> None: ...

class UpdateRequest(_message.Message):
    __slots__ = ("hospital", "round", "num_samples", "tensors", "epsilon", "train_seconds", "serialize_seconds", "loss")
    HOSPITAL_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SERIALIZE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    hospital: str
    round: int
    num_samples: int
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    epsilon: float
    train_seconds: float
    serialize_seconds: float
    loss: float
    def __init__(self, hospital: _Optional[str] = ..., round: _Optional[int] = ..., num_samples: _Optional[int] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., epsilon: _Optional[float] = ..., train_seconds: _Optional[float] = ..., serialize_seconds: _Optional[float] = ..., loss: _Optional[float] = ...) -> None: ...

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
