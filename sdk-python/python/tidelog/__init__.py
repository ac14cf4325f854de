"""tidelog: the Python client for Tidelog, a durable streaming log.

The work happens in Rust (the ``tidelog`` crate, through the ``_native``
extension): batching, compression, partitioning, retries, fetching and
decoding. This package adds Python idioms on top.

>>> from tidelog import Producer, Consumer
>>> with Producer("127.0.0.1:7070") as p:
...     p.send("events", b"hello", key=b"user-1").result(timeout=10)
>>> with Consumer("127.0.0.1:7070", group_id="billing",
...               auto_offset_reset="earliest") as c:
...     c.subscribe(["events"])
...     for msg in c:
...         print(msg.offset, msg.key, msg.value)

Conventions: offsets are ints; timestamps are timezone-aware UTC
``datetime`` objects (``timestamp_ms`` gives the int); every function that
takes a time accepts a ``datetime`` (naive means UTC) or ms since the epoch;
timeouts are seconds (``None`` waits as long as it takes).
"""

from . import errors
from ._native import (
    DeliveryFuture,
    GroupDescription,
    GroupListing,
    GroupMember,
    Message,
    NativeAdmin as _NativeAdmin,
    NativeConsumer as _NativeConsumer,
    NativeProducer as _NativeProducer,
    OffsetResetPlan,
    PartitionInfo,
    PartitionLag,
    RecordMetadata,
    TopicDescription,
    TopicListing,
    __version__,
)
from ._types import TopicPartition
from .errors import *  # noqa: F401,F403
from .errors import TidelogError

__all__ = [
    "Producer",
    "Consumer",
    "AdminClient",
    "TopicPartition",
    "Message",
    "RecordMetadata",
    "DeliveryFuture",
    "TopicListing",
    "TopicDescription",
    "PartitionInfo",
    "GroupListing",
    "GroupDescription",
    "GroupMember",
    "PartitionLag",
    "OffsetResetPlan",
    "TidelogError",
    "errors",
    "__version__",
] + errors.__all__


class Producer(_NativeProducer):
    """Sends records to topics.

    ``Producer(bootstrap="127.0.0.1:7070", *, linger_ms=5, batch_bytes=262144,
    compression="none", acks="all", buffer_bytes=67108864,
    delivery_timeout_ms=120000, request_timeout_ms=30000)``

    ``send(topic, value=None, key=None, headers=None, partition=None,
    timestamp=None, on_delivery=None)`` queues a record and returns a
    :class:`DeliveryFuture` (``.result(timeout)`` gives the
    :class:`RecordMetadata`), or, with ``on_delivery(err, metadata)``, None:
    callbacks run on the calling thread from ``send``, ``poll`` and
    ``flush``. ``flush(timeout)`` waits for every acknowledgement;
    ``close()`` (or leaving a ``with`` block) flushes and releases it.
    Keys pick the partition with Kafka's murmur2, so a key lands on the
    same partition number as with Kafka clients.
    """

    __slots__ = ()


class Consumer(_NativeConsumer):
    """Reads records.

    ``Consumer(bootstrap="127.0.0.1:7070", *, group_id=None, auto_commit=True,
    auto_commit_interval_ms=5000, auto_offset_reset="latest",
    session_timeout_ms=10000, client_id="tidelog-python",
    max_bytes=1048576, request_timeout_ms=30000)``

    With ``group_id`` it is a member of that consumer group:
    ``subscribe(topics)`` joins, the broker's coordinator assigns
    partitions, and offsets are committed (automatically, or with
    ``commit()``). Without ``group_id``, ``assign([TopicPartition, ...])``
    or ``subscribe(topics)`` (= every partition) picks what to read and
    nothing is committed.

    Iterate (``for msg in consumer``), or ``poll(timeout)`` (None on
    timeout), or ``consume(max_records, timeout)`` for a list. Ctrl-C
    interrupts a blocking wait. Not thread-safe for concurrent use; calls
    from several threads are serialized.
    """

    __slots__ = ()


class AdminClient(_NativeAdmin):
    """Topic and consumer-group administration.

    Topics: ``create_topic(name, partitions=1, config=None)``,
    ``list_topics()``, ``describe_topic(name)``, ``delete_topic(name)``,
    ``alter_topic_config(name, set=None, delete=None)``.
    Groups: ``list_groups()``, ``describe_group(id)``, ``delete_group(id)``,
    ``reset_offsets(group_id, topic, to, *, shift_by=None,
    partitions=None, dry_run=False, force=False)`` with ``to`` one of
    ``"earliest"``, ``"latest"``, an int offset or a datetime.
    Offsets: ``list_offsets(topic, partition, spec)``.
    """

    __slots__ = ()
