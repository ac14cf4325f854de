//! The one writer of `cluster.json`. It is written at start, after every
//! topic create, delete or config change (the broker tells its
//! [`TopicListener`], and create/delete wait for the write), and within
//! [`PUBLISH_EVERY`] of a change to committed offsets (the publisher
//! compares the coordinator's offsets version with the one it last wrote).
//! A failed write leaves the bucket's copy marked behind, so the next tick
//! retries it; a last write runs at shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

use super::format::{ClusterSnapshot, SnapshotGroup, SnapshotOffset, SnapshotTopic};
use super::SNAPSHOT_VERSION;
use crate::broker::{Broker, TopicListener};
use crate::groups::GroupCoordinator;
use crate::tiering::Tiering;

/// How often changed offsets (or a failed write) are published.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(5);

/// Writes the cluster snapshot from the broker's and the coordinator's state.
#[derive(Debug)]
pub struct SnapshotPublisher {
    broker: Arc<Broker>,
    groups: Arc<GroupCoordinator>,
    tiering: Arc<Tiering>,
    /// The cluster this broker belongs to.
    cluster_id: String,
    /// Serialises writes, so an older state never lands after a newer one.
    write: tokio::sync::Mutex<()>,
    /// Offsets version of the bucket's copy; `None` while the copy is
    /// behind the topics (not written yet, or the last write failed).
    written: Mutex<Option<u64>>,
}

impl SnapshotPublisher {
    /// Publishes once, registers for topic changes and starts the periodic
    /// task (a broker task: it ends, after a last write, at shutdown).
    pub async fn start(
        broker: Arc<Broker>,
        groups: Arc<GroupCoordinator>,
        tiering: Arc<Tiering>,
        cluster_id: String,
    ) -> Arc<Self> {
        let p = Arc::new(SnapshotPublisher {
            broker: Arc::clone(&broker),
            groups,
            tiering,
            cluster_id,
            write: tokio::sync::Mutex::new(()),
            written: Mutex::new(None),
        });
        let listener: Arc<dyn TopicListener> = p.clone();
        broker.set_topic_listener(Arc::downgrade(&listener));
        p.publish().await;
        let task = Arc::clone(&p);
        let shutdown = broker.shutdown_token().clone();
        broker.spawn(async move {
            let mut tick = tokio::time::interval(PUBLISH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    _ = shutdown.cancelled() => true,
                };
                if task.is_behind() {
                    task.publish().await;
                }
                if stopping {
                    return;
                }
            }
        });
        p
    }

    fn is_behind(&self) -> bool {
        *self.written.lock() != Some(self.groups.offsets_version())
    }

    /// Writes the snapshot now; a failure is logged and retried by the
    /// periodic task.
    pub async fn publish(&self) {
        let _write = self.write.lock().await;
        // Read the version before the offsets: a commit landing in between
        // makes the next tick publish again.
        let version = self.groups.offsets_version();
        let snap = ClusterSnapshot {
            version: SNAPSHOT_VERSION,
            writer: self.tiering.writer,
            cluster_id: self.cluster_id.clone(),
            updated_ms: chrono::Utc::now().timestamp_millis(),
            topics: self.topics(),
            groups: self.offsets(),
        };
        let written = match self
            .tiering
            .put_cluster_snapshot(Bytes::from(snap.encode()))
            .await
        {
            Ok(()) => Some(version),
            Err(e) => {
                tracing::warn!(error = %e, "could not write the cluster snapshot to the bucket; retrying");
                None
            }
        };
        *self.written.lock() = written;
    }

    fn topics(&self) -> Vec<SnapshotTopic> {
        self.broker
            .topics()
            .iter()
            .map(|t| {
                let m = t.meta();
                SnapshotTopic {
                    name: m.name,
                    partitions: m.partitions,
                    config: m.config,
                    created_ms: m.created_ms,
                }
            })
            .collect()
    }

    fn offsets(&self) -> Vec<SnapshotGroup> {
        self.groups
            .all_committed()
            .into_iter()
            .map(|(group_id, offsets)| SnapshotGroup {
                group_id,
                offsets: offsets
                    .into_iter()
                    .map(|((topic, partition), c)| SnapshotOffset {
                        topic,
                        partition,
                        offset: c.offset,
                        metadata: c.metadata,
                        commit_ms: c.commit_ms,
                    })
                    .collect(),
            })
            .collect()
    }
}

impl TopicListener for SnapshotPublisher {
    fn topics_changed(self: Arc<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move { self.publish().await })
    }
}
