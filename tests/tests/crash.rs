//! Durability: every acknowledged record survives kill -9, torn tails are
//! cut, idempotence survives restarts.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tidelog::{NewTopic, OffsetSpec, ProducerConfig, ProducerRecord, SeekTo, TopicPartition};
use tidelog_e2e::{fill_small_segments, BrokerProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_kill_9_in_order() {
    let mut broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("crash", 2).config("segment.bytes", "65536"))
        .await
        .expect("create");
    let acked: Arc<Mutex<Vec<(u32, i64, String)>>> = Arc::default();
    let producer = client.producer();
    let writer = {
        let acked = Arc::clone(&acked);
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            loop {
                let value = format!("record-{i}");
                let Ok(f) = producer
                    .enqueue(
                        ProducerRecord::new("crash", value.clone()).key(format!("k{}", i % 10)),
                    )
                    .await
                else {
                    return;
                };
                let acked = Arc::clone(&acked);
                tokio::spawn(async move {
                    if let Ok(m) = f.await {
                        acked
                            .lock()
                            .expect("lock")
                            .push((m.partition, m.offset, value));
                    }
                });
                i += 1;
                if i.is_multiple_of(200) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
    // Let it write for a while, then kill the broker mid-stream.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    broker.kill9();
    writer.abort();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > 1000,
        "producer made progress: {}",
        acked.len()
    );

    broker.start_again();
    let client = broker.client().await;
    for p in 0..2u32 {
        let mut mine: Vec<_> = acked.iter().filter(|a| a.0 == p).cloned().collect();
        mine.sort_by_key(|a| a.1);
        let Some(last) = mine.last() else { continue };
        let end = client
            .admin()
            .list_offsets("crash", p, OffsetSpec::Latest)
            .await
            .expect("latest")
            .0;
        assert!(
            end > last.1,
            "partition {p}: end {end} must cover acked offset {}",
            last.1
        );
        let tp = TopicPartition::new("crash", p);
        let mut consumer = client.consumer();
        consumer.assign([tp.clone()]);
        consumer.seek(&tp, SeekTo::Beginning).await.expect("seek");
        let mut stream = std::pin::pin!(consumer.stream());
        let mut expected = mine.iter().peekable();
        let mut prev = -1;
        while let Some(want) = expected.peek() {
            let r = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .expect("in time")
                .expect("open")
                .expect("record");
            assert_eq!(r.offset, prev + 1, "offsets dense after recovery");
            prev = r.offset;
            if r.offset == want.1 {
                assert_eq!(
                    r.value.as_deref(),
                    Some(want.2.as_bytes()),
                    "offset {}",
                    r.offset
                );
                expected.next();
            }
        }
    }
    // And the broker still accepts writes after recovery.
    client
        .producer()
        .send(ProducerRecord::new("crash", "after"))
        .await
        .expect("produce after restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_truncated_at_startup() {
    let mut broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("torn", 1))
        .await
        .expect("create");
    let producer = client.producer();
    for i in 0..100 {
        producer
            .send(ProducerRecord::new("torn", format!("v{i}")))
            .await
            .expect("send");
    }
    assert!(broker.terminate(), "clean shutdown on SIGTERM");
    // Simulate a write torn by a crash: half a batch header and garbage.
    let seg = broker
        .data_dir
        .join("topics/torn/0/00000000000000000000.log");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .expect("segment");
    f.write_all(&[0x42; 40]).expect("append garbage");
    drop(f);
    broker.start_again();
    assert!(
        broker.log().contains("truncated a torn tail"),
        "{}",
        broker.log()
    );
    let client = broker.client().await;
    let (end, _) = client
        .admin()
        .list_offsets("torn", 0, OffsetSpec::Latest)
        .await
        .expect("latest");
    assert_eq!(end, 100);
    let m = client
        .producer()
        .send(ProducerRecord::new("torn", "next"))
        .await
        .expect("send after recovery");
    assert_eq!(m.offset, 100);
    let tp = TopicPartition::new("torn", 0);
    let mut consumer = client.consumer();
    consumer.assign([tp.clone()]);
    consumer.seek(&tp, SeekTo::Offset(99)).await.expect("seek");
    let mut s = std::pin::pin!(consumer.stream());
    let a = s.next().await.expect("open").expect("record");
    let b = s.next().await.expect("open").expect("record");
    assert_eq!(a.value.as_deref(), Some(&b"v99"[..]));
    assert_eq!(b.value.as_deref(), Some(&b"next"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_index_files_are_rebuilt() {
    let mut broker = BrokerProcess::start();
    let client = broker.client().await;
    fill_small_segments(&client, "idx", &[]).await;
    assert!(broker.terminate());
    let dir = broker.data_dir.join("topics/idx/0");
    let mut damaged = 0;
    for e in std::fs::read_dir(&dir).expect("dir") {
        let p = e.expect("entry").path();
        if p.extension()
            .is_some_and(|x| x == "index" || x == "timeindex")
        {
            std::fs::write(&p, b"\x01\x02\x03").expect("damage");
            damaged += 1;
        }
    }
    assert!(damaged >= 2, "sealed segments have index files");
    broker.start_again();
    let client = broker.client().await;
    let tp = TopicPartition::new("idx", 0);
    let mut consumer = client.consumer();
    consumer.assign([tp.clone()]);
    consumer
        .seek(&tp, SeekTo::Offset(1234))
        .await
        .expect("seek");
    let r = consumer
        .stream()
        .next()
        .await
        .expect("open")
        .expect("record");
    assert_eq!(
        (r.offset, r.value.as_deref()),
        (1234, Some(&b"value-01234"[..]))
    );
}

/// A pipelined producer keeps sending while the broker is killed and
/// restarted: its stream breaks with requests in flight, it reconnects and
/// sends the window again, and the broker recognises what it already has.
/// Every record is acknowledged and lands exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_rides_through_a_broker_restart_exactly_once_in_order() {
    let mut broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("ride", 1))
        .await
        .expect("create");
    let producer = client.producer_with(ProducerConfig {
        linger: Duration::ZERO,
        batch_bytes: 4096,
        ..ProducerConfig::default()
    });
    const N: usize = 20_000;
    let writer = {
        let producer = producer.clone();
        tokio::spawn(async move {
            let mut futures = Vec::with_capacity(N);
            for i in 0..N {
                let f = producer
                    .enqueue(ProducerRecord::new("ride", format!("r{i}")).partition(0))
                    .await
                    .expect("enqueue");
                futures.push(f);
                // About a second of sending, so the restart lands mid-way.
                if i % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            futures
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    broker.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    broker.start_again();
    let futures = writer.await.expect("writer");
    producer.flush().await.expect("flush");
    let mut offsets = Vec::with_capacity(N);
    for f in futures {
        offsets.push(f.await.expect("every record acknowledged").offset);
    }
    assert!(
        offsets.windows(2).all(|w| w[1] == w[0] + 1),
        "acknowledged offsets are dense and in send order"
    );
    let client = broker.client().await;
    let end = client
        .admin()
        .list_offsets("ride", 0, OffsetSpec::Latest)
        .await
        .expect("latest")
        .0;
    assert_eq!(end, N as i64, "nothing written twice");
    let tp = TopicPartition::new("ride", 0);
    let mut consumer = client.consumer();
    consumer.assign([tp.clone()]);
    consumer.seek(&tp, SeekTo::Beginning).await.expect("seek");
    let mut stream = std::pin::pin!(consumer.stream());
    for i in 0..N {
        let r = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("record");
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.value.as_deref(), Some(format!("r{i}").as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_batch_on_local_disk_is_data_loss_not_a_bad_request() {
    use tidelog_proto::v1::{consumer_client::ConsumerClient, FetchRequest};
    let broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("rot", 1).config("remote.storage.enable", "false"))
        .await
        .expect("create");
    // Three batches, one record each: offsets 0, 1, 2.
    let producer = client.producer();
    for (i, v) in ["v0", "v1", "v2"].into_iter().enumerate() {
        let m = producer.send(ProducerRecord::new("rot", v)).await;
        assert_eq!(m.expect("send").offset, i as i64);
    }
    // Flip one byte inside the second batch, past its 57-byte header (the
    // broker reads the file through its own handle, so it sees this).
    let seg = broker
        .data_dir
        .join("topics/rot/0/00000000000000000000.log");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .expect("segment");
    let mut len = [0u8; 4];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut len, 8).expect("read length");
    let second = 12 + u64::from(u32::from_le_bytes(len));
    let mut b = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, second + 60).expect("read byte");
    std::os::unix::fs::FileExt::write_all_at(&f, &[b[0] ^ 0xff], second + 60).expect("write byte");
    drop(f);

    // Straight over gRPC to see codes and reasons.
    let mut c = ConsumerClient::connect(format!("http://{}", broker.addr))
        .await
        .expect("connect");
    let fetch = |offset| FetchRequest {
        topic: "rot".into(),
        offset,
        ..FetchRequest::default()
    };
    // From offset 0 the good first batch is served, and nothing after it.
    let r = c
        .fetch(fetch(0))
        .await
        .expect("the batch before the damage")
        .into_inner();
    assert_eq!(r.next_offset, 1);
    // From the damaged batch: DATA_LOSS naming it.
    let err = c
        .fetch(fetch(1))
        .await
        .expect_err("damaged data is not served");
    let reason = err.metadata().get(tidelog_proto::ERROR_REASON_KEY);
    assert_eq!(
        (err.code(), reason.and_then(|v| v.to_str().ok())),
        (tonic::Code::DataLoss, Some("LOCAL_DATA_LOSS")),
        "{err:?}"
    );
    assert!(
        err.message().contains("rot/0") && err.message().contains("offset 1"),
        "{}",
        err.message()
    );
    assert_eq!(broker.metric("tidelog_local_corrupt_total"), Some(1.0));
    // Past it, the log reads on.
    let r = c
        .fetch(fetch(2))
        .await
        .expect("after the damage")
        .into_inner();
    assert_eq!(r.next_offset, 3);
}

/// A sealed segment damaged in the middle is never cut short: recovery
/// finds the next intact batch, and the damaged batch's offsets are never
/// skipped silently — a read that reaches them gets DATA_LOSS naming
/// exactly their range, the records before and after stay readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_lost_from_a_damaged_sealed_segment_are_never_skipped_silently() {
    use std::os::unix::fs::FileExt;
    use tidelog_proto::v1::{consumer_client::ConsumerClient, FetchRequest};
    let mut broker = BrokerProcess::start();
    let client = broker.client().await;
    fill_small_segments(&client, "cut", &[("remote.storage.enable", "false")]).await;
    drop(client);
    assert!(broker.terminate());

    // The second segment: damage its third batch, and drop its index files
    // so recovery scans (and cuts) it.
    let dir = broker.data_dir.join("topics/cut/0");
    let mut bases: Vec<i64> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    assert!(bases.len() >= 4, "several segments: {bases:?}");
    let (b2, b3) = (bases[1], bases[2]);
    let seg = dir.join(format!("{b2:020}.log"));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .expect("segment");
    let mut pos = 0u64;
    for _ in 0..2 {
        let mut len = [0u8; 4];
        f.read_exact_at(&mut len, pos + 8).expect("length");
        pos += 12 + u64::from(u32::from_le_bytes(len));
    }
    let mut base = [0u8; 8];
    f.read_exact_at(&mut base, pos).expect("base offset");
    let lost_from = i64::from_le_bytes(base);
    let mut len = [0u8; 4];
    f.read_exact_at(&mut len, pos + 8).expect("length");
    f.read_exact_at(&mut base, pos + 12 + u64::from(u32::from_le_bytes(len)))
        .expect("next base offset");
    let lost_to = i64::from_le_bytes(base);
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, pos + 60).expect("byte");
    f.write_all_at(&[b[0] ^ 0xff], pos + 60).expect("flip");
    let size = f.metadata().expect("stat").len();
    drop(f);
    for ext in ["index", "timeindex"] {
        std::fs::remove_file(dir.join(format!("{b2:020}.{ext}"))).expect("drop index");
    }
    broker.start_again();

    let mut c = ConsumerClient::connect(format!("http://{}", broker.addr))
        .await
        .expect("connect");
    let fetch = |offset| FetchRequest {
        topic: "cut".into(),
        offset,
        ..FetchRequest::default()
    };
    let s = c.fetch(fetch(lost_from)).await.expect_err("lost offsets");
    assert_eq!(
        (s.code(), tidelog_e2e::error_reason(&s).as_str()),
        (tonic::Code::DataLoss, "LOCAL_DATA_LOSS"),
        "{}",
        s.message()
    );
    assert!(
        s.message()
            .contains(&format!("offsets {lost_from}..{lost_to}")),
        "{}",
        s.message()
    );
    assert_eq!(
        std::fs::metadata(&seg).expect("stat").len(),
        size,
        "a sealed segment is never truncated"
    );
    for from in [lost_to, b3] {
        let r = c
            .fetch(fetch(from))
            .await
            .expect("after the damage")
            .into_inner();
        assert!(!r.records.is_empty());
    }

    // A consumer from the beginning gets every record before the gap, then
    // the error: never a record from after it.
    let client = broker.client().await;
    let tp = TopicPartition::new("cut", 0);
    let mut consumer = client.consumer();
    consumer.assign([tp.clone()]);
    consumer.seek(&tp, SeekTo::Beginning).await.expect("seek");
    let mut next = 0;
    let failure = loop {
        match consumer.next_record().await.expect("assigned") {
            Ok(r) => {
                assert_eq!(r.offset, next, "no offset skipped");
                next += 1;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(next, lost_from);
    assert!(
        matches!(failure, tidelog::Error::DataLoss(_)),
        "{failure:?}"
    );
}
