//! Errors of the log layer.

use std::path::{Path, PathBuf};

use tidelog_proto::batch::BatchError;

use super::batch_read::DamagedBatch;

/// Why a log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A filesystem call failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A batch a client sent failed validation.
    #[error("corrupt batch: {0}")]
    Corrupt(BatchError),
    /// A batch stored on this broker's disk failed its check when read back.
    #[error("stored data is damaged in {path}: {batch}")]
    Damaged {
        /// The segment file.
        path: PathBuf,
        /// Where and what.
        batch: DamagedBatch,
    },
    /// Offsets below the log end that no local segment holds: recovery cut
    /// a damaged segment short. Never skipped silently.
    #[error("offsets {from}..{to} are missing from this broker's disk")]
    Missing {
        /// First missing offset.
        from: i64,
        /// First offset held again.
        to: i64,
    },
    /// The log ends below offsets it once made durable: segment data is
    /// missing. Opening would hand those offsets out again.
    #[error("{dir}: the log ends at offset {end} but offsets up to {recovery_point} were made durable and acknowledged (its recovery point); segment data is missing. Put the missing segment files back, or start the broker with --accept-data-loss to continue at offset {recovery_point} (offsets {end}..{recovery_point} then read as DATA_LOSS)", dir = dir.display())]
    BelowRecoveryPoint {
        /// The partition directory.
        dir: PathBuf,
        /// Where the recovered log ends.
        end: i64,
        /// The recorded recovery point.
        recovery_point: i64,
    },
    /// A log was to be created where one exists already.
    #[error("{0} already holds a log")]
    LogExists(PathBuf),
    /// A batch is larger than `max.message.bytes`.
    #[error("batch of {size} bytes exceeds max.message.bytes={max}")]
    RecordTooLarge {
        /// Batch size.
        size: usize,
        /// The topic's limit.
        max: u32,
    },
    /// An idempotent producer skipped sequence numbers.
    #[error("out-of-order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        /// Producer id.
        producer_id: i64,
        /// Next sequence the broker expects.
        expected: i32,
        /// Sequence received.
        got: i32,
    },
    /// An idempotent producer re-sent a batch older than the ones the
    /// broker remembers: it was written long ago.
    #[error("duplicate sequence for producer {producer_id}: sequence {got} was written before (the broker now expects {expected}; only the last {window} batches are remembered with their offsets)", window = crate::log::producer_state::MAX_REMEMBERED)]
    DuplicateSequence {
        /// Producer id.
        producer_id: i64,
        /// Sequence received.
        got: i32,
        /// Next sequence the broker expects.
        expected: i32,
    },
    /// An idempotent producer used an old epoch.
    #[error("producer {producer_id} fenced: epoch {got} is older than {current}")]
    ProducerFenced {
        /// Producer id.
        producer_id: i64,
        /// Latest epoch seen.
        current: i16,
        /// Epoch received.
        got: i16,
    },
    /// A read asked for an offset outside the log.
    #[error("offset {offset} is out of range [{start}, {end}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: i64,
        /// Log start offset.
        start: i64,
        /// Log end offset.
        end: i64,
    },
    /// A previous fsync failed; the log refuses writes until restarted,
    /// because the kernel may have dropped the dirty pages.
    #[error("log is failed after an fsync error; restart the broker: {0}")]
    Failed(String),
}

impl LogError {
    /// Wraps an I/O error with its path.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        LogError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
