//! Every kind of bad input gets a precise status and appends nothing.

use bytes::Bytes;
use tidelog::{Error, NewTopic, OffsetSpec, ProducerRecord, SeekTo, TopicPartition};
use tidelog_e2e::error_reason as reason;
use tidelog_e2e::BrokerProcess;
use tidelog_proto::batch::{BatchBuilder, Compression, CRC_START};
use tidelog_proto::v1::{
    consumer_client::ConsumerClient, producer_client::ProducerClient, Acks, FetchRequest,
    ProduceRequest,
};
use tonic::Code;

fn batch(values: &[&str], pid: i64, seq: i32) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None, 1_000);
    for v in values {
        b.push(1_000, None, Some(v.as_bytes()), &[]);
    }
    b.finish(pid, 0, seq)
}

async fn produce_raw(
    addr: &str,
    topic: &str,
    partition: u32,
    batches: Vec<Bytes>,
) -> Result<tidelog_proto::v1::ProduceResponse, tonic::Status> {
    let mut c = ProducerClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    c.produce(ProduceRequest {
        topic: topic.into(),
        partition,
        acks: Acks::All as i32,
        batches,
        request_id: 0,
    })
    .await
    .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_precisely_and_appends_nothing() {
    let broker = BrokerProcess::start();
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .create_topic(NewTopic::new("t", 2).config("max.message.bytes", "2048"))
        .await
        .expect("create");

    // Unknown topic / partition → NOT_FOUND.
    let s = produce_raw(&broker.addr, "nope", 0, vec![batch(&["a"], -1, -1)])
        .await
        .expect_err("unknown topic");
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::NotFound, "UNKNOWN_TOPIC")
    );
    assert!(
        s.message().contains("tidelog topic create"),
        "{}",
        s.message()
    );
    let s = produce_raw(&broker.addr, "t", 7, vec![batch(&["a"], -1, -1)])
        .await
        .expect_err("bad partition");
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::NotFound, "UNKNOWN_PARTITION")
    );
    assert!(matches!(
        admin.describe_topic("nope").await,
        Err(Error::UnknownTopic(_))
    ));

    // Invalid names and configs → INVALID_ARGUMENT with the reason.
    for name in ["", "has space", "slash/no", ".", "..", &"x".repeat(250)] {
        match admin.create_topic(NewTopic::new(name, 1)).await {
            Err(Error::InvalidTopicName(m)) => assert!(m.contains("invalid topic name"), "{m}"),
            other => panic!("{name:?}: {other:?}"),
        }
    }
    assert!(
        admin
            .create_topic(NewTopic::new("x".repeat(249), 1))
            .await
            .is_ok(),
        "249 chars is legal"
    );
    assert!(matches!(
        admin.create_topic(NewTopic::new("zero", 0)).await,
        Err(Error::InvalidRequest(_))
    ));
    match admin
        .create_topic(NewTopic::new("cfg", 1).config("retention.ms", "tomorrow"))
        .await
    {
        Err(Error::InvalidConfig(m)) => assert!(m.contains("retention.ms"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        admin
            .create_topic(NewTopic::new("cfg", 1).config("no.such", "1"))
            .await,
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        admin
            .alter_topic_config("t", [("segment.bytes", "12")], [])
            .await,
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        admin.create_topic(NewTopic::new("t", 1)).await,
        Err(Error::TopicAlreadyExists(_))
    ));

    // Corrupt CRC → CORRUPT_BATCH, and nothing of the request is appended.
    let good = batch(&["good"], -1, -1);
    let mut bad = good.to_vec();
    bad[CRC_START + 10] ^= 0xff;
    let s = produce_raw(&broker.addr, "t", 0, vec![good.clone(), Bytes::from(bad)])
        .await
        .expect_err("corrupt");
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::InvalidArgument, "CORRUPT_BATCH")
    );
    // Truncated batch and garbage.
    let s = produce_raw(&broker.addr, "t", 0, vec![good.slice(..good.len() - 3)])
        .await
        .expect_err("truncated");
    assert_eq!(reason(&s), "CORRUPT_BATCH");
    let s = produce_raw(&broker.addr, "t", 0, vec![Bytes::from_static(&[0xff; 80])])
        .await
        .expect_err("garbage");
    assert_eq!(reason(&s), "CORRUPT_BATCH");
    // A length field claiming 4 GiB is not trusted.
    let mut huge = good.to_vec();
    huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let s = produce_raw(&broker.addr, "t", 0, vec![Bytes::from(huge)])
        .await
        .expect_err("huge length");
    assert_eq!(reason(&s), "CORRUPT_BATCH");
    // Over max.message.bytes → RECORD_TOO_LARGE, nothing appended.
    let big = "y".repeat(4000);
    let s = produce_raw(
        &broker.addr,
        "t",
        0,
        vec![good.clone(), batch(&[&big], -1, -1)],
    )
    .await
    .expect_err("too large");
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::InvalidArgument, "RECORD_TOO_LARGE")
    );
    assert!(s.message().contains("max.message.bytes"), "{}", s.message());
    match client
        .producer()
        .send(ProducerRecord::new("t", big.clone()).partition(1))
        .await
    {
        Err(Error::RecordTooLarge(_)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        admin
            .list_offsets("t", 0, OffsetSpec::Latest)
            .await
            .expect("latest")
            .0,
        0,
        "no rejected request appended anything"
    );

    // Offsets outside the log, negative ones included → OUT_OF_RANGE.
    let mut c = ConsumerClient::connect(format!("http://{}", broker.addr))
        .await
        .expect("connect");
    let fetch = |offset| FetchRequest {
        topic: "t".into(),
        partition: 0,
        offset,
        max_bytes: 0,
        max_wait_ms: 0,
    };
    let s = c.fetch(fetch(-1)).await.expect_err("negative");
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::OutOfRange, "OFFSET_OUT_OF_RANGE")
    );
    let s = c.fetch(fetch(50)).await.expect_err("past end");
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::OutOfRange, "OFFSET_OUT_OF_RANGE")
    );
    let mut consumer = client.consumer();
    let tp = TopicPartition::new("t", 0);
    assert!(matches!(
        consumer.seek(&tp, SeekTo::Offset(0)).await,
        Err(Error::InvalidRequest(_))
    ));

    // The broker is still healthy after all that.
    let m = client
        .producer()
        .send(ProducerRecord::new("t", "fine").partition(0))
        .await
        .expect("good produce");
    assert_eq!(m.offset, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_are_not_written_twice() {
    let mut broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("idem", 1))
        .await
        .expect("create");
    let pid = 4242;
    let first = produce_raw(
        &broker.addr,
        "idem",
        0,
        vec![batch(&["a", "b", "c"], pid, 0)],
    )
    .await
    .expect("first");
    assert_eq!(first.results[0].base_offset, 0);
    assert!(!first.results[0].duplicate);
    // The same batch again (a retry after a lost answer): original offsets.
    let retry = produce_raw(
        &broker.addr,
        "idem",
        0,
        vec![batch(&["a", "b", "c"], pid, 0)],
    )
    .await
    .expect("retry");
    assert_eq!(retry.results[0].base_offset, 0);
    assert!(retry.results[0].duplicate);
    let next = produce_raw(&broker.addr, "idem", 0, vec![batch(&["d"], pid, 3)])
        .await
        .expect("next");
    assert_eq!(next.results[0].base_offset, 3);
    // A gap in sequence numbers is refused.
    let s = produce_raw(&broker.addr, "idem", 0, vec![batch(&["z"], pid, 10)])
        .await
        .expect_err("gap");
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (tonic::Code::FailedPrecondition, "OUT_OF_ORDER_SEQUENCE")
    );

    // Idempotence survives a crash: the retry is still recognised.
    broker.restart();
    let retry = produce_raw(&broker.addr, "idem", 0, vec![batch(&["d"], pid, 3)])
        .await
        .expect("retry after restart");
    assert_eq!(
        (retry.results[0].base_offset, retry.results[0].duplicate),
        (3, true)
    );
    let client = broker.client().await;
    assert_eq!(
        client
            .admin()
            .list_offsets("idem", 0, OffsetSpec::Latest)
            .await
            .expect("latest")
            .0,
        4
    );
}

/// On the pipelined `ProduceStream`, a bad request gets an error answer of
/// its own (same code and reason as the unary call), appends nothing, and
/// the stream goes on: later requests are still appended and answered, in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_stream_answers_each_request_in_order_and_survives_bad_ones() {
    let broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("s", 1))
        .await
        .expect("create");
    let mut c = ProducerClient::connect(format!("http://{}", broker.addr))
        .await
        .expect("connect");
    let good = batch(&["a", "b"], -1, -1);
    let mut corrupt = good.to_vec();
    corrupt[CRC_START + 3] ^= 0x01;
    let request = |id: u64, topic: &str, batches: Vec<Bytes>| ProduceRequest {
        topic: topic.into(),
        partition: 0,
        acks: Acks::All as i32,
        batches,
        request_id: id,
    };
    let requests = vec![
        request(1, "s", vec![good.clone()]),
        request(2, "s", vec![good.clone(), Bytes::from(corrupt)]),
        request(3, "nope", vec![good.clone()]),
        request(4, "s", vec![]),
        request(5, "s", vec![good.clone()]),
    ];
    let mut answers = c
        .produce_stream(futures::stream::iter(requests))
        .await
        .expect("stream")
        .into_inner();
    let mut got = Vec::new();
    while let Some(a) = answers.message().await.expect("answer") {
        got.push(a);
    }
    let ids: Vec<u64> = got.iter().map(|a| a.request_id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5], "answered once each, in order");
    let offsets = |i: usize| {
        got[i]
            .response
            .as_ref()
            .map(|r| r.results.iter().map(|b| b.base_offset).collect::<Vec<_>>())
    };
    assert_eq!(offsets(0), Some(vec![0]));
    let reasons: Vec<(i32, String)> = got[1..4]
        .iter()
        .map(|a| {
            let e = a.error.as_ref().expect("an error answer");
            (
                e.code,
                tidelog_proto::v1::ErrorReason::try_from(e.reason)
                    .map(|r| r.as_str_name().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            (Code::InvalidArgument as i32, "CORRUPT_BATCH".to_string()),
            (Code::NotFound as i32, "UNKNOWN_TOPIC".to_string()),
            (Code::InvalidArgument as i32, "INVALID_REQUEST".to_string()),
        ]
    );
    // Nothing of the corrupt request was appended: the last good one
    // follows the first directly.
    assert_eq!(offsets(4), Some(vec![2]));
    let latest = client
        .admin()
        .list_offsets("s", 0, OffsetSpec::Latest)
        .await
        .expect("latest")
        .0;
    assert_eq!(latest, 4);
}
