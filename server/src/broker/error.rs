//! Errors of the broker layer: what a client did wrong or what went wrong
//! inside. Converted to a gRPC status in exactly one place (`api::status`).

use std::path::PathBuf;

use crate::log::{DamagedBatch, LogError};
use crate::tiering::TieringError;

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The topic does not exist.
    #[error("unknown topic '{0}': create it with `tidelog topic create {0} --partitions N`")]
    UnknownTopic(String),
    /// The partition number is out of range.
    #[error("unknown partition {partition} of topic '{topic}': it has {}", partition_range(*count))]
    UnknownPartition {
        /// Topic name.
        topic: String,
        /// Requested partition.
        partition: u32,
        /// Number of partitions.
        count: u32,
    },
    /// The topic was deleted while a subscription to it was open.
    #[error("topic '{0}' was deleted; if it was created again, subscribe again")]
    TopicDeleted(String),
    /// The topic already exists.
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    /// The topic name breaks the rules.
    #[error("invalid topic name '{name}': {reason}")]
    InvalidTopicName {
        /// Name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A config key or value is not valid.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// Any other invalid request field.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A failure of the log layer.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A batch on this broker's own disk failed its check when read back:
    /// the stored copy is damaged (not the client's fault).
    #[error("data loss in partition {partition}{}: {batch} (segment {path})", reading.map(|o| format!(" reading offset {o}")).unwrap_or_default())]
    LocalDataLoss {
        /// `topic/partition`.
        partition: String,
        /// The offset a fetch asked for (`None`: a timestamp lookup).
        reading: Option<i64>,
        /// The segment file.
        path: PathBuf,
        /// Offset, position and what is wrong.
        batch: DamagedBatch,
    },
    /// Offsets below the log end that this broker's disk cannot serve
    /// (damaged or missing bytes) and the bucket does not hold either.
    #[error("data loss in partition {partition}: offsets {from}..{to} are damaged or missing on this broker's disk ({detail}); read from offset {to} to go past them")]
    MissingOffsets {
        /// `topic/partition`.
        partition: String,
        /// First offset that cannot be read.
        from: i64,
        /// First offset readable again.
        to: i64,
        /// What was found, and where.
        detail: String,
    },
    /// Another broker hosts this partition (the API names the leader).
    #[error("partition {topic}/{partition} is not hosted on this broker")]
    NotHosted {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
    },
    /// Another broker leads this partition.
    #[error("partition {topic}/{partition} is led by {}; refresh metadata and send it there", leader.as_ref().map_or_else(|| "another broker (not known yet)".to_string(), |(id, addr)| format!("broker {id} at {addr}")))]
    NotLeader {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// The leader's id and client address, when known.
        leader: Option<(u32, String)>,
    },
    /// The cluster's metadata cannot change now (no majority or no
    /// controller); retriable.
    #[error("{0}")]
    QuorumUnavailable(String),
    /// A failure outside the log (metadata files and the like).
    #[error("storage error: {0}")]
    Storage(String),
    /// A failure of tiered storage (bucket unreachable, remote data corrupt).
    #[error(transparent)]
    Tiering(#[from] TieringError),
    /// Local log data passed `local_disk_high_water_bytes` (uploads to the
    /// object store are behind); producers should retry later.
    #[error("local disk above its high-water mark ({used} of {limit} bytes of log; uploads to the object store are behind): retry later")]
    DiskFull {
        /// Bytes of log on local disk.
        used: u64,
        /// The configured mark.
        limit: u64,
    },
    /// The broker is stopping.
    #[error("the broker is shutting down; retry against another broker or after restart")]
    ShuttingDown,
}

/// "partition 0" or "partitions 0..=N-1".
pub fn partition_range(count: u32) -> String {
    match count {
        0 => "no partitions".to_string(),
        1 => "partition 0".to_string(),
        n => format!("partitions 0..={}", n - 1),
    }
}
