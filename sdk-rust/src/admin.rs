//! Topic administration and offset lookups.

use std::collections::BTreeMap;

use tidelog_proto::v1::{
    admin_client::AdminClient, consumer_client::ConsumerClient, offset_spec::Spec,
    AlterTopicConfigRequest, CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest,
    ListOffsetsRequest, ListTopicsRequest, OffsetSpec as WireSpec,
};

use crate::client::{Client, MAX_MESSAGE_BYTES};
use crate::error::{Error, Result};

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
    client: Client,
}

impl Admin {
    pub(crate) fn new(client: Client) -> Self {
        Admin { client }
    }

    fn admin(&self) -> AdminClient<tonic::transport::Channel> {
        AdminClient::new(self.client.channel()).max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Creates a topic.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<TopicDescription> {
        let mut a = self.admin();
        let r = self
            .client
            .call(a.create_topic(CreateTopicRequest {
                name: topic.name,
                partitions: topic.partitions,
                config: topic.config.into_iter().collect(),
            }))
            .await?;
        r.topic
            .map(Into::into)
            .ok_or_else(|| Error::Unavailable("broker sent no topic description".into()))
    }

    /// Lists topics.
    pub async fn list_topics(&self) -> Result<Vec<TopicListing>> {
        let mut a = self.admin();
        let r = self
            .client
            .call(a.list_topics(ListTopicsRequest {}))
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
        let mut a = self.admin();
        let r = self
            .client
            .call(a.describe_topic(DescribeTopicRequest { name: name.into() }))
            .await?;
        r.topic
            .map(Into::into)
            .ok_or_else(|| Error::Unavailable("broker sent no topic description".into()))
    }

    /// Deletes a topic and all its data.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let mut a = self.admin();
        self.client
            .call(a.delete_topic(DeleteTopicRequest { name: name.into() }))
            .await?;
        self.client.invalidate_metadata(name);
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
        let mut a = self.admin();
        let r = self
            .client
            .call(a.alter_topic_config(AlterTopicConfigRequest {
                name: name.into(),
                set: set.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
                delete: delete.into_iter().map(Into::into).collect(),
            }))
            .await?;
        r.topic
            .map(Into::into)
            .ok_or_else(|| Error::Unavailable("broker sent no topic description".into()))
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
        let mut c = ConsumerClient::new(self.client.channel());
        let r = self
            .client
            .call(c.list_offsets(ListOffsetsRequest {
                topic: topic.into(),
                partition,
                spec: Some(spec.to_wire()),
            }))
            .await?;
        Ok((r.offset, r.timestamp_ms))
    }
}
