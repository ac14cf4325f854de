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

/// Status metadata key of `NOT_LEADER` / `NOT_COORDINATOR`: the id of the
/// broker to ask instead, when known.
pub const LEADER_ID_KEY: &str = "x-tidelog-leader-id";

/// Status metadata key of `NOT_LEADER` / `NOT_COORDINATOR`: the client
/// address (host:port) of the broker to ask instead, when known.
pub const LEADER_ADDRESS_KEY: &str = "x-tidelog-leader-address";

/// Generated code for `tidelog.internal.v1`: broker-to-broker calls on the
/// cluster listener (the metadata quorum's transport). Not for clients.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod internal {
    tonic::include_proto!("tidelog.internal.v1");
}
