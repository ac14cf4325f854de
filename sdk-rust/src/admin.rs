//! Topic administration and offset lookups.

use std::collections::BTreeMap;

use tidelog_proto::v1::{
    reset_spec::Spec as WireReset, AlterTopicConfigRequest, CommitOffsetsRequest,
    CreateTopicRequest, DeleteGroupRequest, DeleteTopicRequest, DescribeGroupRequest,
    DescribeTopicRequest, ListGroupsRequest, ListTopicsRequest, OffsetCommit, ResetOffsetsRequest,
};

use crate::connection::{admin, groups, Connection, Resend};
use crate::error::{Error, Result};
pub use crate::types::OffsetSpec;
use crate::types::TopicPartition;

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
    /// Config overrides (`retention.ms`, `segment.bytes`, ...).
    pub config: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic with default config.
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        NewTopic {
            name: name.into(),
            partitions,
            config: BTreeMap::new(),
        }
    }

    /// Adds a config override.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }
}

/// A topic as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListing {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
}

/// A partition as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: u32,
    /// First offset in the log.
    pub log_start_offset: i64,
    /// Offset the next record gets.
    pub log_end_offset: i64,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// Segment files.
    pub segments: u32,
    /// Leader broker id.
    pub leader: u32,
    /// First offset on the broker's local disk (older offsets are read
    /// from the object store).
    pub local_start_offset: i64,
    /// First offset in the object store, -1 when none.
    pub remote_start_offset: i64,
    /// Offset after the last record in the object store, -1 when none.
    pub remote_end_offset: i64,
    /// Bytes in the object store.
    pub remote_size_bytes: u64,
    /// Segments in the object store.
    pub remote_segments: u32,
}

/// A topic as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Name.
    pub name: String,
    /// Effective config.
    pub config: BTreeMap<String, String>,
    /// Partitions in order.
    pub partitions: Vec<PartitionInfo>,
}

impl From<tidelog_proto::v1::TopicDescription> for TopicDescription {
    fn from(t: tidelog_proto::v1::TopicDescription) -> Self {
        TopicDescription {
            name: t.name,
            config: t.config.into_iter().collect(),
            partitions: t
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition,
                    log_start_offset: p.log_start_offset,
                    log_end_offset: p.log_end_offset,
                    size_bytes: p.size_bytes,
                    segments: p.segments,
                    leader: p.leader,
                    local_start_offset: p.local_start_offset,
                    remote_start_offset: p.remote_start_offset,
                    remote_end_offset: p.remote_end_offset,
                    remote_size_bytes: p.remote_size_bytes,
                    remote_segments: p.remote_segments,
                })
                .collect(),
        }
    }
}

/// A consumer group as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// `EMPTY`, `STABLE` or `RECONCILING`.
    pub state: String,
    /// Active members.
    pub members: u32,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberInfo {
    /// Member id.
    pub member_id: String,
    /// Client id.
    pub client_id: String,
    /// Member epoch.
    pub member_epoch: i32,
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Owned partitions.
    pub assignment: Vec<TopicPartition>,
}

/// Committed offset and lag of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Committed offset, `None` when nothing is committed.
    pub committed_offset: Option<i64>,
    /// Log end offset.
    pub log_end_offset: i64,
    /// Records not yet consumed by the group.
    pub lag: i64,
    /// Owning member id, if any.
    pub owner: Option<String>,
    /// Commit metadata.
    pub metadata: String,
}

/// A consumer group in detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// `EMPTY`, `STABLE` or `RECONCILING`.
    pub state: String,
    /// Group epoch.
    pub group_epoch: i32,
    /// Members.
    pub members: Vec<GroupMemberInfo>,
    /// Offsets and lag per partition.
    pub partitions: Vec<PartitionLag>,
}

/// Where to move a group's committed offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetSpec {
    /// The log start.
    Earliest,
    /// The log end.
    Latest,
    /// An exact offset (clamped to the log).
    Offset(i64),
    /// The first record at or after a time (ms since the epoch).
    Timestamp(i64),
    /// Relative to the committed offset (clamped to the log).
    ShiftBy(i64),
}

/// One line of a reset plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetResetPlan {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Committed offset before, `None` when none.
    pub old_offset: Option<i64>,
    /// Committed offset after.
    pub new_offset: i64,
}

fn from_wire_tps(tps: Vec<tidelog_proto::v1::TopicPartitions>) -> Vec<TopicPartition> {
    tps.into_iter()
        .flat_map(|t| {
            let topic = t.topic;
            t.partitions
                .into_iter()
                .map(move |p| TopicPartition::new(topic.clone(), p))
        })
        .collect()
}

/// Administration of topics.
///
/// ```no_run
/// # async fn demo() -> tidelog::Result<()> {
/// use tidelog::{Client, NewTopic};
/// let admin = Client::connect("127.0.0.1:7070").await?.admin();
/// admin.create_topic(NewTopic::new("orders", 6).config("retention.ms", "86400000")).await?;
/// let d = admin.describe_topic("orders").await?;
/// assert_eq!(d.partitions.len(), 6);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    conn: Connection,
}

impl Admin {
    pub(crate) fn new(conn: Connection) -> Self {
        Admin { conn }
    }

    /// Creates a topic.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<TopicDescription> {
        let request = CreateTopicRequest {
            name: topic.name,
            partitions: topic.partitions,
            config: topic.config.into_iter().collect(),
        };
        let r = self
            .conn
            .on_any(Resend::IfNotSent, |c| {
                let request = request.clone();
                async move { admin(c).create_topic(request).await }
            })
            .await?;
        r.topic
            .map(Into::into)
            .ok_or_else(|| Error::Unavailable("broker sent no topic description".into()))
    }

    /// Lists topics.
    pub async fn list_topics(&self) -> Result<Vec<TopicListing>> {
        let r = self
            .conn
            .on_any(Resend::Safe, |c| async move {
                admin(c).list_topics(ListTopicsRequest {}).await
            })
            .await?;
        Ok(r.topics
            .into_iter()
            .map(|t| TopicListing {
                name: t.name,
                partitions: t.partitions,
            })
            .collect())
    }

    /// Describes a topic.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let r = self
            .conn
            .on_any(Resend::Safe, |c| async move {
                let request = DescribeTopicRequest {
                    name: name.into(),
                    ..Default::default()
                };
                admin(c).describe_topic(request).await
            })
            .await?;
        r.topic
            .map(Into::into)
            .ok_or_else(|| Error::Unavailable("broker sent no topic description".into()))
    }

    /// Deletes a topic and all its data.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.conn
            .on_any(Resend::IfNotSent, |c| async move {
                let request = DeleteTopicRequest { name: name.into() };
                admin(c).delete_topic(request).await
            })
            .await?;
        self.conn.invalidate_metadata(name);
        Ok(())
    }

    /// Sets config keys (`set`) and resets others to defaults (`delete`).
    pub async fn alter_topic_config<K, V>(
        &self,
        name: &str,
        set: impl IntoIterator<Item = (K, V)>,
        delete: impl IntoIterator<Item = K>,
    ) -> Result<TopicDescription>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let request = AlterTopicConfigRequest {
            name: name.into(),
            set: set.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
            delete: delete.into_iter().map(Into::into).collect(),
        };
        // Setting the same values again changes nothing.
        let r = self
            .conn
            .on_any(Resend::Safe, |c| {
                let request = request.clone();
                async move { admin(c).alter_topic_config(request).await }
            })
            .await?;
        r.topic
            .map(Into::into)
            .ok_or_else(|| Error::Unavailable("broker sent no topic description".into()))
    }

    /// Lists consumer groups.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let r = self
            .conn
            .on_any(Resend::Safe, |c| async move {
                groups(c).list_groups(ListGroupsRequest::default()).await
            })
            .await?;
        Ok(r.groups
            .into_iter()
            .map(|g| GroupListing {
                group_id: g.group_id,
                state: g.state,
                members: g.members,
            })
            .collect())
    }

    /// Describes a group: members, assignments, committed offsets and lag.
    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription> {
        let r = self
            .conn
            .on_coordinator(group_id, Resend::Safe, |c| async move {
                let request = DescribeGroupRequest {
                    group_id: group_id.into(),
                };
                groups(c).describe_group(request).await
            })
            .await?;
        Ok(GroupDescription {
            group_id: r.group_id,
            state: r.state,
            group_epoch: r.group_epoch,
            members: r
                .members
                .into_iter()
                .map(|m| GroupMemberInfo {
                    member_id: m.member_id,
                    client_id: m.client_id,
                    member_epoch: m.member_epoch,
                    topics: m.topics,
                    assignment: from_wire_tps(m.assignment),
                })
                .collect(),
            partitions: r
                .partitions
                .into_iter()
                .map(|p| PartitionLag {
                    topic: p.topic,
                    partition: p.partition,
                    committed_offset: (p.committed_offset >= 0).then_some(p.committed_offset),
                    log_end_offset: p.log_end_offset,
                    lag: p.lag,
                    owner: (!p.owner.is_empty()).then_some(p.owner),
                    metadata: p.metadata,
                })
                .collect(),
        })
    }

    /// Deletes a group's committed offsets (refused while it has members).
    pub async fn delete_group(&self, group_id: &str) -> Result<()> {
        self.conn
            .on_coordinator(group_id, Resend::IfNotSent, |c| async move {
                let request = DeleteGroupRequest {
                    group_id: group_id.into(),
                };
                groups(c).delete_group(request).await
            })
            .await
            .map(|_| ())
    }

    /// Resets a group's committed offsets for a topic (all partitions when
    /// `partitions` is empty). Returns the plan (old → new per partition).
    /// Refused while the group has members unless `force`, which fences them
    /// (they rejoin and resume from the new offsets). `dry_run` only plans.
    pub async fn reset_offsets(
        &self,
        group_id: &str,
        topic: &str,
        partitions: &[u32],
        spec: ResetSpec,
        dry_run: bool,
        force: bool,
    ) -> Result<Vec<OffsetResetPlan>> {
        let spec = match spec {
            ResetSpec::Earliest => WireReset::Earliest(true),
            ResetSpec::Latest => WireReset::Latest(true),
            ResetSpec::Offset(o) => WireReset::Offset(o),
            ResetSpec::Timestamp(t) => WireReset::TimestampMs(t),
            ResetSpec::ShiftBy(d) => WireReset::ShiftBy(d),
        };
        let request = ResetOffsetsRequest {
            group_id: group_id.into(),
            topic: topic.into(),
            partitions: partitions.to_vec(),
            spec: Some(tidelog_proto::v1::ResetSpec { spec: Some(spec) }),
            dry_run,
            force,
        };
        // A shift applied twice moves twice as far: never sent again
        // after its outcome became unknown.
        let r = self
            .conn
            .on_coordinator(group_id, Resend::IfNotSent, |c| {
                let request = request.clone();
                async move { groups(c).reset_offsets(request).await }
            })
            .await?;
        Ok(r.plan
            .into_iter()
            .map(|e| OffsetResetPlan {
                topic: e.topic,
                partition: e.partition,
                old_offset: (e.old_offset >= 0).then_some(e.old_offset),
                new_offset: e.new_offset,
            })
            .collect())
    }

    /// Commits offsets for a group outside membership (allowed only while
    /// the group has no members), e.g. to seed a new group.
    pub async fn commit_group_offsets(
        &self,
        group_id: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        let request = CommitOffsetsRequest {
            group_id: group_id.into(),
            member_id: String::new(),
            member_epoch: 0,
            offsets: offsets
                .iter()
                .map(|(tp, o)| OffsetCommit {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: *o,
                    metadata: String::new(),
                })
                .collect(),
        };
        // The same offsets committed twice are the same offsets.
        self.conn
            .on_coordinator(group_id, Resend::Safe, |c| {
                let request = request.clone();
                async move { groups(c).commit_offsets(request).await }
            })
            .await
            .map(|_| ())
    }

    /// Resolves an offset of a partition; returns `(offset, timestamp)`,
    /// the timestamp being that of the record found for a timestamp lookup
    /// and -1 otherwise.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<(i64, i64)> {
        self.conn.list_offsets(topic, partition, spec).await
    }
}
