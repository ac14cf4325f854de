//! Errors of the consumer-group layer.

use crate::broker::BrokerError;

/// Why a group operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// The group has no members and no committed offsets.
    #[error("unknown group '{0}': it has no members and no committed offsets")]
    UnknownGroup(String),
    /// The member is not known (never joined, left, or timed out).
    #[error("unknown member '{member}' of group '{group}': it left or its session timed out; rejoin with epoch 0")]
    UnknownMember {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
    },
    /// The member's epoch is stale.
    #[error("member '{member}' sent epoch {got} but its epoch is {current}: heartbeat to get the current assignment, then retry")]
    FencedEpoch {
        /// Member id.
        member: String,
        /// Epoch received.
        got: i32,
        /// The member's current epoch.
        current: i32,
    },
    /// A commit for a partition the member does not own.
    #[error("member '{member}' committed {topic}/{partition}, which is not assigned to it")]
    NotAssigned {
        /// Member id.
        member: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
    },
    /// The operation needs an empty group.
    #[error("group '{group}' has {members} active member(s); stop them first, or pass --force to fence them")]
    GroupNotEmpty {
        /// Group id.
        group: String,
        /// Number of members.
        members: usize,
    },
    /// The group id is not valid.
    #[error("invalid group id '{0}': use 1 to 249 characters without control characters")]
    InvalidGroupId(String),
    /// Any other invalid argument.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Writing or reading the offset store failed.
    #[error("offset storage error: {0}")]
    Storage(String),
    /// A topic/partition lookup failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}
