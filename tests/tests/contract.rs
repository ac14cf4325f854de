//! What `proto/tidelog/v1/tidelog.proto` promises about offsets, streams,
//! limits and idempotence, checked over raw gRPC as a client written from
//! the contract alone would see it.

use std::time::Duration;

use bytes::Bytes;
use tidelog::NewTopic;
use tidelog_e2e::error_reason as reason;
use tidelog_e2e::BrokerProcess;
use tidelog_proto::batch::{BatchBuilder, Compression};
use tidelog_proto::v1::{
    consumer_client::ConsumerClient, offset_spec::Spec, producer_client::ProducerClient, Acks,
    FetchRequest, ProduceRequest, ProduceResponse, SubscribeRequest,
};
use tonic::Code;

fn batch(n: usize, value: &[u8], pid: i64, seq: i32) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None, 1_000);
    for _ in 0..n {
        b.push(1_000, None, Some(value), &[]);
    }
    b.finish(pid, 0, seq)
}

async fn produce(
    addr: &str,
    topic: &str,
    batches: Vec<Bytes>,
) -> Result<ProduceResponse, tonic::Status> {
    let mut c = ProducerClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    c.produce(ProduceRequest {
        topic: topic.into(),
        partition: 0,
        acks: Acks::All as i32,
        batches,
        request_id: 0,
    })
    .await
    .map(|r| r.into_inner())
}

async fn consumer(addr: &str) -> ConsumerClient<tonic::transport::Channel> {
    ConsumerClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
}

async fn list(addr: &str, topic: &str, spec: Spec) -> Result<(i64, i64), tonic::Status> {
    tidelog_e2e::list_offsets_raw(addr, topic, 0, spec).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_follow_kafka_meanings_and_out_of_range_is_out_of_range() {
    let broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("o", 1).config("retention.ms", "-1"))
        .await
        .expect("create");
    produce(&broker.addr, "o", vec![batch(5, b"v", -1, -1)])
        .await
        .expect("produce");

    // Kafka's -1 (latest) and -2 (earliest) timestamps.
    assert_eq!(
        list(&broker.addr, "o", Spec::TimestampMs(-1))
            .await
            .expect("latest"),
        (5, -1)
    );
    assert_eq!(
        list(&broker.addr, "o", Spec::TimestampMs(-2))
            .await
            .expect("earliest"),
        (0, -1)
    );
    assert_eq!(
        list(&broker.addr, "o", Spec::Latest(true))
            .await
            .expect("latest"),
        (5, -1)
    );
    assert_eq!(
        list(&broker.addr, "o", Spec::Earliest(true))
            .await
            .expect("earliest"),
        (0, -1)
    );
    // Other negatives and false flags mean nothing: refused, not guessed.
    for spec in [
        Spec::TimestampMs(-5),
        Spec::Earliest(false),
        Spec::Latest(false),
    ] {
        let s = list(&broker.addr, "o", spec).await.expect_err("refused");
        assert_eq!(
            (s.code(), reason(&s).as_str()),
            (Code::InvalidArgument, "INVALID_REQUEST"),
            "{spec:?}"
        );
        assert!(!s.message().is_empty());
    }

    // A negative offset is out of range, for Fetch and for Subscribe.
    let s = consumer(&broker.addr)
        .await
        .fetch(FetchRequest {
            topic: "o".into(),
            partition: 0,
            offset: -3,
            max_bytes: 0,
            max_wait_ms: 0,
        })
        .await
        .expect_err("negative fetch");
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::OutOfRange, "OFFSET_OUT_OF_RANGE")
    );
    let s = consumer(&broker.addr)
        .await
        .subscribe(SubscribeRequest {
            topic: "o".into(),
            partition: 0,
            offset: -1,
            max_bytes: 0,
        })
        .await
        .expect_err("negative subscribe");
    assert_eq!(s.code(), Code::OutOfRange);

    // A bad partition of a one-partition topic names the one it has.
    let s = consumer(&broker.addr)
        .await
        .fetch(FetchRequest {
            topic: "o".into(),
            partition: 1,
            offset: 0,
            max_bytes: 0,
            max_wait_ms: 0,
        })
        .await
        .expect_err("bad partition");
    assert_eq!(reason(&s), "UNKNOWN_PARTITION");
    assert!(
        s.message().contains("it has partition 0"),
        "{}",
        s.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_ends_with_not_found_when_its_topic_is_deleted() {
    let broker = BrokerProcess::start();
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .create_topic(NewTopic::new("gone", 1))
        .await
        .expect("create");
    produce(&broker.addr, "gone", vec![batch(1, b"v", -1, -1)])
        .await
        .expect("produce");
    let mut stream = consumer(&broker.addr)
        .await
        .subscribe(SubscribeRequest {
            topic: "gone".into(),
            partition: 0,
            offset: 0,
            max_bytes: 0,
        })
        .await
        .expect("subscribe")
        .into_inner();
    let first = stream.message().await.expect("first").expect("message");
    assert!(!first.records.is_empty());
    admin.delete_topic("gone").await.expect("delete");
    // Re-created and written: the old subscription must not silently idle
    // on, nor pick up the new log.
    admin
        .create_topic(NewTopic::new("gone", 1))
        .await
        .expect("re-create");
    produce(&broker.addr, "gone", vec![batch(1, b"new", -1, -1)])
        .await
        .expect("produce");
    // Well within one keepalive interval (5 s).
    let end = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match stream.message().await {
                Ok(Some(m)) => assert!(m.records.is_empty(), "data after deletion"),
                Ok(None) => panic!("stream ended without a status"),
                Err(s) => return s,
            }
        }
    })
    .await
    .expect("the stream ends promptly");
    assert_eq!(
        (end.code(), reason(&end).as_str()),
        (Code::NotFound, "UNKNOWN_TOPIC")
    );
    assert!(end.message().contains("deleted"), "{}", end.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_max_bytes_still_fits_a_default_grpc_client() {
    let (broker, _client) = tidelog_e2e::broker_with_topic("big", 1).await;
    // 8 MiB in batches of ~512 KiB.
    let value = vec![b'x'; 8 * 1024];
    for _ in 0..4 {
        let batches = (0..4).map(|_| batch(64, &value, -1, -1)).collect();
        produce(&broker.addr, "big", batches)
            .await
            .expect("produce");
    }
    // A default client: 4 MiB receive limit.
    let r = consumer(&broker.addr)
        .await
        .fetch(FetchRequest {
            topic: "big".into(),
            partition: 0,
            offset: 0,
            max_bytes: u32::MAX,
            max_wait_ms: 0,
        })
        .await
        .expect("fits the default limit")
        .into_inner();
    assert!(r.records.len() > 2 * 1024 * 1024, "clamped, not starved");
    assert!(r.records.len() <= 4 * 1024 * 1024 - 4 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_older_than_the_dedupe_window_is_a_duplicate_not_a_loss() {
    let (broker, _client) = tidelog_e2e::broker_with_topic("d", 1).await;
    let pid = 77;
    // 300 one-record batches: more than the 256 the broker remembers.
    for chunk in 0..3 {
        let batches = (0..100)
            .map(|i| batch(1, b"v", pid, chunk * 100 + i))
            .collect();
        produce(&broker.addr, "d", batches).await.expect("produce");
    }
    // The newest is still recognised with its offset.
    let r = produce(&broker.addr, "d", vec![batch(1, b"v", pid, 299)])
        .await
        .expect("retry");
    assert_eq!(
        (r.results[0].base_offset, r.results[0].duplicate),
        (299, true)
    );
    // The oldest is past the window: DUPLICATE_SEQUENCE_NUMBER, nothing appended.
    let s = produce(&broker.addr, "d", vec![batch(1, b"v", pid, 0)])
        .await
        .expect_err("too old");
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::AlreadyExists, "DUPLICATE_SEQUENCE_NUMBER")
    );
    // A gap is still a loss.
    let s = produce(&broker.addr, "d", vec![batch(1, b"v", pid, 305)])
        .await
        .expect_err("gap");
    assert_eq!(reason(&s), "OUT_OF_ORDER_SEQUENCE");
    assert_eq!(
        list(&broker.addr, "d", Spec::Latest(true))
            .await
            .expect("end")
            .0,
        300
    );
    // And the producer goes on where it was.
    let r = produce(&broker.addr, "d", vec![batch(1, b"v", pid, 300)])
        .await
        .expect("next");
    assert_eq!(r.results[0].base_offset, 300);
}
