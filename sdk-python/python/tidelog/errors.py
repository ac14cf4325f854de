"""The exception hierarchy of tidelog.

Every error the client raises derives from :class:`TidelogError`. Each
class maps one error code of the Rust client (``code``, e.g.
``"UNKNOWN_TOPIC"``). ``retriable`` tells whether the same call may succeed
when retried; it comes from the Rust client's code table, as in every
tidelog SDK. Retriable errors (``NotLeaderError``, ``UnavailableError``,
``RequestTimeoutError``, ``BrokerConnectionError``) are already retried
inside the client where that makes sense, so seeing one means the retries
ran out.
"""

import builtins

from ._native import error_codes as _error_codes

__all__ = [
    "TidelogError",
    "UnknownTopicError",
    "UnknownPartitionError",
    "TopicAlreadyExistsError",
    "InvalidTopicNameError",
    "InvalidConfigError",
    "RecordTooLargeError",
    "CorruptBatchError",
    "OffsetOutOfRangeError",
    "OutOfOrderSequenceError",
    "DuplicateSequenceError",
    "ProducerFencedError",
    "UnknownGroupError",
    "UnknownMemberError",
    "FencedMemberEpochError",
    "NotAssignedError",
    "GroupNotEmptyError",
    "InvalidGroupIdError",
    "InvalidRequestError",
    "NotLeaderError",
    "UnavailableError",
    "RequestTimeoutError",
    "BrokerConnectionError",
    "DecodeError",
    "ClosedError",
    "BrokerError",
    "DataLossError",
]


class TidelogError(Exception):
    """Base class of every tidelog error."""

    code = "UNKNOWN_ERROR"
    retriable = False


class UnknownTopicError(TidelogError):
    """The topic does not exist."""

    code = "UNKNOWN_TOPIC"


class UnknownPartitionError(TidelogError):
    """The partition does not exist."""

    code = "UNKNOWN_PARTITION"


class TopicAlreadyExistsError(TidelogError):
    """A topic with that name exists."""

    code = "TOPIC_ALREADY_EXISTS"


class InvalidTopicNameError(TidelogError, ValueError):
    """The topic name is not valid."""

    code = "INVALID_TOPIC_NAME"


class InvalidConfigError(TidelogError, ValueError):
    """A topic config key or value is not valid."""

    code = "INVALID_CONFIG"


class RecordTooLargeError(TidelogError):
    """A record (batch) exceeds the topic's ``max.message.bytes``."""

    code = "RECORD_TOO_LARGE"


class CorruptBatchError(TidelogError):
    """The broker found a batch corrupt."""

    code = "CORRUPT_BATCH"


class OffsetOutOfRangeError(TidelogError):
    """The offset is outside the log."""

    code = "OFFSET_OUT_OF_RANGE"


class OutOfOrderSequenceError(TidelogError):
    """The idempotent producer's sequence was rejected."""

    code = "OUT_OF_ORDER_SEQUENCE"


class DuplicateSequenceError(TidelogError):
    """A retry of a batch written long ago (older than the broker's dedupe
    window): not a loss; treat it as delivered."""

    code = "DUPLICATE_SEQUENCE_NUMBER"


class ProducerFencedError(TidelogError):
    """Another producer instance with a newer epoch took over."""

    code = "PRODUCER_FENCED"


class UnknownGroupError(TidelogError):
    """The consumer group does not exist."""

    code = "UNKNOWN_GROUP"


class UnknownMemberError(TidelogError):
    """The group member is unknown to the coordinator."""

    code = "UNKNOWN_MEMBER"


class FencedMemberEpochError(TidelogError):
    """The member's epoch is stale."""

    code = "FENCED_MEMBER_EPOCH"


class NotAssignedError(TidelogError):
    """A commit named a partition not assigned to the member."""

    code = "NOT_ASSIGNED"


class GroupNotEmptyError(TidelogError):
    """The operation needs a group without active members."""

    code = "GROUP_NOT_EMPTY"


class InvalidGroupIdError(TidelogError, ValueError):
    """The group id is not valid."""

    code = "INVALID_GROUP_ID"


class InvalidRequestError(TidelogError, ValueError):
    """A request was invalid (bad argument from the caller)."""

    code = "INVALID_REQUEST"


class NotLeaderError(TidelogError):
    """The broker does not lead the partition (retried internally)."""

    code = "NOT_LEADER"


class UnavailableError(TidelogError):
    """The broker cannot serve now (retried internally)."""

    code = "UNAVAILABLE"


class RequestTimeoutError(TidelogError, builtins.TimeoutError):
    """A call, a delivery or a flush did not finish in time."""

    code = "TIMEOUT"


class BrokerConnectionError(TidelogError, ConnectionError):
    """Could not connect to the bootstrap address."""

    code = "CONNECTION_ERROR"


class DecodeError(TidelogError):
    """A batch from the broker could not be decoded."""

    code = "DECODE_ERROR"


class ClosedError(TidelogError):
    """The producer or consumer was closed."""

    code = "CLOSED"


class BrokerError(TidelogError):
    """Any other broker-side failure."""

    code = "BROKER_ERROR"


class DataLossError(BrokerError):
    """Stored data (the broker's disk or the object store) is damaged."""

    code = "DATA_LOSS"


def _classes(cls=TidelogError):
    for sub in cls.__subclasses__():
        yield sub
        yield from _classes(sub)


# The one class of each code, and `retriable` as the Rust client decides it.
_RETRIABLE = dict(_error_codes())
_BY_CODE = {cls.code: cls for cls in _classes()}
for _cls in _BY_CODE.values():
    _cls.retriable = _RETRIABLE.get(_cls.code, False)


def _error_for(code: str, message: str) -> TidelogError:
    """The exception for a native error (called by the extension)."""
    return _BY_CODE.get(code, TidelogError)(message)
