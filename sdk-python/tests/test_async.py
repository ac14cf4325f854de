import asyncio
import time
import uuid

import pytest

import tidelog
from tidelog import TopicPartition
from tidelog.aio import AsyncConsumer, AsyncProducer


def test_async_round_trip(broker, make_topic):
    t = make_topic(2)

    async def main():
        async with AsyncProducer(broker, linger_ms=1) as p:
            md = await p.send_and_wait(t, b"first", key=b"k", headers={"h": b"v"})
            assert isinstance(md, tidelog.RecordMetadata) and md.offset == 0
            futs = [await p.send(t, b"%d" % i) for i in range(200)]
            metas = await asyncio.gather(*futs)
            assert len({(m.partition, m.offset) for m in metas}) == 200
            await p.flush()
        async with AsyncConsumer(broker, group_id=f"g-{uuid.uuid4().hex[:6]}",
                                 auto_offset_reset="earliest") as c:
            await c.subscribe([t])
            got = []
            async for msg in c:
                got.append(msg)
                if len(got) == 201:
                    break
            await c.commit()
            assert sum((await c.committed()).values()) == 201
        first = [m for m in got if m.value == b"first"][0]
        assert first.key == b"k" and first.headers == [("h", b"v")]
        assert sorted(m.value for m in got if m.value != b"first") == sorted(b"%d" % i for i in range(200))

    asyncio.run(asyncio.wait_for(main(), 60))


def test_async_does_not_block_the_loop(broker, make_topic):
    t = make_topic(1)

    async def main():
        async with AsyncConsumer(broker, auto_offset_reset="latest") as c:
            await c.assign([TopicPartition(t, 0)])
            await c.seek_to_end()
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            tick = asyncio.ensure_future(ticker())
            getter = asyncio.ensure_future(c.getone())
            await asyncio.sleep(0.5)
            assert not getter.done()
            assert ticks >= 25  # the loop kept running while getone waited
            async with AsyncProducer(broker) as p:
                await p.send_and_wait(t, b"wake")
            msg = await asyncio.wait_for(getter, 10)
            assert msg.value == b"wake"
            tick.cancel()
            # A cancelled wait loses nothing: the record goes to the next call.
            pending = asyncio.ensure_future(c.getone())
            await asyncio.sleep(0.2)
            pending.cancel()
            async with AsyncProducer(broker) as p:
                await p.send_and_wait(t, b"kept")
            msgs = await c.getmany(10, timeout=10)
            assert [m.value for m in msgs] == [b"kept"]
            assert await c.getmany(10, timeout=0.2) == []

    asyncio.run(asyncio.wait_for(main(), 60))


def test_async_errors(broker, make_topic):
    t = make_topic(1, config={"max.message.bytes": 1024})

    async def main():
        async with AsyncProducer(broker) as p:
            with pytest.raises(tidelog.RecordTooLargeError):
                await p.send_and_wait(t, b"x" * 5000)
            with pytest.raises(tidelog.UnknownTopicError):
                await p.send(f"nope-{uuid.uuid4().hex[:6]}", b"x")

    asyncio.run(asyncio.wait_for(main(), 60))
