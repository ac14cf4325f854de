"""The exception hierarchy of tidelog.

Every error the client raises derives from :class:`TidelogError`. Each
class maps one error of the Rust client (and, through it, one broker error
code). ``retriable`` tells whether the same call may succeed when retried;
retriable errors (``NotLeaderError``, ``UnavailableError``) are already
retried inside the client, so seeing one means the retries ran out.
"""

import builtins

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
]


class TidelogError(Exception):
    """Base class of every tidelog error."""

    retriable = False


class UnknownTopicError(TidelogError):
    """The topic does not exist."""


class UnknownPartitionError(TidelogError):
    """The partition does not exist."""


class TopicAlreadyExistsError(TidelogError):
    """A topic with that name exists."""


class InvalidTopicNameError(TidelogError, ValueError):
    """The topic name is not valid."""


class InvalidConfigError(TidelogError, ValueError):
    """A topic config key or value is not valid."""


class RecordTooLargeError(TidelogError):
    """A record (batch) exceeds the topic's ``max.message.bytes``."""


class CorruptBatchError(TidelogError):
    """The broker found a batch corrupt."""


class OffsetOutOfRangeError(TidelogError):
    """The offset is outside the log."""


class OutOfOrderSequenceError(TidelogError):
    """The idempotent producer's sequence was rejected."""


class ProducerFencedError(TidelogError):
    """Another producer instance with a newer epoch took over."""


class UnknownGroupError(TidelogError):
    """The consumer group does not exist."""


class UnknownMemberError(TidelogError):
    """The group member is unknown to the coordinator."""


class FencedMemberEpochError(TidelogError):
    """The member's epoch is stale."""


class NotAssignedError(TidelogError):
    """A commit named a partition not assigned to the member."""


class GroupNotEmptyError(TidelogError):
    """The operation needs a group without active members."""


class InvalidGroupIdError(TidelogError, ValueError):
    """The group id is not valid."""


class InvalidRequestError(TidelogError, ValueError):
    """A request was invalid (bad argument from the caller)."""


class NotLeaderError(TidelogError):
    """The broker does not lead the partition (retried internally)."""

    retriable = True


class UnavailableError(TidelogError):
    """The broker cannot serve now (retried internally)."""

    retriable = True


class RequestTimeoutError(TidelogError, builtins.TimeoutError):
    """A call, a delivery or a flush did not finish in time."""

    retriable = True


class BrokerConnectionError(TidelogError, ConnectionError):
    """Could not connect to the bootstrap address."""


class DecodeError(TidelogError):
    """A batch from the broker could not be decoded."""


class ClosedError(TidelogError):
    """The producer or consumer was closed."""


class BrokerError(TidelogError):
    """Any other broker-side failure."""
