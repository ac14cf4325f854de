//! The Tidelog broker.
//!
//! Where a produced record goes, by module:
//! `api::produce` (gRPC, validation) → `broker::partition` (lock, append,
//! group commit) → `log::partition_log` (sequence check, stamp offsets,
//! roll) → `log::segment` (file write, indexes). See `ARCHITECTURE.md`.

pub mod api;
pub mod broker;
pub mod cli;
pub mod cluster;
pub mod cluster_snapshot;
pub mod config;
pub mod groups;
pub mod http;
pub mod log;
pub mod metrics;
pub mod restore;
pub mod serve;
pub mod tiering;
