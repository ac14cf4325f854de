//! Names shared by the producer, the consumers and the admin: a partition
//! of a topic and an offset to look up.

use tidelog_proto::v1::{offset_spec::Spec, OffsetSpec as WireSpec};

/// A topic and partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
}

impl TopicPartition {
    /// Builds one.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

/// Which offset to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The first offset in the log.
    Earliest,
    /// The log end (next offset to be written).
    Latest,
    /// The first offset whose timestamp is >= this (ms since the epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    pub(crate) fn to_wire(self) -> WireSpec {
        WireSpec {
            spec: Some(match self {
                OffsetSpec::Earliest => Spec::Earliest(true),
                OffsetSpec::Latest => Spec::Latest(true),
                OffsetSpec::Timestamp(t) => Spec::TimestampMs(t),
            }),
        }
    }
}
