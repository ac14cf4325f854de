//! The durable log: segments of record batches with sparse indexes, crash
//! recovery, retention and idempotent-producer state. Knows nothing about
//! topics, gRPC or the network.

pub mod batch_read;
pub mod check;
pub mod error;
pub mod index;
pub mod partition_log;
pub mod producer_state;
pub mod recovery_point;
pub mod segment;
pub mod segment_scan;

pub use batch_read::{DamagedBatch, ReadOutcome, ReadPlan, SegmentBytes};
pub use error::LogError;
pub use partition_log::{
    AppendResult, IncomingBatch, LogConfig, LogStats, PartitionLog, RemoteBounds, ScrubTarget,
    SealedSegment,
};
