//! Tiered storage end to end: the real broker against a real S3-compatible
//! server (`moto_server`, behind a TCP proxy the tests can cut) and against
//! the default `file://` directory.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use tidelog::{
    ConsumerRecord, NewTopic, OffsetSpec, ProducerConfig, ProducerRecord, SeekTo, TopicPartition,
};
use tidelog_e2e::{tidelog_cmd, BrokerProcess, S3Server};

const BUCKET: &str = "tidelog-test";

fn s3_env(s3: &S3Server, prefix: &str) -> Vec<(String, String)> {
    let mut env = s3.env();
    env.push((
        "TIDELOG_OBJECT_STORE".into(),
        format!("s3://{BUCKET}/{prefix}"),
    ));
    env.push(("TIDELOG_TIERING_UPLOAD_INTERVAL_MS".into(), "200".into()));
    env.push(("TIDELOG_TIERING_MAX_BACKOFF_MS".into(), "1000".into()));
    env.push(("TIDELOG_RETENTION_CHECK_INTERVAL_MS".into(), "200".into()));
    env.push(("TIDELOG_REMOTE_CHUNK_BYTES".into(), "4096".into()));
    env
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn value(i: usize) -> Bytes {
    Bytes::from(format!("value-{i:06}-{}", "t".repeat(i % 70)))
}

/// Produces records `from..to` to partition 0 of `topic` in small batches
/// (so they spread over many small segments).
async fn produce(client: &tidelog::Client, topic: &str, from: usize, to: usize) {
    let producer = client.producer_with(ProducerConfig {
        batch_bytes: 1024,
        ..ProducerConfig::default()
    });
    let mut acks = Vec::new();
    for i in from..to {
        let rec = ProducerRecord::new(topic, value(i))
            .key(format!("k{i}"))
            .partition(0)
            .timestamp(1_700_000_000_000 + i as i64);
        acks.push(producer.enqueue(rec).await.expect("enqueue"));
    }
    producer.flush().await.expect("flush");
    for (i, a) in acks.into_iter().enumerate() {
        let meta = a.await.expect("acknowledged");
        assert_eq!(meta.offset, (from + i) as i64, "offsets are dense");
    }
}

/// Reads `n` records of partition 0 from offset 0 and checks each one
/// byte for byte.
async fn check_all_from_zero(client: &tidelog::Client, topic: &str, n: usize) {
    let tp = TopicPartition::new(topic, 0);
    let mut consumer = client.consumer();
    consumer.assign([tp.clone()]);
    let at = consumer.seek(&tp, SeekTo::Offset(0)).await.expect("seek 0");
    assert_eq!(at, 0);
    let mut got: Vec<ConsumerRecord> = Vec::with_capacity(n);
    let mut stream = std::pin::pin!(consumer.stream());
    while got.len() < n {
        let r = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("records arrive within 30s")
            .expect("stream open")
            .expect("record");
        got.push(r);
    }
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.value.as_ref(), Some(&value(i)), "value of offset {i}");
        assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
        assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
    }
}

async fn wait_for<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn partition0(client: &tidelog::Client, topic: &str) -> tidelog::PartitionInfo {
    client
        .admin()
        .describe_topic(topic)
        .await
        .expect("describe")
        .partitions[0]
        .clone()
}

fn local_log_files(broker: &BrokerProcess, topic: &str) -> usize {
    std::fs::read_dir(broker.data_dir.join("topics").join(topic).join("0"))
        .expect("partition dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .count()
}

fn tiered_topic(name: &str) -> NewTopic {
    NewTopic::new(name, 1)
        .config("segment.bytes", "4096")
        .config("local.retention.bytes", "0")
        // The records carry 2023 timestamps: keep them in the bucket.
        .config("retention.ms", "-1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_segments_move_to_s3_and_every_offset_reads_back() {
    let s3 = S3Server::start(BUCKET);
    let env = s3_env(&s3, "c1");
    let broker = BrokerProcess::start_with_env(&as_refs(&env));
    let client = broker.client().await;
    client
        .admin()
        .create_topic(tiered_topic("tier"))
        .await
        .expect("create");
    let n = 3000;
    produce(&client, "tier", 0, n).await;
    // Everything sealed goes to the bucket and leaves local disk.
    wait_for("upload and local deletion", 60, || async {
        let p = partition0(&client, "tier").await;
        p.remote_segments >= 10 && p.segments == 1 && p.local_start_offset == p.remote_end_offset
    })
    .await;
    let p = partition0(&client, "tier").await;
    assert_eq!(p.log_start_offset, 0, "the bucket holds the log from 0");
    assert_eq!(p.remote_start_offset, 0);
    assert!(p.local_start_offset > 0, "{p:?}");
    assert_eq!(
        local_log_files(&broker, "tier"),
        1,
        "only the active segment is local"
    );
    assert_eq!(s3.list(BUCKET, "c1/cluster.json"), ["c1/cluster.json"]);
    let keys = s3.list(BUCKET, "c1/topics/tier/");
    assert!(
        keys.iter().any(|k| k.ends_with("/0/manifest.json")),
        "{keys:?}"
    );
    let logs = keys.iter().filter(|k| k.ends_with(".log")).count();
    assert_eq!(logs as u32, p.remote_segments, "{keys:?}");

    // Every offset reads back from 0, across the bucket into local data.
    check_all_from_zero(&client, "tier", n).await;
    // Timestamp lookups find records that only the bucket holds.
    let (off, ts) = client
        .admin()
        .list_offsets("tier", 0, OffsetSpec::Timestamp(1_700_000_000_000 + 17))
        .await
        .expect("offset for timestamp");
    assert_eq!((off, ts), (17, 1_700_000_000_017));
    // A second pass hits the chunk cache.
    check_all_from_zero(&client, "tier", n).await;
    assert!(
        broker
            .metric("tidelog_tiering_uploaded_segments_total")
            .unwrap_or(0.0)
            >= 10.0
    );
    assert!(
        broker
            .metric("tidelog_tiering_remote_read_bytes_total")
            .unwrap_or(0.0)
            > 0.0
    );
    assert!(
        broker
            .metric("tidelog_tiering_cache_hits_total")
            .unwrap_or(0.0)
            > 0.0
    );
    assert!(broker
        .metric("tidelog_tiering_prefetch_hits_total")
        .is_some());
    let (code, body) = broker.http_get("/readyz").expect("readyz");
    assert_eq!(code, 200);
    assert!(body.contains("tiering: ok"), "{body}");

    // describe in the CLI shows both ranges.
    let out = broker.cli(&["topic", "describe", "tier"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("remote_offsets"), "{text}");
    assert!(
        text.contains(&format!("0..{}", p.remote_end_offset)),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_file_store_beside_the_data_dir_works_too() {
    let broker = BrokerProcess::start_with_env(&[
        ("TIDELOG_TIERING_UPLOAD_INTERVAL_MS", "200"),
        ("TIDELOG_RETENTION_CHECK_INTERVAL_MS", "200"),
    ]);
    let client = broker.client().await;
    client
        .admin()
        .create_topic(tiered_topic("local"))
        .await
        .expect("create");
    let n = 1500;
    produce(&client, "local", 0, n).await;
    wait_for("upload and local deletion", 60, || async {
        let p = partition0(&client, "local").await;
        p.remote_segments >= 5 && p.segments == 1
    })
    .await;
    let bucket = broker.data_dir.with_file_name("data-bucket");
    let topic_dir = bucket.join("topics").join("local");
    let incarnation = std::fs::read_dir(&topic_dir)
        .expect("bucket topic dir")
        .flatten()
        .next()
        .expect("incarnation dir")
        .path();
    assert!(incarnation.join("0/manifest.json").exists());
    assert!(bucket.join("cluster.json").exists());
    check_all_from_zero(&client, "local", n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_outage_keeps_producing_deletes_nothing_and_drains_after() {
    let s3 = S3Server::start(BUCKET);
    let env = s3_env(&s3, "outage");
    let broker = BrokerProcess::start_with_env(&as_refs(&env));
    let client = broker.client().await;
    client
        .admin()
        .create_topic(tiered_topic("out"))
        .await
        .expect("create");
    produce(&client, "out", 0, 500).await;
    wait_for("first uploads", 60, || async {
        let p = partition0(&client, "out").await;
        p.remote_segments >= 2 && p.segments == 1
    })
    .await;
    let before = partition0(&client, "out").await;

    s3.proxy.set_down(true);
    // Producing goes on while the bucket is unreachable.
    produce(&client, "out", 500, 2500).await;
    wait_for("degraded status", 60, || async {
        broker
            .http_get("/readyz")
            .is_some_and(|(c, b)| c == 200 && b.contains("tiering: degraded"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = partition0(&client, "out").await;
    assert_eq!(
        during.local_start_offset, before.local_start_offset,
        "nothing un-uploaded was deleted locally"
    );
    assert_eq!(during.remote_end_offset, before.remote_end_offset);
    assert!(during.segments > 5, "{during:?}");
    assert_eq!(broker.metric("tidelog_tiering_degraded"), Some(1.0));
    assert!(
        broker
            .metric("tidelog_tiering_upload_backlog_segments")
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        broker
            .metric("tidelog_tiering_upload_errors_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    // Hot reads still work.
    let fetched = client
        .admin()
        .list_offsets("out", 0, OffsetSpec::Latest)
        .await
        .expect("latest")
        .0;
    assert_eq!(fetched, 2500);

    s3.proxy.set_down(false);
    wait_for("backlog drained", 90, || async {
        let p = partition0(&client, "out").await;
        p.segments == 1
            && p.local_start_offset == p.remote_end_offset
            && broker
                .http_get("/readyz")
                .is_some_and(|(_, b)| b.contains("tiering: ok"))
    })
    .await;
    assert_eq!(broker.metric("tidelog_tiering_degraded"), Some(0.0));
    check_all_from_zero(&client, "out", 2500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_rebuilds_an_empty_data_dir_and_refuses_a_silent_fresh_start() {
    let s3 = S3Server::start(BUCKET);
    let env = s3_env(&s3, "restore");
    let refs = as_refs(&env);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir_a = tmp.path().join("a");
    let mut a = BrokerProcess::start_in(&dir_a, &refs);
    let client = a.client().await;
    client
        .admin()
        .create_topic(tiered_topic("keep"))
        .await
        .expect("create");
    client
        .admin()
        .create_topic(NewTopic::new("other", 2))
        .await
        .expect("create other");
    produce(&client, "keep", 0, 2000).await;
    wait_for("uploads", 60, || async {
        let p = partition0(&client, "keep").await;
        p.remote_segments >= 5 && p.segments == 1
    })
    .await;
    let uploaded = partition0(&client, "keep").await.remote_end_offset;
    assert!(uploaded > 0);
    // Committed group offsets travel in the bucket's cluster snapshot.
    client
        .admin()
        .commit_group_offsets("billing", &[(tidelog::TopicPartition::new("keep", 0), 123)])
        .await
        .expect("commit group offsets");
    assert!(a.terminate(), "clean stop");

    // An empty data directory on a bucket with topics: refuse, name restore.
    let empty = tmp.path().join("empty");
    let err = BrokerProcess::try_start_in(&empty, &refs)
        .err()
        .expect("refuses to start");
    assert!(err.contains("tidelog restore"), "{err}");
    assert!(err.contains("keep"), "{err}");

    // Restore into a new directory, then serve every uploaded offset.
    let dir_b = tmp.path().join("b");
    let out = tidelog_cmd(
        &[
            "restore",
            "--object-store",
            &format!("s3://{BUCKET}/restore"),
            "--data-dir",
            dir_b.to_str().expect("utf-8 path"),
        ],
        &refs,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[1/3]") && stdout.contains("[3/3]"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("keep/0: offsets 0..{uploaded}")),
        "{stdout}"
    );
    let b = BrokerProcess::start_in(&dir_b, &refs);
    let client = b.client().await;
    let p = partition0(&client, "keep").await;
    assert_eq!((p.log_start_offset, p.log_end_offset), (0, uploaded));
    let topics = client.admin().list_topics().await.expect("list");
    assert_eq!(topics.len(), 2);
    let g = client
        .admin()
        .describe_group("billing")
        .await
        .expect("restored group");
    let committed = g
        .partitions
        .iter()
        .find(|p| p.topic == "keep" && p.partition == 0)
        .and_then(|p| p.committed_offset);
    assert_eq!(committed, Some(123), "{g:?}");
    check_all_from_zero(&client, "keep", uploaded as usize).await;
    // Producers continue at the next offset.
    produce(&client, "keep", uploaded as usize, uploaded as usize + 10).await;
    check_all_from_zero(&client, "keep", uploaded as usize + 10).await;
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_on_the_same_prefix_is_fenced() {
    let s3 = S3Server::start(BUCKET);
    let env = s3_env(&s3, "fence");
    let refs = as_refs(&env);
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = BrokerProcess::start_in(&tmp.path().join("a"), &refs);
    let client_a = a.client().await;
    client_a
        .admin()
        .create_topic(tiered_topic("f"))
        .await
        .expect("create");
    produce(&client_a, "f", 0, 500).await;
    // Let A finish uploading what it sealed (B restores from the bucket
    // as it is now).
    wait_for("uploads", 60, || async {
        let p = partition0(&client_a, "f").await;
        p.remote_segments >= 2 && p.segments == 1
    })
    .await;
    // A second broker takes over the same prefix (restored copy) and
    // writes the manifest.
    let dir_b = tmp.path().join("b");
    let out = tidelog_cmd(
        &[
            "restore",
            "--object-store",
            &format!("s3://{BUCKET}/fence"),
            "--data-dir",
            dir_b.to_str().expect("utf-8 path"),
        ],
        &refs,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = BrokerProcess::start_in(&dir_b, &refs);
    let client_b = b.client().await;
    let start_b = partition0(&client_b, "f").await.log_end_offset as usize;
    produce(&client_b, "f", start_b, start_b + 300).await;
    wait_for("b uploads", 60, || async {
        partition0(&client_b, "f").await.remote_end_offset > start_b as i64
    })
    .await;
    // The first broker's next manifest write carries a stale e-tag.
    let end_a = partition0(&client_a, "f").await.log_end_offset as usize;
    produce(&client_a, "f", end_a, end_a + 300).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let fenced = a
            .http_get("/readyz")
            .is_some_and(|(c, body)| c == 200 && body.contains("fenced partitions: [f/0]"));
        if fenced {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broker a not fenced; a log:\n{}\nb log:\n{}",
            a.log(),
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(a.log().contains("fenced"), "{}", a.log());
    // The fenced broker deletes nothing it could not record.
    let p = partition0(&client_a, "f").await;
    assert!(p.segments > 1, "{p:?}");
    // B's view of the bucket is intact.
    let pb = partition0(&client_b, "f").await;
    assert_eq!(pb.remote_start_offset, 0);
    check_all_from_zero(&client_b, "f", start_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_remote_segment_is_a_clear_data_loss_error() {
    use tidelog_proto::v1::{consumer_client::ConsumerClient, FetchRequest};
    let broker = BrokerProcess::start_with_env(&[
        ("TIDELOG_TIERING_UPLOAD_INTERVAL_MS", "200"),
        ("TIDELOG_RETENTION_CHECK_INTERVAL_MS", "200"),
    ]);
    let client = broker.client().await;
    client
        .admin()
        .create_topic(tiered_topic("bad"))
        .await
        .expect("create");
    produce(&client, "bad", 0, 600).await;
    wait_for("upload and local deletion", 60, || async {
        let p = partition0(&client, "bad").await;
        p.remote_segments >= 2 && p.segments == 1
    })
    .await;
    // Flip one byte inside the first batch (past its 57-byte header) of the
    // first object.
    let seg_dir = std::fs::read_dir(broker.data_dir.with_file_name("data-bucket/topics/bad"))
        .expect("bucket topic dir")
        .flatten()
        .next()
        .expect("incarnation")
        .path()
        .join("0/segments");
    let first = seg_dir.join(
        std::fs::read_dir(&seg_dir)
            .expect("segments dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with("00000000000000000000-") && n.ends_with(".log"))
            .expect("first segment object"),
    );
    let mut bytes = std::fs::read(&first).expect("read object");
    bytes[60] ^= 0xff;
    std::fs::write(&first, &bytes).expect("write object");

    let mut c = ConsumerClient::connect(format!("http://{}", broker.addr))
        .await
        .expect("connect");
    let err = c
        .fetch(FetchRequest {
            topic: "bad".into(),
            partition: 0,
            offset: 0,
            max_bytes: 0,
            max_wait_ms: 0,
        })
        .await
        .expect_err("corrupt data is not served");
    assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
    assert_eq!(
        err.metadata()
            .get(tidelog_proto::ERROR_REASON_KEY)
            .and_then(|v| v.to_str().ok()),
        Some("REMOTE_DATA_LOSS")
    );
    assert!(
        err.message().contains("remote data loss"),
        "{}",
        err.message()
    );
    assert!(
        broker
            .metric("tidelog_tiering_remote_corrupt_total")
            .unwrap_or(0.0)
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_retention_removes_expired_segments_from_the_bucket() {
    let s3 = S3Server::start(BUCKET);
    let env = s3_env(&s3, "ret");
    let broker = BrokerProcess::start_with_env(&as_refs(&env));
    let client = broker.client().await;
    client
        .admin()
        .create_topic(
            NewTopic::new("rr", 1)
                .config("segment.bytes", "4096")
                .config("local.retention.bytes", "0")
                .config("retention.ms", "-1")
                .config("retention.bytes", "20000"),
        )
        .await
        .expect("create");
    produce(&client, "rr", 0, 2000).await;
    wait_for("remote retention", 60, || async {
        let p = partition0(&client, "rr").await;
        p.segments == 1 && p.log_start_offset > 0 && p.remote_size_bytes > 0
    })
    .await;
    let p = partition0(&client, "rr").await;
    assert!(p.remote_size_bytes <= 20000 + 4096, "{p:?}");
    assert_eq!(p.log_start_offset, p.remote_start_offset);
    // The manifest is shortened first, the objects are deleted right after.
    wait_for("expired objects deleted from the bucket", 30, || async {
        let p = partition0(&client, "rr").await;
        let logs = s3
            .list(BUCKET, "ret/topics/rr/")
            .into_iter()
            .filter(|k| k.ends_with(".log"))
            .count();
        logs as u32 == p.remote_segments
    })
    .await;
    assert!(
        broker
            .metric("tidelog_tiering_remote_deleted_segments_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    // Retention moves the log start on purpose: not reported as loss.
    assert_eq!(
        broker.metric("tidelog_tiering_log_start_moved_total"),
        Some(0.0)
    );
    // The earliest offset is readable; older ones are out of range.
    let earliest = client
        .admin()
        .list_offsets("rr", 0, OffsetSpec::Earliest)
        .await
        .expect("earliest")
        .0;
    assert_eq!(earliest, p.log_start_offset);
    let tp = TopicPartition::new("rr", 0);
    let mut consumer = client.consumer();
    consumer.assign([tp.clone()]);
    consumer
        .seek(&tp, SeekTo::Offset(earliest))
        .await
        .expect("seek");
    let r = tokio::time::timeout(Duration::from_secs(30), consumer.stream().next())
        .await
        .expect("record arrives")
        .expect("open")
        .expect("record");
    assert_eq!(r.offset, earliest);
    assert_eq!(r.value.as_ref(), Some(&value(earliest as usize)));
}

/// Catch-up read throughput from the bucket (not a pass/fail test; run with
/// `cargo test -p tidelog-e2e --test tiering catch_up -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn catch_up_read_throughput() {
    let s3 = S3Server::start(BUCKET);
    for store in ["s3", "file"] {
        let mut env = if store == "s3" {
            s3_env(&s3, "bench")
        } else {
            vec![
                ("TIDELOG_TIERING_UPLOAD_INTERVAL_MS".into(), "200".into()),
                ("TIDELOG_RETENTION_CHECK_INTERVAL_MS".into(), "200".into()),
            ]
        };
        env.retain(|(k, _)| k != "TIDELOG_REMOTE_CHUNK_BYTES");
        let broker = BrokerProcess::start_with_env(&as_refs(&env));
        let client = broker.client().await;
        client
            .admin()
            .create_topic(
                NewTopic::new("bench", 1)
                    .config("segment.bytes", "4194304")
                    .config("local.retention.bytes", "0")
                    .config("retention.ms", "-1"),
            )
            .await
            .expect("create");
        let producer = client.producer();
        let payload = Bytes::from(vec![b'x'; 1000]);
        let n = 64 * 1024;
        for _ in 0..n {
            producer
                .enqueue(ProducerRecord::new("bench", payload.clone()).partition(0))
                .await
                .expect("enqueue");
        }
        producer.flush().await.expect("flush");
        wait_for("everything sealed is uploaded", 300, || async {
            let p = partition0(&client, "bench").await;
            p.segments == 1 && p.remote_segments > 0 && p.local_start_offset == p.remote_end_offset
        })
        .await;
        let p = partition0(&client, "bench").await;
        let remote_records = p.remote_end_offset as usize;
        let tp = TopicPartition::new("bench", 0);
        let mut consumer = client.consumer();
        consumer.assign([tp.clone()]);
        consumer.seek(&tp, SeekTo::Offset(0)).await.expect("seek");
        let started = Instant::now();
        let mut bytes = 0usize;
        let mut stream = std::pin::pin!(consumer.stream());
        for _ in 0..remote_records {
            let r = stream.next().await.expect("open").expect("record");
            bytes += r.value.map_or(0, |v| v.len());
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "catch-up from {store}: {remote_records} records, {:.1} MiB of values from {} remote segments ({} bytes) in {secs:.2}s = {:.1} MiB/s",
            bytes as f64 / 1048576.0,
            p.remote_segments,
            p.remote_size_bytes,
            p.remote_size_bytes as f64 / 1048576.0 / secs
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_disk_high_water_mark_refuses_producers_retriably_during_an_outage() {
    use tidelog_proto::batch::{BatchBuilder, Compression};
    use tidelog_proto::v1::{producer_client::ProducerClient, Acks, ProduceRequest};
    let s3 = S3Server::start(BUCKET);
    let mut env = s3_env(&s3, "hw");
    env.push(("TIDELOG_LOCAL_DISK_HIGH_WATER_BYTES".into(), "40000".into()));
    let broker = BrokerProcess::start_with_env(&as_refs(&env));
    let client = broker.client().await;
    client
        .admin()
        .create_topic(tiered_topic("hw"))
        .await
        .expect("create");
    let mut raw = ProducerClient::connect(format!("http://{}", broker.addr))
        .await
        .expect("connect");
    let batch = || {
        let mut b = BatchBuilder::new(Compression::None, 1_000);
        for _ in 0..10 {
            b.push(1_000, None, Some(&[b'h'; 90][..]), &[]);
        }
        b.finish(-1, 0, -1)
    };
    let request = || ProduceRequest {
        request_id: 0,
        topic: "hw".into(),
        partition: 0,
        acks: Acks::All as i32,
        batches: vec![batch()],
    };
    s3.proxy.set_down(true);
    // About 1 KB per request: the mark (40 000 bytes) is passed after ~40.
    let mut refused = None;
    for _ in 0..200 {
        match raw.produce(request()).await {
            Ok(_) => {}
            Err(s) => {
                refused = Some(s);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = refused.expect("producers refused past the high-water mark");
    assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
    assert!(s.message().contains("high-water mark"), "{}", s.message());
    assert_eq!(
        s.metadata()
            .get(tidelog_proto::ERROR_REASON_KEY)
            .and_then(|v| v.to_str().ok()),
        Some("STORAGE_UNAVAILABLE")
    );
    // The bucket returns: uploads drain, local copies go, producing resumes.
    s3.proxy.set_down(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if raw.produce(request()).await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "producing resumes after the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_objects_are_swept_and_deleted_topics_leave_the_bucket() {
    let broker = BrokerProcess::start_with_env(&[
        ("TIDELOG_TIERING_UPLOAD_INTERVAL_MS", "200"),
        ("TIDELOG_RETENTION_CHECK_INTERVAL_MS", "200"),
        ("TIDELOG_TIERING_ORPHAN_MIN_AGE_MS", "0"),
    ]);
    let client = broker.client().await;
    client
        .admin()
        .create_topic(tiered_topic("orph"))
        .await
        .expect("create");
    produce(&client, "orph", 0, 600).await;
    wait_for("uploads", 60, || async {
        let p = partition0(&client, "orph").await;
        p.remote_segments >= 2 && p.segments == 1
    })
    .await;
    let topic_dir = broker.data_dir.with_file_name("data-bucket/topics/orph");
    let seg_dir = std::fs::read_dir(&topic_dir)
        .expect("bucket topic dir")
        .flatten()
        .next()
        .expect("incarnation")
        .path()
        .join("0/segments");
    // What an upload that died before its manifest write leaves behind.
    let orphan = seg_dir.join("00000000000000900000-00000000000000900010-0badf00d.log");
    std::fs::write(&orphan, b"half an upload").expect("write orphan");
    wait_for("orphan swept", 30, || async { !orphan.exists() }).await;
    let p = partition0(&client, "orph").await;
    let logs = std::fs::read_dir(&seg_dir)
        .expect("segments")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .count();
    assert_eq!(logs as u32, p.remote_segments, "listed segments stay");
    check_all_from_zero(&client, "orph", 600).await;

    client.admin().delete_topic("orph").await.expect("delete");
    let count_files = |dir: &std::path::Path| -> usize {
        fn walk(d: &std::path::Path) -> usize {
            std::fs::read_dir(d).map_or(0, |rd| {
                rd.flatten()
                    .map(|e| {
                        let p = e.path();
                        if p.is_dir() {
                            walk(&p)
                        } else {
                            usize::from(p.extension().is_some_and(|x| {
                                x == "log" || x == "index" || x == "timeindex" || x == "json"
                            }))
                        }
                    })
                    .sum()
            })
        }
        walk(dir)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_files(&topic_dir) > 0 {
        assert!(
            Instant::now() < deadline,
            "the deleted topic's objects leave the bucket"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let snapshot =
        std::fs::read_to_string(broker.data_dir.with_file_name("data-bucket/cluster.json"))
            .expect("snapshot");
    assert!(!snapshot.contains("\"orph\""), "{snapshot}");
}
