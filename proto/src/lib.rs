//! Tidelog's wire contract.
//!
//! * [`v1`]: the gRPC services and messages generated from
//!   `proto/tidelog/v1/tidelog.proto`.
//! * [`batch`]: the record-batch binary format of `proto/FORMAT.md`, shared by
//!   the broker (header, CRC and record validation) and the clients
//!   (encode/decode).
//! * [`limits`]: sizes both ends must agree on.

pub mod batch;
pub mod limits;

// Kept at the root for code written before `limits` existed.

/// Generated gRPC code for `tidelog.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("tidelog.v1");
}

/// Status metadata key that carries the stable error reason name.
pub const ERROR_REASON_KEY: &str = "x-tidelog-error";
