#!/usr/bin/env python3
"""Producer and consumer throughput of the Python client against a running
broker.

    python sdk-python/bench/throughput.py --bootstrap 127.0.0.1:7070 \
        --records 500000 --size 1024 --partitions 3

The producer sends `--records` values of `--size` bytes in a tight loop
(`send` without waiting, then one `flush`); the consumer then iterates over
all of them (`for msg in consumer`, reading `msg.value`). Prints records/s
and MB/s for both.
"""

import argparse
import os
import sys
import time
import uuid

import tidelog


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default=os.environ.get("TIDELOG_BROKER", "127.0.0.1:7070"))
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--acks", default="all", choices=["all", "leader"])
    ap.add_argument("--compression", default="none", choices=["none", "lz4", "zstd"])
    ap.add_argument("--linger-ms", type=float, default=5.0)
    ap.add_argument("--keys", action="store_true", help="send a distinct key per record")
    ap.add_argument("--topic", default=None, help="default: a new topic")
    args = ap.parse_args()

    admin = tidelog.AdminClient(args.bootstrap)
    topic = args.topic or f"pybench-{uuid.uuid4().hex[:8]}"
    if args.topic is None:
        admin.create_topic(topic, partitions=args.partitions)
    value = os.urandom(args.size)
    n = args.records

    producer = tidelog.Producer(
        args.bootstrap, acks=args.acks, compression=args.compression, linger_ms=args.linger_ms
    )
    send = producer.send
    # Warm the metadata cache so every timed send takes the fast path.
    send(topic, value).result(30)
    t0 = time.perf_counter()
    if args.keys:
        for i in range(n):
            send(topic, value, key=str(i))
    else:
        for _ in range(n):
            send(topic, value)
    t_queued = time.perf_counter() - t0
    producer.flush()
    t_prod = time.perf_counter() - t0
    producer.close()
    print(
        f"produce: {n} records of {args.size} B in {t_prod:.2f} s = "
        f"{n / t_prod:,.0f} records/s, {n * args.size / t_prod / 1e6:,.1f} MB/s "
        f"(send loop alone {n / t_queued:,.0f} records/s; acks={args.acks}, "
        f"compression={args.compression}, partitions={args.partitions})"
    )

    total = n + 1
    consumer = tidelog.Consumer(args.bootstrap, auto_offset_reset="earliest")
    consumer.subscribe([topic])
    first = consumer.poll(30)  # connect and start the fetchers before timing
    if first is None:
        print("consumer: no records arrived", file=sys.stderr)
        return 1
    got = 1
    size = 0
    t0 = time.perf_counter()
    for msg in consumer:
        size += len(msg.value)
        got += 1
        if got >= total:
            break
    t_cons = time.perf_counter() - t0
    consumer.close()
    print(
        f"consume: {got - 1} records in {t_cons:.2f} s = {(got - 1) / t_cons:,.0f} records/s, "
        f"{size / t_cons / 1e6:,.1f} MB/s (for msg in consumer, reading msg.value)"
    )
    if args.topic is None:
        admin.delete_topic(topic)
    return 0


if __name__ == "__main__":
    sys.exit(main())
