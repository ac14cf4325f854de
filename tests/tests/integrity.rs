//! Integrity at rest: bytes damaged on the broker's disk are found, served
//! from the bucket when it holds them, and otherwise reported as DATA_LOSS
//! naming the exact range — never served, skipped, waited on or
//! overwritten silently. Every test damages real files of a real broker.

use std::time::Duration;

use tidelog::{NewTopic, OffsetSpec, ProducerConfig, ProducerRecord, SeekTo, TopicPartition};
use tidelog_e2e::{
    batch_positions, error_reason, fill_small_segments, flip_byte, segment_bases, BrokerProcess,
};
use tidelog_proto::v1::{consumer_client::ConsumerClient, FetchRequest};

async fn raw_fetch(
    broker: &BrokerProcess,
    topic: &str,
    offset: i64,
) -> Result<tidelog_proto::v1::FetchResponse, tonic::Status> {
    let mut c = ConsumerClient::connect(format!("http://{}", broker.addr))
        .await
        .expect("connect");
    c.fetch(FetchRequest {
        topic: topic.into(),
        offset,
        ..FetchRequest::default()
    })
    .await
    .map(|r| r.into_inner())
}

/// Base offset of the first batch in a fetch response (its first 8 bytes,
/// `proto/FORMAT.md`).
fn first_base(r: &tidelog_proto::v1::FetchResponse) -> Option<i64> {
    r.records
        .get(..8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
}

fn assert_data_loss(s: &tonic::Status, range: &str) {
    assert_eq!(
        (s.code(), error_reason(s).as_str()),
        (tonic::Code::DataLoss, "LOCAL_DATA_LOSS"),
        "{}",
        s.message()
    );
    assert!(s.message().contains(range), "{}", s.message());
}

/// Reads the partition from the beginning through the SDK until `want`
/// records or an error; a stall fails the test (a silent wait is a bug).
async fn read_all(
    client: &tidelog::Client,
    topic: &str,
    want: i64,
) -> (Vec<(i64, Vec<u8>)>, Option<tidelog::Error>) {
    let tp = TopicPartition::new(topic, 0);
    let mut consumer = client.consumer();
    consumer.assign([tp.clone()]);
    consumer.seek(&tp, SeekTo::Beginning).await.expect("seek");
    let mut got = vec![];
    while (got.len() as i64) < want {
        let next = tokio::time::timeout(Duration::from_secs(20), consumer.next_record())
            .await
            .expect("a read that meets damage must fail, not wait")
            .expect("assigned");
        match next {
            Ok(r) => got.push((r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default())),
            Err(e) => return (got, Some(e)),
        }
    }
    (got, None)
}

/// Issue 13 #2: a sealed segment whose length field was flipped is not
/// cut at start-up, and since the bucket holds an intact copy, consumers
/// read every record, byte for byte, without noticing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_sealed_segment_the_bucket_holds_is_read_from_the_bucket() {
    let mut broker = BrokerProcess::start();
    let client = broker.client().await;
    fill_small_segments(&client, "heal", &[]).await;
    let dir = broker.data_dir.join("topics/heal/0");
    let bases = segment_bases(&dir);
    assert!(bases.len() >= 4, "several segments: {bases:?}");
    // Wait until the bucket holds the second segment.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let p = client
            .admin()
            .describe_topic("heal")
            .await
            .expect("describe");
        if p.partitions[0].remote_end_offset >= bases[2] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "upload in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(client);
    assert!(broker.terminate());

    // The length field of the second batch of the second segment, and no
    // index files, so recovery scans it.
    let seg = dir.join(format!("{:020}.log", bases[1]));
    let second = batch_positions(&seg)[1];
    flip_byte(&seg, second + 10, 0x40);
    for ext in ["index", "timeindex"] {
        std::fs::remove_file(dir.join(format!("{:020}.{ext}", bases[1]))).expect("drop index");
    }
    let size = std::fs::metadata(&seg).expect("stat").len();
    broker.start_again();
    assert!(!broker.log().contains("truncated"), "{}", broker.log());
    assert_eq!(std::fs::metadata(&seg).expect("stat").len(), size);

    let client = broker.client().await;
    let (got, err) = read_all(&client, "heal", 2000).await;
    assert!(err.is_none(), "{err:?}");
    for (i, (offset, value)) in got.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(value, format!("value-{i:05}").as_bytes());
    }
}

/// Issue 13 #3: a flipped base offset (outside the CRC) in a sealed
/// segment of a topic without tiering. A consumer from the beginning gets
/// every record before it and then DATA_LOSS naming the batch's offsets —
/// never a silent wait; past the range the log reads on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_base_offset_is_data_loss_naming_its_range_never_a_wait() {
    let mut broker = BrokerProcess::start();
    let client = broker.client().await;
    fill_small_segments(&client, "base", &[("remote.storage.enable", "false")]).await;
    drop(client);
    assert!(broker.terminate());
    let dir = broker.data_dir.join("topics/base/0");
    let bases = segment_bases(&dir);
    let seg = dir.join(format!("{:020}.log", bases[1]));
    let positions = batch_positions(&seg);
    let base_of = |i: usize| {
        let bytes = std::fs::read(&seg).expect("segment");
        let p = positions[i] as usize;
        i64::from_le_bytes(bytes[p..p + 8].try_into().expect("8 bytes"))
    };
    let (lost_from, lost_to) = (base_of(2), base_of(3));
    // The index files stay valid, so only a read can find this.
    flip_byte(&seg, positions[2] + 3, 0x01);
    broker.start_again();

    let client = broker.client().await;
    let (got, err) = read_all(&client, "base", 2000).await;
    assert_eq!(
        got.len() as i64,
        lost_from,
        "every record before the damage"
    );
    assert!(
        matches!(&err, Some(tidelog::Error::DataLoss(m)) if m.contains(&format!("offsets {lost_from}..{lost_to}"))),
        "{err:?}"
    );
    let s = raw_fetch(&broker, "base", lost_from + 1)
        .await
        .expect_err("inside the range");
    assert_data_loss(&s, &format!("..{lost_to}"));
    let r = raw_fetch(&broker, "base", lost_to).await.expect("past it");
    assert!(!r.records.is_empty());
    assert_eq!(broker.metric("tidelog_local_corrupt_total"), Some(1.0));
}

/// Issue 13 #4: one flipped byte in the first batch of the active segment.
/// Recovery keeps every later intact batch, the log end stays where it
/// was, new records get new offsets, and the damaged batch is DATA_LOSS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_the_active_segment_keeps_later_batches_and_offsets_are_never_reused() {
    let mut broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("act", 1).config("remote.storage.enable", "false"))
        .await
        .expect("create");
    let producer = client.producer_with(ProducerConfig {
        batch_bytes: 2048,
        ..ProducerConfig::default()
    });
    for i in 0..1000 {
        producer
            .enqueue(ProducerRecord::new("act", format!("value-{i:05}")))
            .await
            .expect("enqueue");
    }
    producer.flush().await.expect("flush");
    drop((producer, client));
    assert!(broker.terminate());

    let seg = broker
        .data_dir
        .join("topics/act/0/00000000000000000000.log");
    let positions = batch_positions(&seg);
    assert!(positions.len() > 5, "several batches");
    let bytes = std::fs::read(&seg).expect("segment");
    let p1 = positions[1] as usize;
    let second_base = i64::from_le_bytes(bytes[p1..p1 + 8].try_into().expect("8 bytes"));
    flip_byte(&seg, 70, 0xff);
    broker.start_again();

    let client = broker.client().await;
    let (end, _) = client
        .admin()
        .list_offsets("act", 0, OffsetSpec::Latest)
        .await
        .expect("latest");
    assert_eq!(end, 1000, "the log end never moves back");
    let m = client
        .producer()
        .send(ProducerRecord::new("act", "after"))
        .await
        .expect("produce");
    assert_eq!(m.offset, 1000, "offsets are never reused");
    let s = raw_fetch(&broker, "act", 0).await.expect_err("damaged");
    assert_data_loss(&s, &format!("offsets 0..{second_base}"));
    let r = raw_fetch(&broker, "act", second_base)
        .await
        .expect("later batches survive");
    assert_eq!(first_base(&r), Some(second_base));
    let r = raw_fetch(&broker, "act", 999)
        .await
        .expect("the last old one");
    assert!(!r.records.is_empty());
}

/// Issue 13 #4: a log found ending below its recovery point (the active
/// segment cut to nothing behind the broker's back) does not open; with
/// `--accept-data-loss` it continues at the recovery point, offsets are
/// not reused and the lost ones read as DATA_LOSS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_cut_below_its_recovery_point_needs_the_operator_to_accept_the_loss() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut broker = BrokerProcess::start_in(&data, &[]);
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("cut", 1).config("remote.storage.enable", "false"))
        .await
        .expect("create");
    let producer = client.producer();
    for i in 0..500 {
        producer
            .enqueue(ProducerRecord::new("cut", format!("v{i}")))
            .await
            .expect("enqueue");
    }
    producer.flush().await.expect("flush");
    drop((producer, client));
    assert!(broker.terminate());
    drop(broker);

    let seg = data.join("topics/cut/0/00000000000000000000.log");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .and_then(|f| f.set_len(0))
        .expect("cut the segment");
    let log = match BrokerProcess::try_start_in(&data, &[]) {
        Ok(_) => panic!("a log below its recovery point must not open"),
        Err(log) => log,
    };
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("offsets up to 500") && errors[0].contains("--accept-data-loss"),
        "{log}"
    );

    let broker = BrokerProcess::start_in(&data, &[("TIDELOG_ACCEPT_DATA_LOSS", "true")]);
    let client = broker.client().await;
    let m = client
        .producer()
        .send(ProducerRecord::new("cut", "after"))
        .await
        .expect("produce");
    assert_eq!(m.offset, 500, "offsets are never reused");
    let s = raw_fetch(&broker, "cut", 0).await.expect_err("lost");
    assert_data_loss(&s, "offsets 0..500");
    let r = raw_fetch(&broker, "cut", 500).await.expect("new data");
    assert_eq!(first_base(&r), Some(500));
}

/// Issue 13 #5: the background scrub finds a flipped byte in a sealed
/// segment before any consumer reads it; `tidelog check` on the stopped
/// broker reports the same range and exits non-zero, and says a clean
/// topic is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrub_and_tidelog_check_find_damage_before_a_consumer_does() {
    let mut broker = BrokerProcess::start_with_env(&[
        ("TIDELOG_SCRUB_BYTES_PER_SEC", "1000000000"),
        ("TIDELOG_SCRUB_INTERVAL_MS", "100"),
    ]);
    let client = broker.client().await;
    fill_small_segments(&client, "scrubbed", &[("remote.storage.enable", "false")]).await;
    fill_small_segments(&client, "clean", &[("remote.storage.enable", "false")]).await;
    let dir = broker.data_dir.join("topics/scrubbed/0");
    let bases = segment_bases(&dir);
    let seg = dir.join(format!("{:020}.log", bases[1]));
    let positions = batch_positions(&seg);
    let bytes = std::fs::read(&seg).expect("segment");
    let base_at = |i: usize| {
        let p = positions[i] as usize;
        i64::from_le_bytes(bytes[p..p + 8].try_into().expect("8 bytes"))
    };
    let (from, to) = (base_at(1), base_at(2));
    // While the broker runs: it reads the file through its own handle.
    flip_byte(&seg, positions[1] + 70, 0x20);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while broker.metric("tidelog_scrub_damaged_total") != Some(1.0) {
        assert!(std::time::Instant::now() < deadline, "the scrub found it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(broker.metric("tidelog_scrub_bytes_total").unwrap_or(0.0) > 0.0);
    let s = raw_fetch(&broker, "scrubbed", from)
        .await
        .expect_err("damaged");
    assert_data_loss(&s, &format!("offsets {from}..{to}"));

    let refused = tidelog_e2e::tidelog_cmd(
        &[
            "check",
            "--data-dir",
            broker.data_dir.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(
        !refused.status.success(),
        "a running broker's directory is refused"
    );
    drop(client);
    assert!(broker.terminate());

    let data_dir = broker.data_dir.to_str().expect("utf-8");
    let out = tidelog_e2e::tidelog_cmd(&["check", "--data-dir", data_dir], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "offsets {from}..{to} damaged in segment {}",
            bases[1]
        )),
        "{text}"
    );
    assert!(
        text.contains("clean/0:") && text.contains("1 with data loss"),
        "{text}"
    );
    let out = tidelog_e2e::tidelog_cmd(
        &[
            "check",
            "--data-dir",
            data_dir,
            "--topic",
            "clean",
            "--json",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(doc["partitions_with_data_loss"], 0);
    assert_eq!(doc["partitions"][0]["end"], 2000);
}
