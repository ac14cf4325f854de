//! The durable log: segments of record batches with sparse indexes, crash
//! recovery, retention and idempotent-producer state. Knows nothing about
//! topics, gRPC or the network.

pub mod error;
pub mod index;
pub mod partition_log;
pub mod producer_state;
pub mod segment;

pub use error::LogError;
pub use partition_log::{
    find_timestamp, read_batches, AppendResult, IncomingBatch, LogConfig, LogStats, PartitionLog,
    ReadOutcome, ReadPlan, RemoteBounds, SealedSegment,
};
