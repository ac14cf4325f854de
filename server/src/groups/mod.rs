//! Consumer groups: the coordinator (`membership`: joins, heartbeats,
//! server-side sticky assignment in `assignor`, fencing), offset `commit`s
//! made durable in `offsets`, and group `admin` (describe with lag, delete,
//! reset offsets). The cluster snapshot publisher (a layer above) reads
//! committed offsets through [`GroupCoordinator::all_committed`].
//!
//! Protocol, in the direction of Kafka's KIP-848: members only heartbeat,
//! reporting their subscription and the partitions they own; the
//! coordinator answers with the partitions they may own now. A partition
//! leaving a member is first dropped from that member's assignment; it is
//! given to its new owner only once the old owner stops reporting it, so no
//! partition is owned by two members at once. Each member's epoch changes
//! whenever its assignment does and commits must carry it.

mod admin;
pub mod assignor;
mod commit;
pub mod error;
mod membership;
pub mod offsets;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::broker::Broker;
pub use admin::{GroupDescription, MemberDescription, PartitionLag, ResetPlanEntry, ResetTo};
pub use error::GroupError;
use membership::Group;
pub use membership::{Heartbeat, HeartbeatReply};
use offsets::{Committed, OffsetStore, Tp};

/// Default session timeout.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest group id.
const MAX_GROUP_ID: usize = 249;
/// Longest commit metadata.
const MAX_METADATA: usize = 4096;

/// Group state names shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Every member owns exactly its target.
    Stable,
    /// Partitions are moving between members.
    Reconciling,
}

impl GroupState {
    /// Upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "EMPTY",
            GroupState::Stable => "STABLE",
            GroupState::Reconciling => "RECONCILING",
        }
    }
}

/// The group coordinator of this broker.
#[derive(Debug)]
pub struct GroupCoordinator {
    broker: Arc<Broker>,
    /// Partition counts of topics, wherever their partitions are hosted
    /// (the cluster's metadata; this broker's topics until it is set).
    directory: std::sync::OnceLock<Arc<dyn PartitionDirectory>>,
    store: OffsetStore,
    /// Bumped after every change to committed offsets, so readers (the
    /// cluster snapshot publisher) can tell whether theirs are current.
    offsets_version: AtomicU64,
    groups: Mutex<HashMap<String, Group>>,
    heartbeat_interval: Duration,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Where a group coordinator learns how many partitions a topic has,
/// including partitions other brokers host.
pub trait PartitionDirectory: Send + Sync + std::fmt::Debug {
    /// The topic's partition count; `None` when it does not exist.
    fn partition_count(&self, topic: &str) -> Option<u32>;
    /// Log start and high watermark of a partition another broker hosts
    /// (asked of it); `None` when it cannot be reached.
    fn remote_bounds<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
    ) -> futures::future::BoxFuture<'a, Option<(i64, i64)>>;
    /// First offset with timestamp >= `ts` of a partition another broker
    /// hosts (its high watermark when none is that recent).
    fn remote_offset_for_time<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        ts: i64,
    ) -> futures::future::BoxFuture<'a, Option<i64>>;
}

impl GroupCoordinator {
    /// Sets where partition counts come from (once; the cluster's metadata).
    pub fn set_directory(&self, directory: Arc<dyn PartitionDirectory>) {
        let _ = self.directory.set(directory);
    }

    /// Log start and high watermark of a partition, here or on the broker
    /// that hosts it; `None` when unknown.
    pub(crate) async fn bounds(&self, topic: &str, partition: u32) -> Option<(i64, i64)> {
        if let Ok(p) = self.broker.partition(topic, partition) {
            return Some((p.log_start_offset(), p.high_watermark()));
        }
        self.directory.get()?.remote_bounds(topic, partition).await
    }

    /// The partition count of a topic, wherever its partitions live.
    pub(crate) fn partition_count(&self, topic: &str) -> Option<u32> {
        match self.directory.get() {
            Some(d) => d.partition_count(topic),
            None => self.broker.topic(topic).ok().map(|t| t.partition_count()),
        }
    }
}

/// Checks a group id.
pub fn validate_group_id(id: &str) -> Result<(), GroupError> {
    if id.is_empty() || id.len() > MAX_GROUP_ID || id.chars().any(char::is_control) {
        return Err(GroupError::InvalidGroupId(id.to_string()));
    }
    Ok(())
}

impl GroupCoordinator {
    /// Opens the offset store under `<data-dir>/groups` and starts the
    /// session-expiry task.
    pub fn open(
        broker: Arc<Broker>,
        heartbeat_interval: Duration,
    ) -> Result<Arc<Self>, GroupError> {
        let store = OffsetStore::open(&broker.settings().data_dir.join("groups"))?;
        let c = Arc::new(GroupCoordinator {
            broker: Arc::clone(&broker),
            directory: std::sync::OnceLock::new(),
            store,
            offsets_version: AtomicU64::new(0),
            groups: Mutex::new(HashMap::new()),
            heartbeat_interval,
        });
        let weak = Arc::downgrade(&c);
        let shutdown = broker.shutdown_token().clone();
        broker.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.cancelled() => return,
                }
                let Some(c) = weak.upgrade() else { return };
                c.expire_members();
            }
        });
        Ok(c)
    }

    /// Suggested heartbeat interval.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// Changes with every change to committed offsets.
    pub fn offsets_version(&self) -> u64 {
        self.offsets_version.load(Ordering::Acquire)
    }

    /// Every group's committed offsets.
    pub fn all_committed(&self) -> Vec<(String, BTreeMap<Tp, Committed>)> {
        self.store.snapshot()
    }

    /// Records a change to committed offsets; called after the store holds
    /// it, so a reader that sees the new version also sees the offsets.
    fn offsets_changed<T>(&self, result: Result<T, GroupError>) -> Result<T, GroupError> {
        self.offsets_version.fetch_add(1, Ordering::AcqRel);
        result
    }
}
