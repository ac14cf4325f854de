//! Broker lifecycle: clean shutdown, restart with data, retention, health
//! endpoints and metrics.

use std::time::Duration;

use tidelog::{NewTopic, ProducerConfig, ProducerRecord};
use tidelog_e2e::BrokerProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_data_survives() {
    let mut broker = BrokerProcess::start();
    assert_eq!(broker.http_get("/healthz").map(|r| r.0), Some(200));
    assert_eq!(broker.http_get("/readyz").map(|r| r.0), Some(200));
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("keep", 2))
        .await
        .expect("create");
    let producer = client.producer();
    for i in 0..1000 {
        producer
            .enqueue(ProducerRecord::new("keep", format!("{i}")).key(format!("{}", i % 7)))
            .await
            .expect("enqueue");
    }
    producer.flush().await.expect("flush");
    let metrics = broker.http_get("/metrics").expect("metrics").1;
    assert!(
        metrics.contains("tidelog_produce_records_total{topic=\"keep\"} 1000"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tidelog_fsync_latency_seconds_count"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tidelog_log_size_bytes{topic=\"keep\"}"),
        "{metrics}"
    );
    assert!(broker.terminate(), "exit status 0 after SIGTERM");
    assert!(broker.log().contains("stopped"), "{}", broker.log());
    broker.start_again();
    let client = broker.client().await;
    let d = client
        .admin()
        .describe_topic("keep")
        .await
        .expect("describe");
    let total: i64 = d.partitions.iter().map(|p| p.log_end_offset).sum();
    assert_eq!(total, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_whole_old_segments() {
    let broker = BrokerProcess::start_with_env(&[("TIDELOG_RETENTION_CHECK_INTERVAL_MS", "200")]);
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .create_topic(
            // Local-only retention (tiered retention: tests/tiering.rs).
            NewTopic::new("ret", 1)
                .config("remote.storage.enable", "false")
                .config("segment.bytes", "4096")
                .config("retention.bytes", "16384"),
        )
        .await
        .expect("create");
    // Small batches so the records spread over many small segments.
    let producer = client.producer_with(ProducerConfig {
        batch_bytes: 1024,
        ..ProducerConfig::default()
    });
    for i in 0..2000 {
        producer
            .enqueue(ProducerRecord::new(
                "ret",
                format!("value-{i:06}-{}", "z".repeat(40)),
            ))
            .await
            .expect("enqueue");
    }
    producer.flush().await.expect("flush");
    // Retention runs on its own timer, possibly mid-production: wait for a
    // round after the last segment sealed, not just the first deletion.
    let mut start = 0;
    let mut d = admin.describe_topic("ret").await.expect("describe");
    for _ in 0..100 {
        d = admin.describe_topic("ret").await.expect("describe");
        start = d.partitions[0].log_start_offset;
        if start > 0 && d.partitions[0].size_bytes <= 16384 + 4096 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(start > 0, "retention advanced the log start");
    let p = &d.partitions[0];
    assert!(
        p.size_bytes <= 16384 + 4096,
        "size {} within retention.bytes + one segment",
        p.size_bytes
    );
    assert_eq!(p.log_end_offset, 2000);
    assert_eq!(p.log_start_offset, start);

    // Time-based retention: records with old timestamps go once sealed.
    admin
        .create_topic(
            NewTopic::new("old", 1)
                .config("remote.storage.enable", "false")
                .config("segment.bytes", "4096")
                .config("retention.ms", "60000"),
        )
        .await
        .expect("create");
    let old_ts = tidelog_e2e::now_ms() - 3_600_000;
    for i in 0..500 {
        producer
            .enqueue(ProducerRecord::new("old", format!("{i:0100}")).timestamp(old_ts))
            .await
            .expect("enqueue");
    }
    producer.flush().await.expect("flush");
    // As above: wait for a retention round after the last roll.
    let mut start = 0;
    let mut d = admin.describe_topic("old").await.expect("describe");
    for _ in 0..100 {
        d = admin.describe_topic("old").await.expect("describe");
        start = d.partitions[0].log_start_offset;
        if start > 0 && d.partitions[0].segments == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(start > 0, "expired segments deleted");
    assert_eq!(
        d.partitions[0].segments, 1,
        "only the active segment is kept"
    );
}
