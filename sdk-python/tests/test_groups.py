import datetime as dt
import threading
import time
import uuid

import pytest

import tidelog
from tidelog import AdminClient, Consumer, Producer, TopicPartition

UTC = dt.timezone.utc


def gid():
    return f"g-{uuid.uuid4().hex[:8]}"


def test_group_consumption_across_two_consumers(broker, make_topic):
    t = make_topic(4)
    group = gid()
    cfg = dict(group_id=group, auto_offset_reset="earliest", session_timeout_ms=6000)
    c1 = Consumer(broker, **cfg)
    c2 = Consumer(broker, **cfg)
    c1.subscribe([t])
    c2.subscribe([t])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        c1.poll(0.1)
        c2.poll(0.1)
        a1, a2 = set(c1.assignment()), set(c2.assignment())
        if a1 and a2 and not (a1 & a2) and len(a1 | a2) == 4:
            break
    assert a1 and a2, (a1, a2)
    assert a1 | a2 == {TopicPartition(t, i) for i in range(4)}

    n = 400
    with Producer(broker) as p:
        for i in range(n):
            p.send(t, b"%d" % i, key=b"key-%d" % i)

    got = {1: [], 2: []}
    lock = threading.Lock()
    total = [0]

    def run(idx, c):
        end = time.monotonic() + 60
        while time.monotonic() < end:
            with lock:
                if total[0] >= n:
                    return
            m = c.poll(0.2)
            if m is not None:
                with lock:
                    got[idx].append((m.partition, m.offset, m.value))
                    total[0] += 1

    threads = [threading.Thread(target=run, args=(1, c1)), threading.Thread(target=run, args=(2, c2))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    values = [v for idx in got for (_, _, v) in got[idx]]
    assert len(values) == n, (len(got[1]), len(got[2]))
    assert sorted(values) == sorted(b"%d" % i for i in range(n))  # all, once
    assert got[1] and got[2]
    parts1 = {p_ for p_, _, _ in got[1]}
    parts2 = {p_ for p_, _, _ in got[2]}
    assert not parts1 & parts2

    admin = AdminClient(broker)
    assert group in [g.group_id for g in admin.list_groups()]
    desc = admin.describe_group(group)
    assert len(desc.members) == 2
    # A group with members cannot be deleted or reset without force.
    with pytest.raises(tidelog.GroupNotEmptyError):
        admin.delete_group(group)
    with pytest.raises(tidelog.GroupNotEmptyError):
        admin.reset_offsets(group, t, "earliest")
    c1.commit()
    c2.commit()
    lag = c1.lag()
    assert set(lag) == set(c1.assignment()) and all(v == 0 for v in lag.values())
    c1.close()
    c2.close()
    desc = admin.describe_group(group)
    assert sum(p_.committed_offset or 0 for p_ in desc.partitions) == n
    admin.delete_group(group)


def test_commit_and_resume(broker, make_topic):
    t = make_topic(1)
    group = gid()
    with Producer(broker) as p:
        for i in range(10):
            p.send(t, b"%d" % i)
    c = Consumer(broker, group_id=group, auto_commit=False, auto_offset_reset="earliest")
    c.subscribe([t])
    first = [c.poll(10) for _ in range(4)]
    assert [m.offset for m in first] == [0, 1, 2, 3]
    c.commit(message=first[1])  # next offset 2
    tp = TopicPartition(t, 0)
    assert c.committed([tp]) == {tp: 2}
    c.commit(offsets={tp: 3})
    assert c.committed() == {tp: 3}
    c.close()
    c = Consumer(broker, group_id=group, auto_commit=False, auto_offset_reset="earliest")
    c.subscribe([t])
    assert c.poll(10).offset == 3
    c.close()


def test_admin_reset_offsets_to_datetime(broker, make_topic):
    t = make_topic(1)
    group = gid()
    base = dt.datetime(2026, 3, 1, tzinfo=UTC)
    with Producer(broker) as p:
        for i in range(20):
            p.send(t, b"%d" % i, timestamp=base + dt.timedelta(seconds=i))
    c = Consumer(broker, group_id=group, auto_offset_reset="earliest")
    c.subscribe([t])
    got = [c.poll(10) for _ in range(20)]
    assert [m.offset for m in got] == list(range(20))
    c.close()  # auto-commit: committed offset 20

    admin = AdminClient(broker)
    plan = admin.reset_offsets(group, t, base + dt.timedelta(seconds=12), dry_run=True)
    assert [(x.partition, x.old_offset, x.new_offset) for x in plan] == [(0, 20, 12)]
    assert admin.describe_group(group).partitions[0].committed_offset == 20
    plan = admin.reset_offsets(group, t, base + dt.timedelta(seconds=12))
    assert plan[0].new_offset == 12
    c = Consumer(broker, group_id=group)
    c.subscribe([t])
    assert [c.poll(10).offset for _ in range(8)] == list(range(12, 20))
    c.close()
    assert admin.reset_offsets(group, t, "earliest")[0].new_offset == 0
    assert admin.reset_offsets(group, t, 5)[0].new_offset == 5
    assert admin.reset_offsets(group, t, shift_by=-2)[0].new_offset == 3
    assert admin.reset_offsets(group, t, "latest")[0].new_offset == 20
    assert admin.list_offsets(t, 0, base + dt.timedelta(seconds=7))[0] == 7
    assert admin.list_offsets(t, 0, "latest") == (20, -1)


def test_interrupted_fetch_is_not_committed_or_lost(broker, make_topic):
    t = make_topic(1)
    tp = TopicPartition(t, 0)
    c = Consumer(broker, group_id=gid(), auto_commit=False, auto_offset_reset="earliest")
    c.subscribe([t])
    assert c.poll(0.5) is None  # times out; the fetch stays under way
    Producer(broker).send(t, b"arrives-late").result(10)
    time.sleep(0.5)  # the background fetch gets the record
    c.commit()  # stops the fetch: the record is not delivered, so not committed
    assert c.committed([tp]) == {tp: 0}
    msg = c.poll(10)
    assert (msg.offset, msg.value) == (0, b"arrives-late")
    c.commit()
    assert c.committed([tp]) == {tp: 1}
    assert [e[0] for e in c.rebalance_events()] == ["assigned"]
    c.close()
