//! The cluster: a metadata quorum on openraft that every broker is a member
//! of (KRaft's shape). The quorum's replicated state machine holds brokers,
//! topics and partition placement; the quorum leader is the controller, the
//! only writer of metadata. A single `tidelog serve` is a one-node quorum on
//! the same code path.
//!
//! By job: `types` (openraft type configuration), `state` (the metadata and
//! the commands that change it, placement), `log_store` and `state_machine`
//! (openraft's storage, on local disk under `<data-dir>/meta/`), `network`
//! and `service` (the quorum's transport over the internal gRPC service on
//! `--cluster-listen`), `node` (this broker's membership: start, form,
//! register, write through the controller).

pub mod controller;
pub mod log_store;
pub mod network;
pub mod node;
pub mod owner;
pub mod reconcile;
pub mod service;
pub mod state;
pub mod state_machine;
pub mod types;
