//! Tidelog's wire contract.
//!
//! * [`v1`]: the gRPC services and messages generated from
//!   `proto/tidelog/v1/tidelog.proto`.
//! * [`batch`]: the record-batch binary format of `proto/FORMAT.md`, shared by
//!   the broker (header and CRC validation) and the clients (encode/decode).

pub mod batch;

/// Generated gRPC code for `tidelog.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("tidelog.v1");
}

/// Status metadata key that carries the stable error reason name.
pub const ERROR_REASON_KEY: &str = "x-tidelog-error";

/// Batches per producer and partition that a broker remembers to recognise
/// retries (FORMAT.md, "Idempotence"). A client must never have more
/// batches of a partition unanswered than this, or a retry of the oldest
/// could no longer be recognised.
pub const DEDUPE_WINDOW_BATCHES: usize = 256;
