//! What makes `catchup` read from the bucket: the topic it creates keeps
//! nothing but the active segment on the broker's disk, and the run starts
//! only once the sealed segments have been uploaded and dropped locally.

use std::time::{Duration, Instant};

use tidelog::{Client, NewTopic};

use crate::BenchError;

/// Segment size of topics the catchup mode creates.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// How long to wait for uploads before reading anyway.
const UPLOAD_WAIT: Duration = Duration::from_secs(120);

/// `topic` with tiered storage on and no local retention beyond the active
/// segment, so that reads from the first offset come from the bucket.
pub(crate) fn tiered(topic: NewTopic) -> NewTopic {
    topic
        .config("segment.bytes", SEGMENT_BYTES.to_string())
        .config("local.retention.bytes", "0")
        .config("remote.storage.enable", "true")
}

/// Waits until every sealed segment of the topic has left local disk for
/// the bucket (at most two minutes), reporting how much of the topic is
/// remote-only.
pub(crate) async fn wait_for_bucket(client: &Client, topic: &str) -> Result<(), BenchError> {
    let deadline = Instant::now() + UPLOAD_WAIT;
    loop {
        let d = client.admin().describe_topic(topic).await?;
        let total: i64 = d
            .partitions
            .iter()
            .map(|p| p.log_end_offset - p.log_start_offset)
            .sum();
        let remote_only: i64 = d
            .partitions
            .iter()
            .map(|p| (p.local_start_offset.min(p.log_end_offset) - p.log_start_offset).max(0))
            .sum();
        let settled = d.partitions.iter().all(|p| p.segments <= 1);
        if settled || Instant::now() >= deadline {
            eprintln!(
                "{topic}: {remote_only} of {total} record(s) are in the bucket only{}",
                if settled {
                    ""
                } else {
                    " (uploads still running after 120 s)"
                }
            );
            return Ok(());
        }
        eprintln!("waiting for uploads: {remote_only} of {total} record(s) in the bucket only");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
