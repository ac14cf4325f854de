"""asyncio API: :class:`AsyncProducer` and :class:`AsyncConsumer`.

Nothing here blocks the event loop: sends and buffered records take the
native fast path directly; waits for the broker run on the client's Tokio
runtime and complete asyncio futures through ``loop.call_soon_threadsafe``;
the few calls without a native async path (connect, subscribe, commit,
seek, close) run in a worker thread with the GIL released.

>>> async with AsyncProducer("127.0.0.1:7070") as producer:
...     meta = await producer.send_and_wait("events", b"hi")
>>> async with AsyncConsumer("127.0.0.1:7070", group_id="g",
...                          auto_offset_reset="earliest") as consumer:
...     await consumer.subscribe(["events"])
...     async for msg in consumer:
...         ...
"""

import asyncio
from typing import Any, Dict, List, Optional, Sequence, Union

from . import Consumer, DeliveryFuture, Message, Producer, RecordMetadata, TopicPartition

__all__ = ["AsyncProducer", "AsyncConsumer"]


class AsyncProducer:
    """The asyncio producer. Takes the same arguments as
    :class:`tidelog.Producer`; connects on ``start()`` or ``async with``."""

    def __init__(self, bootstrap: Union[str, Sequence[str]] = "127.0.0.1:7070", **config: Any) -> None:
        self._bootstrap = bootstrap
        self._config = config
        self._producer: Optional[Producer] = None

    async def start(self) -> "AsyncProducer":
        if self._producer is None:
            self._producer = await asyncio.to_thread(
                Producer, self._bootstrap, **self._config
            )
        return self

    def _get(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("call `await producer.start()` (or use `async with`) first")
        return self._producer

    async def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Any = None,
        partition: Optional[int] = None,
        timestamp: Any = None,
    ) -> "asyncio.Future[RecordMetadata]":
        """Queues a record; returns an asyncio future of its
        :class:`RecordMetadata` (await it for the acknowledgement)."""
        producer = self._get()
        loop = asyncio.get_running_loop()
        handle = producer._send_async(loop, topic, value, key, headers, partition, timestamp)
        if not isinstance(handle, DeliveryFuture):
            handle = await handle  # waited for metadata or buffer room
        fut = loop.create_future()
        handle._bridge(loop, fut)
        return fut

    async def send_and_wait(self, topic: str, value: Any = None, **kwargs: Any) -> RecordMetadata:
        """Sends a record and waits for its acknowledgement."""
        return await (await self.send(topic, value, **kwargs))

    async def flush(self) -> None:
        """Waits until every record sent so far is acknowledged or failed."""
        await self._get()._flush_async(asyncio.get_running_loop())

    async def stop(self) -> None:
        """Flushes and releases the producer."""
        if self._producer is not None:
            await self.flush()
            producer, self._producer = self._producer, None
            await asyncio.to_thread(producer.close)

    close = stop

    async def __aenter__(self) -> "AsyncProducer":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


class AsyncConsumer:
    """The asyncio consumer. Takes the same arguments as
    :class:`tidelog.Consumer`; connects on ``start()`` or ``async with``.
    Iterate with ``async for msg in consumer``."""

    def __init__(self, bootstrap: Union[str, Sequence[str]] = "127.0.0.1:7070", **config: Any) -> None:
        self._bootstrap = bootstrap
        self._config = config
        self._consumer: Optional[Consumer] = None

    async def start(self) -> "AsyncConsumer":
        if self._consumer is None:
            self._consumer = await asyncio.to_thread(
                Consumer, self._bootstrap, **self._config
            )
        return self

    def _get(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("call `await consumer.start()` (or use `async with`) first")
        return self._consumer

    @property
    def consumer(self) -> Consumer:
        """The underlying synchronous consumer."""
        return self._get()

    async def subscribe(self, topics: List[str]) -> None:
        await asyncio.to_thread(self._get().subscribe, list(topics))

    async def assign(self, partitions: List[TopicPartition]) -> None:
        await asyncio.to_thread(self._get().assign, list(partitions))

    async def getone(self) -> Optional[Message]:
        """The next record (None once closed)."""
        consumer = self._get()
        msg = consumer._poll_nowait()
        if msg is not None:
            return msg
        return await consumer._next_async(asyncio.get_running_loop())

    async def getmany(
        self, max_records: int = 500, timeout: Optional[float] = None
    ) -> List[Message]:
        """Up to ``max_records`` records: those already fetched, or the
        first to arrive within ``timeout`` seconds (empty list then)."""
        consumer = self._get()
        out: List[Message] = []
        while len(out) < max_records:
            msg = consumer._poll_nowait()
            if msg is None:
                break
            out.append(msg)
        if out or max_records <= 0:
            return out
        try:
            msg = await asyncio.wait_for(self.getone(), timeout)
        except asyncio.TimeoutError:
            return out
        if msg is not None:
            out.append(msg)
            while len(out) < max_records:
                more = consumer._poll_nowait()
                if more is None:
                    break
                out.append(more)
        return out

    def __aiter__(self) -> "AsyncConsumer":
        return self

    async def __anext__(self) -> Message:
        msg = await self.getone()
        if msg is None:
            raise StopAsyncIteration
        return msg

    async def commit(self, message: Optional[Message] = None,
                     offsets: Optional[Dict[TopicPartition, int]] = None) -> None:
        await asyncio.to_thread(self._get().commit, message, offsets)

    async def committed(self, partitions: Optional[List[TopicPartition]] = None
                        ) -> Dict[TopicPartition, Optional[int]]:
        return await asyncio.to_thread(self._get().committed, partitions)

    async def seek(self, partition: TopicPartition, offset: int) -> None:
        await asyncio.to_thread(self._get().seek, partition, offset)

    async def seek_to_beginning(self, partitions: Optional[List[TopicPartition]] = None
                                ) -> Dict[TopicPartition, int]:
        return await asyncio.to_thread(self._get().seek_to_beginning, partitions)

    async def seek_to_end(self, partitions: Optional[List[TopicPartition]] = None
                          ) -> Dict[TopicPartition, int]:
        return await asyncio.to_thread(self._get().seek_to_end, partitions)

    async def seek_to_timestamp(self, when: Any, partitions: Optional[List[TopicPartition]] = None
                                ) -> Dict[TopicPartition, int]:
        return await asyncio.to_thread(self._get().seek_to_timestamp, when, partitions)

    async def assignment(self) -> List[TopicPartition]:
        return await asyncio.to_thread(self._get().assignment)

    async def stop(self) -> None:
        """Commits (with auto-commit), leaves the group and stops."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await asyncio.to_thread(consumer.close)

    close = stop

    async def __aenter__(self) -> "AsyncConsumer":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
