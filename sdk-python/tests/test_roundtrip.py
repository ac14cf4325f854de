import datetime as dt
import os
import signal
import socket
import threading
import time

import pytest

import tidelog
from tidelog import Consumer, Producer, TopicPartition

UTC = dt.timezone.utc


def read_all(consumer, n, timeout=30.0):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None:
            out.append(msg)
    return out


def test_round_trip_keys_headers_timestamps(broker, topic):
    ts = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    with Producer(broker, linger_ms=1) as p:
        futs = [
            p.send(topic, b"v0", key=b"alice", headers={"trace": b"t0"}, timestamp=ts),
            p.send(topic, "v1", key="alice", headers=[("a", b"1"), ("b", "2")]),
            p.send(topic, b"v2", key=b"bob", timestamp=1_700_000_000_123),
            p.send(topic, None, key=b"tomb", partition=2),
            p.send(topic, bytearray(b"v4"), partition=1, timestamp=ts.replace(tzinfo=None)),
        ]
        metas = [f.result(timeout=30) for f in futs]
    assert all(isinstance(m, tidelog.RecordMetadata) for m in metas)
    # Same key, same partition; explicit partitions respected.
    assert metas[0].partition == metas[1].partition
    assert metas[3].partition == 2 and metas[4].partition == 1
    assert metas[0].timestamp == ts and metas[0].timestamp_ms == 1767323045678
    assert metas[4].timestamp == ts  # naive datetimes are UTC
    assert metas[1].offset == metas[0].offset + 1

    with Consumer(broker, auto_offset_reset="earliest") as c:
        c.subscribe([topic])
        assert sorted(c.assignment()) == [TopicPartition(topic, i) for i in range(3)]
        msgs = read_all(c, 5)
        assert c.poll(0.3) is None
    assert len(msgs) == 5
    by_value = {m.value: m for m in msgs}
    m0 = by_value[b"v0"]
    assert m0.topic == topic and m0.key == b"alice"
    assert m0.headers == [("trace", b"t0")]
    assert m0.timestamp == ts and m0.timestamp.tzinfo is not None
    assert m0.timestamp_ms == 1767323045678
    assert (m0.partition, m0.offset) == (metas[0].partition, metas[0].offset)
    assert m0.topic_partition == TopicPartition(topic, metas[0].partition)
    m1 = by_value[b"v1"]
    assert m1.key == b"alice" and m1.headers == [("a", b"1"), ("b", b"2")]
    m2 = by_value[b"v2"]
    assert m2.timestamp_ms == 1_700_000_000_123
    assert m2.timestamp == dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    tomb = by_value[None]
    assert tomb.key == b"tomb" and tomb.partition == 2
    assert isinstance(m0.offset, int) and isinstance(m0.partition, int)


def test_on_delivery_callbacks_and_flush(broker, topic):
    seen = []
    p = Producer(broker)
    for i in range(100):
        assert p.send(topic, b"x%d" % i, on_delivery=lambda err, md: seen.append((err, md))) is None
    p.flush(timeout=30)
    assert len(seen) == 100
    assert all(err is None and md.topic == topic for err, md in seen)
    p.close()
    with pytest.raises(tidelog.ClosedError):
        p.send(topic, b"late")


def test_manual_assign_seek_and_position(broker, make_topic):
    t = make_topic(1)
    p = Producer(broker)
    for i in range(20):
        p.send(t, b"%d" % i)
    p.flush()
    tp = TopicPartition(t, 0)
    c = Consumer(broker)
    c.assign([tp])
    c.seek(tp, 5)
    msgs = read_all(c, 3)
    assert [m.offset for m in msgs] == [5, 6, 7]
    assert c.position(tp) == 8
    assert c.seek_to_end() == {tp: 20}
    assert c.poll(0.2) is None
    assert c.seek_to_beginning([tp]) == {tp: 0}
    assert c.poll(10).value == b"0"
    batch = c.consume(100, timeout=10)
    assert 1 <= len(batch) <= 19 and batch[0].offset == 1
    c.close()
    assert c.closed


def test_seek_to_timestamp(broker, make_topic):
    t = make_topic(2)
    base = dt.datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    p = Producer(broker)
    for part in range(2):
        for i in range(10):
            p.send(t, b"%d-%d" % (part, i), partition=part, timestamp=base + dt.timedelta(minutes=i))
    p.flush()
    c = Consumer(broker)
    c.subscribe([t])
    offsets = c.seek_to_timestamp(base + dt.timedelta(minutes=7))
    assert offsets == {TopicPartition(t, 0): 7, TopicPartition(t, 1): 7}
    msgs = read_all(c, 6)
    assert sorted(m.value for m in msgs) == sorted(b"%d-%d" % (p_, i) for p_ in range(2) for i in (7, 8, 9))
    assert all(m.timestamp >= base + dt.timedelta(minutes=7) for m in msgs)
    # By ms too, one partition only.
    ms = int((base + dt.timedelta(minutes=3)).timestamp() * 1000)
    assert c.seek_to_timestamp(ms, [TopicPartition(t, 1)]) == {TopicPartition(t, 1): 3}
    assert c.poll(10).value == b"1-3"
    c.close()


def test_iteration_and_context_manager(broker, make_topic):
    t = make_topic(1)
    with Producer(broker) as p:
        for i in range(1000):
            p.send(t, b"%d" % i, key=b"k")
    got = []
    with Consumer(broker, auto_offset_reset="earliest") as c:
        c.subscribe([t])
        for msg in c:
            got.append(int(msg.value))
            if len(got) == 1000:
                break
    assert got == list(range(1000))


def test_ctrl_c_interrupts_blocking_poll(broker, make_topic):
    t = make_topic(1)
    c = Consumer(broker, auto_offset_reset="latest")
    c.subscribe([t])
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        c.poll()  # no timeout, no records: only the signal ends it
    elapsed = time.monotonic() - start
    assert elapsed < 2.0
    # The consumer still works afterwards.
    Producer(broker).send(t, b"after").result(10)
    assert c.poll(10).value == b"after"
    c.close()


def test_gil_released_while_polling(broker, make_topic):
    t = make_topic(1)
    c = Consumer(broker)
    c.subscribe([t])
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.01)

    th = threading.Thread(target=ticker)
    th.start()
    assert c.poll(1.0) is None
    stop.set()
    th.join()
    assert len(ticks) > 30
    c.close()


def test_bootstrap_list_skips_a_dead_broker(broker, make_topic):
    # Nothing listens on a port just freed: the client moves on to the next.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    t = make_topic(2)
    with Producer(f"{dead},{broker}") as p:
        meta = p.send(t, b"listed", partition=1).result(timeout=10)
    assert meta.partition == 1
    tp = TopicPartition(t, 1)
    c = Consumer([dead, broker])
    c.assign([tp])
    c.seek(tp, meta.offset)
    assert c.poll(10).value == b"listed"
    c.close()
    admin = tidelog.AdminClient([dead, broker])
    assert t in [x.name for x in admin.list_topics()]
    with pytest.raises(tidelog.errors.BrokerConnectionError) as e:
        tidelog.AdminClient([dead])
    assert dead in str(e.value)
