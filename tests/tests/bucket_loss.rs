//! Damage and loss in the bucket, end to end: the real broker tiering to a
//! real S3-compatible server (`moto_server`) whose objects the tests delete
//! or replace behind the broker's back. Lost data is named (partition,
//! offsets, what to do), never retried forever, never silent.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use tidelog::{NewTopic, OffsetSpec, ProducerConfig, ProducerRecord, SeekTo, TopicPartition};
use tidelog_e2e::{error_reason, list_offsets_raw, BrokerProcess, S3Server};
use tidelog_proto::v1::offset_spec::Spec;
use tidelog_proto::v1::{consumer_client::ConsumerClient, FetchRequest};

const BUCKET: &str = "tidelog-loss";
/// Timestamp of record 0 (2023-11-14T22:13:20Z); record i has `TS0 + i`.
const TS0: i64 = 1_700_000_000_000;

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

fn tiered_topic(name: &str) -> NewTopic {
    NewTopic::new(name, 1)
        .config("segment.bytes", "4096")
        .config("local.retention.bytes", "0")
        .config("retention.ms", "-1")
}

/// Produces records `from..to` to partition 0 in small batches.
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
            .timestamp(TS0 + i as i64);
        acks.push(producer.enqueue(rec).await.expect("enqueue"));
    }
    producer.flush().await.expect("flush");
    for a in acks {
        a.await.expect("acknowledged");
    }
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

/// Creates a tiered topic, produces `n` records and waits until everything
/// sealed is in the bucket and gone from local disk; returns the first
/// local offset.
async fn tiered(client: &tidelog::Client, topic: &str, n: usize) -> i64 {
    client
        .admin()
        .create_topic(tiered_topic(topic))
        .await
        .expect("create");
    produce(client, topic, 0, n).await;
    wait_for("upload and local deletion", 90, || async {
        let p = partition0(client, topic).await;
        p.remote_segments >= 5 && p.segments == 1 && p.local_start_offset == p.remote_end_offset
    })
    .await;
    let p = partition0(client, topic).await;
    assert_eq!(p.log_start_offset, 0, "{p:?}");
    p.local_start_offset
}

/// Raw gRPC fetch of partition 0 at `offset`.
async fn fetch(
    addr: &str,
    topic: &str,
    offset: i64,
) -> Result<tidelog_proto::v1::FetchResponse, tonic::Status> {
    let mut c = ConsumerClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    c.fetch(FetchRequest {
        topic: topic.into(),
        partition: 0,
        offset,
        max_bytes: 0,
        max_wait_ms: 0,
    })
    .await
    .map(|r| r.into_inner())
}

/// Stderr of a CLI run that must end by itself with an error.
fn failed_cli_line(broker: &BrokerProcess, args: &[&str]) -> String {
    let out = broker
        .cli_timeout(args, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("`tidelog {}` kept retrying for 30 s", args.join(" ")));
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains('<'), "no raw XML: {stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_object_missing_from_the_bucket_is_data_loss_naming_its_offsets() {
    let s3 = S3Server::start(BUCKET);
    let env = s3_env(&s3, "miss");
    let broker = BrokerProcess::start_with_env(&as_refs(&env));
    let client = broker.client().await;
    tiered(&client, "gone", 3000).await;

    // The first segment's objects vanish (key: <base>-<end>-<crc>.log).
    let keys = s3.list(BUCKET, "miss/topics/gone/");
    let first_log = keys
        .iter()
        .find(|k| k.contains("/segments/00000000000000000000-") && k.ends_with(".log"))
        .expect("first segment object")
        .clone();
    let stem = first_log.trim_end_matches(".log");
    let end: i64 = stem
        .rsplit('/')
        .next()
        .and_then(|name| name.split('-').nth(1))
        .and_then(|e| e.parse().ok())
        .expect("end offset in the key");
    for ext in ["log", "index", "timeindex"] {
        s3.delete(BUCKET, &format!("{stem}.{ext}"));
    }

    // (a) Not retriable: DATA_LOSS naming partition, range and the way on.
    let err = fetch(&broker.addr, "gone", 0)
        .await
        .expect_err("lost offsets are not served");
    assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
    assert_eq!(error_reason(&err), "REMOTE_DATA_LOSS");
    let msg = err.message();
    assert!(msg.contains("gone/0"), "{msg}");
    assert!(msg.contains(&format!("0..{end}")), "{msg}");
    assert!(msg.contains(&format!("read from offset {end}")), "{msg}");
    assert!(!msg.contains('\n') && !msg.contains('<'), "{msg}");
    assert!(
        broker
            .metric("tidelog_tiering_remote_missing_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    let log = broker.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("missing from the bucket")),
        "{log}"
    );
    // Reading past the lost range works.
    let past = fetch(&broker.addr, "gone", end)
        .await
        .expect("past the loss");
    assert!(
        !past.records.is_empty(),
        "records after the loss are served"
    );

    // The CLI stops with one line instead of retrying forever.
    let line = failed_cli_line(&broker, &["consume", "gone", "--from-beginning"]);
    assert!(line.contains(&format!("0..{end}")), "{line}");

    // (b) A time lookup into the lost range: the same, one line, no XML.
    let err = list_offsets_raw(&broker.addr, "gone", 0, Spec::TimestampMs(TS0))
        .await
        .expect_err("the time index is lost too");
    assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
    assert_eq!(error_reason(&err), "REMOTE_DATA_LOSS");
    assert!(
        !err.message().contains('\n') && !err.message().contains('<'),
        "{}",
        err.message()
    );
    assert!(err.message().contains("gone/0"), "{}", err.message());
    let line = failed_cli_line(
        &broker,
        &["consume", "gone", "--from-time", "2023-11-14T22:13:20Z"],
    );
    assert!(line.contains("gone/0"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_bucket_stays_retriable_with_a_one_line_message() {
    let s3 = S3Server::start(BUCKET);
    let env = s3_env(&s3, "down");
    let broker = BrokerProcess::start_with_env(&as_refs(&env));
    let client = broker.client().await;
    tiered(&client, "away", 1500).await;
    s3.proxy.set_down(true);
    let err = fetch(&broker.addr, "away", 0)
        .await
        .expect_err("bucket unreachable");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert_eq!(error_reason(&err), "STORAGE_UNAVAILABLE");
    assert!(!err.message().contains('\n'), "{}", err.message());
    s3.proxy.set_down(false);
    fetch(&broker.addr, "away", 0)
        .await
        .expect("served again once the bucket is back");
}

/// Reads the record at `offset` of partition 0.
async fn read_one(client: &tidelog::Client, topic: &str, offset: i64) -> tidelog::ConsumerRecord {
    let tp = TopicPartition::new(topic, 0);
    let mut consumer = client.consumer();
    consumer.assign([tp.clone()]);
    consumer
        .seek(&tp, SeekTo::Offset(offset))
        .await
        .expect("seek");
    let mut stream = std::pin::pin!(consumer.stream());
    tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("record arrives")
        .expect("open")
        .expect("record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_emptied_under_a_running_broker_is_named_lost_and_local_data_is_uploaded_again() {
    let s3 = S3Server::start(BUCKET);
    let env = s3_env(&s3, "empty");
    let broker = BrokerProcess::start_with_env(&as_refs(&env));
    let client = broker.client().await;
    let local_start = tiered(&client, "wiped", 3000).await;
    assert!(local_start > 0);

    // Everything under the prefix goes, manifest and cluster.json included.
    assert!(s3.delete_all(BUCKET, "empty/") > 0);
    // New sealed segments make the broker write the manifest again.
    produce(&client, "wiped", 3000, 3600).await;

    let manifest_key = "topics/wiped/";
    wait_for("the loss is reported", 60, || async {
        broker
            .log()
            .contains("the bucket lost partition wiped/0's data")
    })
    .await;
    let log = broker.log();
    let line = log
        .lines()
        .find(|l| l.contains("the bucket lost partition wiped/0's data"))
        .expect("loss line");
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains(manifest_key) && line.contains("manifest.json"),
        "{line}"
    );
    assert!(line.contains(&format!("s3://{BUCKET}/empty")), "{line}");
    assert!(!log.contains("another writer"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains(&format!("moved from 0 to {local_start}"))),
        "{log}"
    );
    assert!(
        broker
            .metric("tidelog_tiering_remote_missing_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        broker
            .metric("tidelog_tiering_log_start_moved_total")
            .unwrap_or(0.0)
            >= 1.0
    );

    // Not fenced: uploads resume from the local segments under a new
    // manifest, and no local segment went before it was in the bucket.
    wait_for("uploads resume", 60, || async {
        let p = partition0(&client, "wiped").await;
        p.remote_start_offset == local_start && p.segments == 1
    })
    .await;
    let (code, body) = broker.http_get("/readyz").expect("readyz");
    assert_eq!(code, 200);
    assert!(!body.contains("fenced partitions: [wiped/0]"), "{body}");
    assert!(s3
        .list(BUCKET, "empty/topics/wiped/")
        .iter()
        .any(|k| k.ends_with("manifest.json")));
    let p = partition0(&client, "wiped").await;
    assert_eq!(p.log_start_offset, local_start, "{p:?}");
    let earliest = client
        .admin()
        .list_offsets("wiped", 0, OffsetSpec::Earliest)
        .await
        .expect("earliest")
        .0;
    assert_eq!(earliest, local_start);
    let r = read_one(&client, "wiped", local_start).await;
    assert_eq!(r.offset, local_start);
    assert_eq!(r.value.as_ref(), Some(&value(local_start as usize)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_a_bucket_that_lost_its_data_reports_the_log_start_move() {
    let s3 = S3Server::start(BUCKET);
    let env = s3_env(&s3, "restart");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut broker = BrokerProcess::start_in(&tmp.path().join("data"), &as_refs(&env));
    let client = broker.client().await;
    let local_start = tiered(&client, "moved", 3000).await;
    assert!(broker.terminate(), "clean stop");
    assert!(s3.delete_all(BUCKET, "restart/") > 0);

    broker.start_again();
    let client = broker.client().await;
    let p = partition0(&client, "moved").await;
    assert_eq!(p.log_start_offset, local_start, "{p:?}");
    let log = broker.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains(&format!("moved from 0 to {local_start}"))),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("ERROR")
            && l.contains("the bucket lost partition moved/0's data")
            && l.contains("manifest.json")),
        "{log}"
    );
    assert_eq!(
        broker.metric("tidelog_tiering_log_start_moved_total"),
        Some(1.0)
    );
    assert!(
        broker
            .metric("tidelog_tiering_remote_missing_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    // The local data is uploaded again once segments are sealed.
    produce(&client, "moved", 3000, 3600).await;
    wait_for("uploads resume", 60, || async {
        partition0(&client, "moved").await.remote_start_offset == local_start
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_written_by_another_broker_is_named_as_such() {
    let s3 = S3Server::start(BUCKET);
    let env = s3_env(&s3, "foreign");
    let broker = BrokerProcess::start_with_env(&as_refs(&env));
    let client = broker.client().await;
    tiered(&client, "shared", 1500).await;
    let key = s3
        .list(BUCKET, "foreign/topics/shared/")
        .into_iter()
        .find(|k| k.ends_with("manifest.json"))
        .expect("manifest");
    // Another broker (id 7) rewrites the manifest.
    let text = s3.get(BUCKET, &key);
    let foreign = text.replace("\"broker_id\": 0", "\"broker_id\": 7");
    assert_ne!(foreign, text, "{text}");
    s3.put(BUCKET, &key, foreign.as_bytes());
    produce(&client, "shared", 1500, 2000).await;
    wait_for("fenced", 60, || async {
        broker
            .http_get("/readyz")
            .is_some_and(|(_, b)| b.contains("fenced partitions: [shared/0]"))
    })
    .await;
    let log = broker.log();
    assert!(
        log.lines().any(|l| l.contains("ERROR")
            && l.contains("another writer")
            && l.contains("broker 7 (this is broker 0)")),
        "{log}"
    );
    assert!(!log.contains("the bucket lost"), "{log}");
}
