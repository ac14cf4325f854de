import uuid

import pytest

import tidelog
from tidelog import AdminClient, Consumer, Producer, TopicPartition, _native, errors


def test_hierarchy():
    for name in errors.__all__:
        cls = getattr(tidelog, name)
        assert issubclass(cls, tidelog.TidelogError)
    assert tidelog.NotLeaderError.retriable and tidelog.UnavailableError.retriable
    assert not tidelog.UnknownTopicError.retriable
    assert issubclass(tidelog.RequestTimeoutError, TimeoutError)
    assert issubclass(tidelog.InvalidTopicNameError, ValueError)
    assert issubclass(tidelog.BrokerConnectionError, ConnectionError)


def test_classes_follow_the_native_code_table():
    # One class per code of the Rust client, retriable exactly as it says.
    table = dict(_native.error_codes())
    assert set(errors._BY_CODE) == set(table)
    for code, cls in errors._BY_CODE.items():
        assert cls.retriable is table[code], code
    assert tidelog.BrokerConnectionError.retriable
    assert not tidelog.DataLossError.retriable
    assert issubclass(tidelog.DataLossError, tidelog.BrokerError)


def test_unknown_topic(broker, admin):
    name = f"missing-{uuid.uuid4().hex[:6]}"
    with pytest.raises(tidelog.UnknownTopicError):
        Producer(broker).send(name, b"x")
    with pytest.raises(tidelog.UnknownTopicError):
        admin.describe_topic(name)
    c = Consumer(broker)
    with pytest.raises(tidelog.UnknownTopicError):
        c.subscribe([name])
    g = Consumer(broker, group_id="g-unknown-topic")
    with pytest.raises(tidelog.UnknownTopicError):
        g.subscribe([name])


def test_record_too_large(broker, make_topic):
    t = make_topic(1, config={"max.message.bytes": 1024})
    p = Producer(broker)
    fut = p.send(t, b"x" * 10_000)
    with pytest.raises(tidelog.RecordTooLargeError):
        fut.result(timeout=30)
    assert isinstance(fut.exception(), tidelog.RecordTooLargeError)
    # The producer keeps working for records that fit.
    assert p.send(t, b"small").result(timeout=30).offset == 0
    errs = []
    p.send(t, b"y" * 10_000, on_delivery=lambda e, md: errs.append(e))
    p.flush()
    assert len(errs) == 1 and isinstance(errs[0], tidelog.RecordTooLargeError)


def test_invalid_topic_name_and_config(admin):
    with pytest.raises(tidelog.InvalidTopicNameError):
        admin.create_topic("bad name/with spaces", 1)
    with pytest.raises(tidelog.InvalidConfigError):
        admin.create_topic(f"t-{uuid.uuid4().hex[:6]}", 1, config={"no.such.key": "1"})


def test_topic_already_exists(admin, topic):
    with pytest.raises(tidelog.TopicAlreadyExistsError):
        admin.create_topic(topic, 3)


def test_topic_admin(admin):
    name = f"t-{uuid.uuid4().hex[:6]}"
    d = admin.create_topic(name, 2, config={"retention.ms": 3600000})
    assert d.name == name and len(d.partitions) == 2
    assert d.config["retention.ms"] == "3600000"
    assert (name, 2) in [(x.name, x.partitions) for x in admin.list_topics()]
    d = admin.alter_topic_config(name, set={"retention.ms": "7200000"})
    assert d.config["retention.ms"] == "7200000"
    assert admin.describe_topic(name).partitions[1].partition == 1
    admin.delete_topic(name)
    assert name not in [x.name for x in admin.list_topics()]


def test_group_not_empty(broker, topic, admin):
    group = f"g-{uuid.uuid4().hex[:6]}"
    c = Consumer(broker, group_id=group)
    c.subscribe([topic])
    with pytest.raises(tidelog.GroupNotEmptyError):
        admin.delete_group(group)
    c.close()
    # Nothing was committed: once empty, the group is gone.
    with pytest.raises(tidelog.UnknownGroupError):
        admin.delete_group(group)


def test_offset_out_of_range_without_reset(broker, make_topic):
    t = make_topic(1)
    c = Consumer(broker, auto_offset_reset="none")
    c.assign([TopicPartition(t, 0)])
    with pytest.raises(tidelog.OffsetOutOfRangeError):
        c.poll(5)


def test_invalid_requests(broker, topic):
    c = Consumer(broker)
    with pytest.raises(tidelog.InvalidRequestError):
        c.commit()
    with pytest.raises(tidelog.InvalidRequestError):
        c.poll(1)  # nothing assigned
    with pytest.raises(tidelog.InvalidRequestError):
        c.seek(TopicPartition(topic, 0), 0)  # not assigned
    g = Consumer(broker, group_id="g-invalid")
    with pytest.raises(tidelog.InvalidRequestError):
        g.assign([TopicPartition(topic, 0)])
    with pytest.raises(ValueError):
        Producer(broker, compression="gzip")


def test_connect_error():
    with pytest.raises(tidelog.BrokerConnectionError):
        Producer("127.0.0.1:1")


def test_delivery_timeout(broker, topic):
    p = Producer(broker, linger_ms=2000)
    fut = p.send(topic, b"slow")
    with pytest.raises(tidelog.RequestTimeoutError):
        fut.result(timeout=0.05)
    assert fut.result(timeout=30).offset >= 0


def test_poll_before_subscribe_and_after_close(broker, topic):
    g = Consumer(broker, group_id="g-not-subscribed")
    with pytest.raises(tidelog.InvalidRequestError):
        g.poll(0.1)
    g.close()
    with pytest.raises(tidelog.ClosedError):
        g.poll(0.1)
    assert list(g) == []  # iteration just ends
    c = Consumer(broker)
    c.subscribe([topic])
    c.close()
    with pytest.raises(tidelog.ClosedError):
        c.poll(0.1)
