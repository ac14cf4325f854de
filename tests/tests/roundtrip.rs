//! Produce and consume through the SDK: byte-for-byte round trip, seeks.

use std::collections::HashMap;

use bytes::Bytes;
use futures::StreamExt;
use tidelog::{
    Compression, ConsumerRecord, NewTopic, OffsetSpec, ProducerConfig, ProducerRecord, SeekTo,
    TopicPartition,
};
use tidelog_e2e::BrokerProcess;

async fn consume_n(consumer: &mut tidelog::Consumer, n: usize) -> Vec<ConsumerRecord> {
    let mut out = Vec::with_capacity(n);
    let mut stream = std::pin::pin!(consumer.stream());
    while out.len() < n {
        let r = tokio::time::timeout(std::time::Duration::from_secs(30), stream.next())
            .await
            .expect("records arrive within 30s")
            .expect("stream open")
            .expect("record");
        out.push(r);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_records_round_trip_byte_for_byte() {
    let broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("rt", 3).config("segment.bytes", "1048576"))
        .await
        .expect("create");
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let producer = client.producer_with(ProducerConfig {
            compression,
            ..ProducerConfig::default()
        });
        let n = if compression == Compression::None {
            100_000
        } else {
            10_000
        };
        let mut futures = Vec::with_capacity(n);
        let mut sent = Vec::with_capacity(n);
        for i in 0..n {
            let key = Bytes::from(format!("key-{}", i % 977));
            let value = Bytes::from(format!("value-{i}-{}", "x".repeat(i % 50)));
            let rec = ProducerRecord::new("rt", value.clone())
                .key(key.clone())
                .header("i", i.to_string())
                .header("bin", vec![0u8, 255, (i % 256) as u8])
                .timestamp(1_700_000_000_000 + i as i64);
            futures.push(producer.enqueue(rec).await.expect("enqueue"));
            sent.push((key, value, i));
        }
        let mut by_tp: HashMap<u32, Vec<(i64, usize)>> = HashMap::new();
        for (f, (_, _, i)) in futures.into_iter().zip(&sent) {
            let m = f.await.expect("acknowledged");
            by_tp.entry(m.partition).or_default().push((m.offset, *i));
        }
        // Same key, same partition; offsets per partition dense and in send order.
        for (p, list) in &by_tp {
            for w in list.windows(2) {
                assert_eq!(
                    w[1].0,
                    w[0].0 + 1,
                    "partition {p}: offsets dense and ordered"
                );
            }
        }
        let mut consumer = client.consumer();
        for (p, list) in &by_tp {
            let tp = TopicPartition::new("rt", *p);
            consumer.assign(consumer.assignment().into_iter().chain([tp.clone()]));
            consumer
                .seek(&tp, SeekTo::Offset(list[0].0))
                .await
                .expect("seek");
        }
        let got = consume_n(&mut consumer, n).await;
        let mut seen_per_p: HashMap<u32, usize> = HashMap::new();
        for r in got {
            let idx = seen_per_p.entry(r.partition).or_default();
            let (offset, i) = by_tp[&r.partition][*idx];
            *idx += 1;
            assert_eq!(r.offset, offset);
            let (key, value, _) = &sent[i];
            assert_eq!(r.key.as_ref(), Some(key));
            assert_eq!(r.value.as_ref(), Some(value));
            assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
            assert_eq!(r.headers.len(), 2);
            assert_eq!(r.headers[0], ("i".to_string(), Bytes::from(i.to_string())));
            assert_eq!(r.headers[1].1, Bytes::from(vec![0u8, 255, (i % 256) as u8]));
        }
        assert_eq!(seen_per_p.values().sum::<usize>(), n);
    }
    // Small segments: the topic rolled many of them.
    let d = client.admin().describe_topic("rt").await.expect("describe");
    assert!(d.partitions.iter().any(|p| p.segments > 1), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_by_offset_timestamp_beginning_and_end() {
    let broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("seek", 1).config("segment.bytes", "4096"))
        .await
        .expect("create");
    let producer = client.producer();
    let base_ts = 1_800_000_000_000i64;
    for i in 0..500i64 {
        producer
            .enqueue(
                ProducerRecord::new("seek", format!("v{i}"))
                    .partition(0)
                    .timestamp(base_ts + i * 10),
            )
            .await
            .expect("enqueue");
    }
    producer.flush().await.expect("flush");
    let admin = client.admin();
    assert_eq!(
        admin
            .list_offsets("seek", 0, OffsetSpec::Earliest)
            .await
            .expect("earliest")
            .0,
        0
    );
    assert_eq!(
        admin
            .list_offsets("seek", 0, OffsetSpec::Latest)
            .await
            .expect("latest")
            .0,
        500
    );
    // Timestamp between records 250 and 251 → 251.
    assert_eq!(
        admin
            .list_offsets("seek", 0, OffsetSpec::Timestamp(base_ts + 2505))
            .await
            .expect("ts"),
        (251, base_ts + 2510)
    );
    assert_eq!(
        admin
            .list_offsets("seek", 0, OffsetSpec::Timestamp(base_ts + 999_999))
            .await
            .expect("ts")
            .0,
        500,
        "after the newest record: log end"
    );

    let tp = TopicPartition::new("seek", 0);
    let mut consumer = client.consumer();
    consumer.assign([tp.clone()]);
    consumer.seek(&tp, SeekTo::Offset(123)).await.expect("seek");
    let r = consume_n(&mut consumer, 1).await;
    assert_eq!(
        (r[0].offset, r[0].value.as_deref()),
        (123, Some(&b"v123"[..]))
    );
    consumer
        .seek(&tp, SeekTo::Timestamp(base_ts + 4000))
        .await
        .expect("seek ts");
    let r = consume_n(&mut consumer, 2).await;
    assert_eq!((r[0].offset, r[1].offset), (400, 401));
    consumer
        .seek(&tp, SeekTo::Beginning)
        .await
        .expect("seek beginning");
    let r = consume_n(&mut consumer, 500).await;
    assert!(r.iter().enumerate().all(|(i, r)| r.offset == i as i64));
    // From the end: only records produced afterwards arrive.
    consumer.seek(&tp, SeekTo::End).await.expect("seek end");
    producer
        .send(ProducerRecord::new("seek", "late").partition(0))
        .await
        .expect("send");
    let r = consume_n(&mut consumer, 1).await;
    assert_eq!(
        (r[0].offset, r[0].value.as_deref()),
        (500, Some(&b"late"[..]))
    );
    // The same broker serves the unified consumer's re-delivery check.
    check_redelivery(&client).await;
}

/// Up to `n` records from a unified consumer, within 30 s.
async fn take(consumer: &mut tidelog::UnifiedConsumer, n: usize) -> Vec<ConsumerRecord> {
    let mut out = Vec::new();
    let give_up = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while out.len() < n && tokio::time::Instant::now() < give_up {
        let more = consumer.next_records_until(n - out.len(), tokio::time::sleep_until(give_up));
        out.extend(more.await.expect("records"));
    }
    out
}

/// `UnifiedConsumer::redeliver_from`: a handler failed at a record of the
/// first batch, so it and everything handed out after it come again, in
/// every partition, and nothing before it does.
async fn check_redelivery(client: &tidelog::Client) {
    let admin = client.admin();
    let topic = NewTopic::new("redeliver", 2);
    admin.create_topic(topic).await.expect("create");
    let producer = client.producer();
    let sends =
        (0..10).map(|i| producer.send(ProducerRecord::new("redeliver", "v").partition(i % 2)));
    futures::future::try_join_all(sends).await.expect("send");
    let config = tidelog::ConsumerConfig {
        auto_offset_reset: tidelog::OffsetReset::Earliest,
        ..Default::default()
    };
    let mut consumer = client.unified_consumer(tidelog::ConsumerMode::Assign(config));
    let refused = consumer.commit().await;
    assert!(
        matches!(refused, Err(tidelog::Error::InvalidRequest(_))),
        "{refused:?}"
    );
    consumer.subscribe(&["redeliver"]).await.expect("assign");
    let first = take(&mut consumer, 1).await;
    let at = first.len().min(3) - 1;
    let failed = &first[at];
    consumer
        .redeliver_from(&failed.topic, failed.partition, failed.offset)
        .await
        .expect("redeliver");
    let key = |r: &ConsumerRecord| (r.partition, r.offset);
    let done: Vec<_> = first[..at].iter().map(key).collect();
    let mut want: Vec<_> = (0..2)
        .flat_map(|p| (0..5).map(move |o| (p, o)))
        .filter(|k| !done.contains(k))
        .collect();
    let mut got: Vec<_> = take(&mut consumer, 10 - at).await.iter().map(key).collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want);
    consumer.close().await.expect("close");
    assert!(consumer.is_closed() && consumer.try_next_record().is_none());
}
