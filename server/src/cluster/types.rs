//! The metadata quorum's openraft types: what a node is, what a command
//! is, what applying one answers.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use super::state::{Command, CommandResult};

/// A broker as a member of the metadata quorum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaNode {
    /// host:port of its `--cluster-listen` (quorum traffic).
    pub cluster_address: String,
}

openraft::declare_raft_types!(
    /// The metadata quorum's type configuration.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = MetaNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The quorum's Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
/// An entry of the metadata log.
pub type Entry = openraft::Entry<TypeConfig>;
/// A storage error as openraft wants it.
pub type StorageError = openraft::StorageError<u64>;
