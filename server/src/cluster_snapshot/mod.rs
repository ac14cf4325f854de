//! The cluster snapshot (`cluster.json` in the bucket): its format and its
//! one publisher. Sits above the broker and the group coordinator (it asks
//! both for their state) and below `serve`; tiering only stores the bytes.

pub mod format;
pub mod publisher;

pub use format::{
    ClusterSnapshot, SnapshotFormatError, SnapshotGroup, SnapshotOffset, SnapshotTopic,
    SNAPSHOT_VERSION,
};
pub use publisher::SnapshotPublisher;
