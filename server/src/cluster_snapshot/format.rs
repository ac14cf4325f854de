//! The cluster snapshot's format (`cluster.json`, version 1): topics with
//! their partitions, config overrides and incarnation, and every consumer
//! group's committed offsets. Enough to rebuild a data directory with
//! `tidelog restore`. Tiering stores the bytes; the publisher writes them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::tiering::manifest::Writer;

/// Format version of [`ClusterSnapshot`].
pub const SNAPSHOT_VERSION: u32 = 1;

/// Why snapshot bytes are not a snapshot this broker reads.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFormatError {
    /// Not JSON of the expected shape.
    #[error("cannot decode the cluster snapshot: {0}")]
    Json(#[from] serde_json::Error),
    /// A format version this broker does not know.
    #[error("unsupported cluster snapshot version {0}")]
    Version(u32),
}

/// One topic in the cluster snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTopic {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
    /// Config overrides.
    pub config: BTreeMap<String, String>,
    /// Creation time (ms): the incarnation in keys.
    pub created_ms: i64,
}

/// Committed offsets of one consumer group in the cluster snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotGroup {
    /// Group id.
    pub group_id: String,
    /// Committed offsets.
    pub offsets: Vec<SnapshotOffset>,
}

/// One committed offset in the cluster snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Next offset to consume.
    pub offset: i64,
    /// Commit metadata.
    pub metadata: String,
    /// Commit time (ms).
    pub commit_ms: i64,
}

/// What the bucket knows about the cluster: enough to rebuild a data
/// directory with `tidelog restore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    /// Format version.
    pub version: u32,
    /// Last writer.
    pub writer: Writer,
    /// The cluster the writing broker belongs to (absent in snapshots of
    /// brokers from before clustering).
    #[serde(default)]
    pub cluster_id: String,
    /// When it was written (ms).
    pub updated_ms: i64,
    /// Topics.
    pub topics: Vec<SnapshotTopic>,
    /// Consumer groups' committed offsets (published every few seconds
    /// while they change; absent in snapshots of older brokers).
    #[serde(default)]
    pub groups: Vec<SnapshotGroup>,
}

impl ClusterSnapshot {
    /// JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses and checks a snapshot.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotFormatError> {
        let s: ClusterSnapshot = serde_json::from_slice(bytes)?;
        if s.version != SNAPSHOT_VERSION {
            return Err(SnapshotFormatError::Version(s.version));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trips() {
        let s = ClusterSnapshot {
            version: SNAPSHOT_VERSION,
            writer: Writer {
                broker_id: 0,
                epoch: 1,
            },
            cluster_id: "c1".into(),
            updated_ms: 3,
            topics: vec![SnapshotTopic {
                name: "a".into(),
                partitions: 2,
                config: BTreeMap::from([("retention.ms".into(), "-1".into())]),
                created_ms: 11,
            }],
            groups: vec![SnapshotGroup {
                group_id: "g".into(),
                offsets: vec![SnapshotOffset {
                    topic: "a".into(),
                    partition: 1,
                    offset: 42,
                    metadata: "m".into(),
                    commit_ms: 5,
                }],
            }],
        };
        assert_eq!(ClusterSnapshot::decode(&s.encode()).expect("decode"), s);
    }
}
