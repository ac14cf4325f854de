"""Type stubs of the native extension (`tidelog._native`)."""

import asyncio
import datetime
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from ._types import TopicPartition
from .errors import TidelogError

__version__: str

def error_codes() -> List[Tuple[str, bool]]:
    """Every client error code with whether it is retriable (the Rust table)."""
    ...

BytesLike = Union[bytes, bytearray, memoryview, str]
Headers = Union[Mapping[str, BytesLike], Sequence[Tuple[str, BytesLike]]]
TimeLike = Union[datetime.datetime, int]
PartitionLike = Union[TopicPartition, Tuple[str, int]]
DeliveryCallback = Callable[[Optional[TidelogError], Optional["RecordMetadata"]], Any]

class RecordMetadata:
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp_ms(self) -> int: ...
    @property
    def timestamp(self) -> datetime.datetime: ...
    @property
    def topic_partition(self) -> TopicPartition: ...

class Message:
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp_ms(self) -> int: ...
    @property
    def timestamp(self) -> datetime.datetime: ...
    @property
    def key(self) -> Optional[bytes]: ...
    @property
    def value(self) -> Optional[bytes]: ...
    @property
    def headers(self) -> List[Tuple[str, bytes]]: ...
    @property
    def topic_partition(self) -> TopicPartition: ...

class DeliveryFuture:
    def result(self, timeout: Optional[float] = None) -> RecordMetadata: ...
    def exception(self, timeout: Optional[float] = None) -> Optional[TidelogError]: ...
    def done(self) -> bool: ...
    def _bridge(self, event_loop: asyncio.AbstractEventLoop, fut: "asyncio.Future[RecordMetadata]") -> None: ...

class NativeProducer:
    def __new__(
        cls,
        bootstrap: Union[str, Sequence[str]] = "127.0.0.1:7070",
        *,
        linger_ms: float = 5.0,
        batch_bytes: int = 262144,
        compression: str = "none",
        acks: Union[str, int, None] = None,
        buffer_bytes: int = 67108864,
        delivery_timeout_ms: float = 120000.0,
        request_timeout_ms: float = 30000.0,
    ) -> "NativeProducer": ...
    def send(
        self,
        topic: str,
        value: Optional[BytesLike] = None,
        key: Optional[BytesLike] = None,
        headers: Optional[Headers] = None,
        partition: Optional[int] = None,
        timestamp: Optional[TimeLike] = None,
        on_delivery: Optional[DeliveryCallback] = None,
    ) -> Optional[DeliveryFuture]: ...
    def poll(self, timeout: Optional[float] = 0.0) -> int: ...
    def flush(self, timeout: Optional[float] = None) -> None: ...
    def close(self, timeout: Optional[float] = None) -> None: ...
    @property
    def producer_id(self) -> int: ...
    def __enter__(self) -> "NativeProducer": ...
    def __exit__(self, *args: Any) -> bool: ...
    def _send_async(self, event_loop: asyncio.AbstractEventLoop, topic: str, value: Any = None,
                    key: Any = None, headers: Any = None, partition: Optional[int] = None,
                    timestamp: Any = None) -> Union[DeliveryFuture, "asyncio.Future[DeliveryFuture]"]: ...
    def _flush_async(self, event_loop: asyncio.AbstractEventLoop) -> "asyncio.Future[None]": ...

class NativeConsumer:
    def __new__(
        cls,
        bootstrap: Union[str, Sequence[str]] = "127.0.0.1:7070",
        *,
        group_id: Optional[str] = None,
        auto_commit: bool = True,
        auto_commit_interval_ms: float = 5000.0,
        auto_offset_reset: str = "latest",
        session_timeout_ms: float = 10000.0,
        client_id: str = "tidelog-python",
        max_bytes: int = 1048576,
        request_timeout_ms: float = 30000.0,
    ) -> "NativeConsumer": ...
    @property
    def is_group_member(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def subscribe(self, topics: List[str]) -> None: ...
    def assign(self, partitions: Iterable[PartitionLike]) -> None: ...
    def assignment(self) -> List[TopicPartition]: ...
    def poll(self, timeout: Optional[float] = None) -> Optional[Message]: ...
    def consume(self, max_records: int = 500, timeout: Optional[float] = None) -> List[Message]: ...
    def __iter__(self) -> Iterator[Message]: ...
    def __next__(self) -> Message: ...
    def commit(
        self,
        message: Optional[Message] = None,
        offsets: Optional[Union[Mapping[PartitionLike, int], Iterable[Tuple[PartitionLike, int]]]] = None,
        asynchronous: bool = False,
    ) -> None: ...
    def committed(self, partitions: Optional[Iterable[PartitionLike]] = None) -> Dict[TopicPartition, Optional[int]]: ...
    def position(self, partition: PartitionLike) -> Optional[int]: ...
    def lag(self) -> Dict[TopicPartition, int]: ...
    def rebalance_events(self) -> List[Tuple[str, List[TopicPartition]]]: ...
    def seek(self, partition: PartitionLike, offset: int) -> None: ...
    def seek_to_beginning(self, partitions: Optional[Iterable[PartitionLike]] = None) -> Dict[TopicPartition, int]: ...
    def seek_to_end(self, partitions: Optional[Iterable[PartitionLike]] = None) -> Dict[TopicPartition, int]: ...
    def seek_to_timestamp(self, when: TimeLike, partitions: Optional[Iterable[PartitionLike]] = None) -> Dict[TopicPartition, int]: ...
    def close(self) -> None: ...
    def __enter__(self) -> "NativeConsumer": ...
    def __exit__(self, *args: Any) -> bool: ...
    def _poll_nowait(self) -> Optional[Message]: ...
    def _next_async(self, event_loop: asyncio.AbstractEventLoop) -> "asyncio.Future[Optional[Message]]": ...
    def _rewind(self, message: Message) -> None: ...

class TopicListing:
    name: str
    partitions: int

class PartitionInfo:
    partition: int
    log_start_offset: int
    log_end_offset: int
    size_bytes: int
    segments: int
    leader: int

class TopicDescription:
    name: str
    config: Dict[str, str]
    partitions: List[PartitionInfo]

class GroupListing:
    group_id: str
    state: str
    members: int

class GroupMember:
    member_id: str
    client_id: str
    member_epoch: int
    topics: List[str]
    assignment: List[TopicPartition]

class PartitionLag:
    topic: str
    partition: int
    committed_offset: Optional[int]
    log_end_offset: int
    lag: int
    owner: Optional[str]
    metadata: str

class GroupDescription:
    group_id: str
    state: str
    group_epoch: int
    members: List[GroupMember]
    partitions: List[PartitionLag]

class OffsetResetPlan:
    topic: str
    partition: int
    old_offset: Optional[int]
    new_offset: int

class NativeAdmin:
    def __new__(cls, bootstrap: Union[str, Sequence[str]] = "127.0.0.1:7070", *, request_timeout_ms: float = 30000.0) -> "NativeAdmin": ...
    def create_topic(self, name: str, partitions: int = 1, config: Optional[Mapping[str, Any]] = None) -> TopicDescription: ...
    def list_topics(self) -> List[TopicListing]: ...
    def describe_topic(self, name: str) -> TopicDescription: ...
    def delete_topic(self, name: str) -> None: ...
    def alter_topic_config(self, name: str, set: Optional[Mapping[str, Any]] = None,
                           delete: Optional[List[str]] = None) -> TopicDescription: ...
    def list_groups(self) -> List[GroupListing]: ...
    def describe_group(self, group_id: str) -> GroupDescription: ...
    def delete_group(self, group_id: str) -> None: ...
    def reset_offsets(
        self,
        group_id: str,
        topic: str,
        to: Union[str, int, datetime.datetime, None] = None,
        *,
        shift_by: Optional[int] = None,
        partitions: Optional[List[int]] = None,
        dry_run: bool = False,
        force: bool = False,
    ) -> List[OffsetResetPlan]: ...
    def commit_group_offsets(self, group_id: str, offsets: Mapping[PartitionLike, int]) -> None: ...
    def list_offsets(self, topic: str, partition: int, spec: Union[str, TimeLike]) -> Tuple[int, int]: ...
