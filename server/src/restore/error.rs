//! Errors of `tidelog restore` and of the start-up check over the bucket.

use std::path::PathBuf;

use crate::broker::BrokerError;
use crate::cluster_snapshot::SnapshotFormatError;
use crate::groups::GroupError;
use crate::log::LogError;
use crate::tiering::TieringError;

/// Why a restore (or a start over the bucket) cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Restore writes only into a data directory without topics.
    #[error("the data directory {0} already holds topics; restore needs an empty one")]
    DataDirHoldsTopics(PathBuf),
    /// The bucket has no `cluster.json`.
    #[error("{url} holds no cluster snapshot: nothing to restore")]
    NoSnapshot {
        /// Store URL.
        url: String,
    },
    /// `--topic` names a topic the snapshot does not list.
    #[error("topic '{0}' is not in the bucket's snapshot")]
    UnknownTopic(String),
    /// The data directory is empty but the bucket holds topics.
    #[error("the data directory {data_dir} holds no topics but the object store {url} holds {topics} topic(s) ({names}); refusing to start a fresh log over them. Rebuild the data directory with `tidelog restore --object-store {url} --data-dir {data_dir}`, or point the broker at another bucket/prefix")]
    BucketHoldsTopics {
        /// Data directory.
        data_dir: String,
        /// Store URL.
        url: String,
        /// Number of topics found.
        topics: usize,
        /// Their names.
        names: String,
    },
    /// `cluster.json` does not parse.
    #[error(transparent)]
    Snapshot(#[from] SnapshotFormatError),
    /// Reading the bucket failed, or a manifest does not parse.
    #[error(transparent)]
    Tiering(#[from] TieringError),
    /// A directory could not be created.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Creating a partition's log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Writing a topic's metadata failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Writing committed offsets failed.
    #[error(transparent)]
    Groups(#[from] GroupError),
}
