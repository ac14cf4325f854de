//! Topic and consumer-group administration.

use std::collections::HashMap;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::consumer::TopicPartition;
use crate::error::{invalid, to_napi};
use crate::Conn;

/// A config key and value (`retention.ms`, `max.message.bytes`, ...).
#[napi(object)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
}

/// A topic to create.
#[napi(object)]
pub struct NewTopic {
    pub topic: String,
    /// Partition count (default 1).
    pub num_partitions: Option<u32>,
    pub config_entries: Option<Vec<ConfigEntry>>,
}

/// Argument of `createTopics`.
#[napi(object)]
pub struct CreateTopicsOptions {
    pub topics: Vec<NewTopic>,
}

/// Argument of `deleteTopics`.
#[napi(object)]
pub struct DeleteTopicsOptions {
    pub topics: Vec<String>,
}

/// One partition of a described topic. Offsets are decimal strings.
#[napi(object)]
pub struct PartitionInfo {
    pub partition: u32,
    pub log_start_offset: String,
    pub log_end_offset: String,
    pub size_bytes: f64,
    pub segments: u32,
    pub leader: u32,
}

/// A described topic.
#[napi(object)]
pub struct TopicDescription {
    pub name: String,
    pub config: HashMap<String, String>,
    pub partitions: Vec<PartitionInfo>,
}

impl From<tidelog::TopicDescription> for TopicDescription {
    fn from(d: tidelog::TopicDescription) -> Self {
        TopicDescription {
            name: d.name,
            config: d.config.into_iter().collect(),
            partitions: d
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition,
                    log_start_offset: p.log_start_offset.to_string(),
                    log_end_offset: p.log_end_offset.to_string(),
                    size_bytes: p.size_bytes as f64,
                    segments: p.segments,
                    leader: p.leader,
                })
                .collect(),
        }
    }
}

/// A consumer group as listed.
#[napi(object)]
pub struct GroupListing {
    pub group_id: String,
    /// `EMPTY`, `STABLE` or `RECONCILING`.
    pub state: String,
    pub members: u32,
}

/// Result of `listGroups`.
#[napi(object)]
pub struct ListGroupsResult {
    pub groups: Vec<GroupListing>,
}

/// A member of a group.
#[napi(object)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub member_epoch: i32,
    pub topics: Vec<String>,
    pub assignment: Vec<TopicPartition>,
}

/// Committed offset and lag of one partition (offsets as decimal strings;
/// `committedOffset` is null when nothing is committed).
#[napi(object)]
pub struct GroupPartition {
    pub topic: String,
    pub partition: u32,
    pub committed_offset: Option<String>,
    pub log_end_offset: String,
    pub lag: String,
    pub owner: Option<String>,
    pub metadata: String,
}

/// A consumer group in detail.
#[napi(object)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub group_epoch: i32,
    pub members: Vec<GroupMember>,
    pub partitions: Vec<GroupPartition>,
}

/// Argument of `resetOffsets`: exactly one of `earliest`, `latest`,
/// `offset`, `timestamp` (ms since the epoch) or `shiftBy`.
#[napi(object)]
pub struct ResetOffsetsOptions {
    pub group_id: String,
    pub topic: String,
    /// Partitions to reset (default: all).
    pub partitions: Option<Vec<u32>>,
    pub earliest: Option<bool>,
    pub latest: Option<bool>,
    pub offset: Option<String>,
    pub timestamp: Option<f64>,
    pub shift_by: Option<f64>,
    /// Only compute the plan.
    pub dry_run: Option<bool>,
    /// Reset even while the group has members (they are fenced and resume
    /// from the new offsets).
    pub force: Option<bool>,
}

/// One line of a reset plan (offsets as decimal strings).
#[napi(object)]
pub struct OffsetResetPlan {
    pub topic: String,
    pub partition: u32,
    pub old_offset: Option<String>,
    pub new_offset: String,
}

/// Offsets of one partition: `low` (log start), `high` (log end) and
/// `offset` (= `high`, as in kafkajs).
#[napi(object)]
pub struct PartitionOffsets {
    pub partition: u32,
    pub offset: String,
    pub low: String,
    pub high: String,
}

/// The offset found for a timestamp in one partition (the log end when no
/// record is that recent).
#[napi(object)]
pub struct PartitionOffset {
    pub partition: u32,
    pub offset: String,
}

/// Topic and group administration.
#[napi]
pub struct Admin {
    conn: Conn,
}

impl Admin {
    pub(crate) fn create(conn: Conn) -> Self {
        Admin { conn }
    }

    async fn admin(&self) -> Result<tidelog::Admin> {
        Ok(self.conn.client().await.map_err(to_napi)?.admin())
    }
}

#[napi]
impl Admin {
    /// Connects (optional).
    #[napi]
    pub async fn connect(&self) -> Result<()> {
        self.admin().await.map(|_| ())
    }

    /// Nothing to release (the connection is shared); for kafkajs symmetry.
    #[napi]
    pub async fn disconnect(&self) -> Result<()> {
        Ok(())
    }

    /// Creates topics; resolves to their descriptions.
    #[napi]
    pub async fn create_topics(
        &self,
        options: CreateTopicsOptions,
    ) -> Result<Vec<TopicDescription>> {
        let admin = self.admin().await?;
        let mut out = Vec::with_capacity(options.topics.len());
        for t in options.topics {
            let mut nt = tidelog::NewTopic::new(t.topic, t.num_partitions.unwrap_or(1));
            for c in t.config_entries.unwrap_or_default() {
                nt = nt.config(c.name, c.value);
            }
            out.push(admin.create_topic(nt).await.map_err(to_napi)?.into());
        }
        Ok(out)
    }

    /// Names of all topics, sorted.
    #[napi]
    pub async fn list_topics(&self) -> Result<Vec<String>> {
        let admin = self.admin().await?;
        let mut names: Vec<String> = admin
            .list_topics()
            .await
            .map_err(to_napi)?
            .into_iter()
            .map(|t| t.name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// Describes topics: config and per-partition offsets, sizes, segments.
    #[napi]
    pub async fn describe_topics(&self, topics: Vec<String>) -> Result<Vec<TopicDescription>> {
        let admin = self.admin().await?;
        let mut out = Vec::with_capacity(topics.len());
        for t in topics {
            out.push(admin.describe_topic(&t).await.map_err(to_napi)?.into());
        }
        Ok(out)
    }

    /// Deletes topics and all their data.
    #[napi]
    pub async fn delete_topics(&self, options: DeleteTopicsOptions) -> Result<()> {
        let client = self.conn.client().await.map_err(to_napi)?;
        let admin = client.admin();
        for t in options.topics {
            admin.delete_topic(&t).await.map_err(to_napi)?;
            client.invalidate_metadata(&t);
        }
        Ok(())
    }

    /// Sets config keys and resets others (`remove`) to their defaults.
    #[napi]
    pub async fn alter_topic_config(
        &self,
        topic: String,
        set: HashMap<String, String>,
        remove: Option<Vec<String>>,
    ) -> Result<()> {
        let admin = self.admin().await?;
        admin
            .alter_topic_config(&topic, set, remove.unwrap_or_default())
            .await
            .map_err(to_napi)?;
        Ok(())
    }

    /// Lists consumer groups.
    #[napi]
    pub async fn list_groups(&self) -> Result<ListGroupsResult> {
        let admin = self.admin().await?;
        let groups = admin
            .list_groups()
            .await
            .map_err(to_napi)?
            .into_iter()
            .map(|g| GroupListing {
                group_id: g.group_id,
                state: g.state,
                members: g.members,
            })
            .collect();
        Ok(ListGroupsResult { groups })
    }

    /// Describes groups: members, assignments, committed offsets and lag.
    #[napi]
    pub async fn describe_groups(&self, group_ids: Vec<String>) -> Result<Vec<GroupDescription>> {
        let admin = self.admin().await?;
        let mut out = Vec::with_capacity(group_ids.len());
        for id in group_ids {
            let d = admin.describe_group(&id).await.map_err(to_napi)?;
            out.push(GroupDescription {
                group_id: d.group_id,
                state: d.state,
                group_epoch: d.group_epoch,
                members: d
                    .members
                    .into_iter()
                    .map(|m| GroupMember {
                        member_id: m.member_id,
                        client_id: m.client_id,
                        member_epoch: m.member_epoch,
                        topics: m.topics,
                        assignment: m
                            .assignment
                            .into_iter()
                            .map(|tp| TopicPartition {
                                topic: tp.topic,
                                partition: tp.partition,
                            })
                            .collect(),
                    })
                    .collect(),
                partitions: d
                    .partitions
                    .into_iter()
                    .map(|p| GroupPartition {
                        topic: p.topic,
                        partition: p.partition,
                        committed_offset: p.committed_offset.map(|o| o.to_string()),
                        log_end_offset: p.log_end_offset.to_string(),
                        lag: p.lag.to_string(),
                        owner: p.owner,
                        metadata: p.metadata,
                    })
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Deletes groups' committed offsets (refused while a group has members).
    #[napi]
    pub async fn delete_groups(&self, group_ids: Vec<String>) -> Result<()> {
        let admin = self.admin().await?;
        for id in group_ids {
            admin.delete_group(&id).await.map_err(to_napi)?;
        }
        Ok(())
    }

    /// Moves a group's committed offsets for a topic; resolves to the plan.
    #[napi]
    pub async fn reset_offsets(
        &self,
        options: ResetOffsetsOptions,
    ) -> Result<Vec<OffsetResetPlan>> {
        let o = &options;
        let mut specs = Vec::new();
        if o.earliest == Some(true) {
            specs.push(tidelog::ResetSpec::Earliest);
        }
        if o.latest == Some(true) {
            specs.push(tidelog::ResetSpec::Latest);
        }
        if let Some(off) = &o.offset {
            let n = off
                .trim()
                .parse::<i64>()
                .map_err(|_| invalid(format!("offset {off:?} is not an integer")))?;
            specs.push(tidelog::ResetSpec::Offset(n));
        }
        if let Some(ts) = o.timestamp {
            specs.push(tidelog::ResetSpec::Timestamp(ts as i64));
        }
        if let Some(d) = o.shift_by {
            specs.push(tidelog::ResetSpec::ShiftBy(d as i64));
        }
        let [spec] = specs[..] else {
            return Err(invalid(
                "resetOffsets needs exactly one of earliest, latest, offset, timestamp, shiftBy",
            ));
        };
        let admin = self.admin().await?;
        let plan = admin
            .reset_offsets(
                &o.group_id,
                &o.topic,
                o.partitions.as_deref().unwrap_or(&[]),
                spec,
                o.dry_run.unwrap_or(false),
                o.force.unwrap_or(false),
            )
            .await
            .map_err(to_napi)?;
        Ok(plan
            .into_iter()
            .map(|p| OffsetResetPlan {
                topic: p.topic,
                partition: p.partition,
                old_offset: p.old_offset.map(|o| o.to_string()),
                new_offset: p.new_offset.to_string(),
            })
            .collect())
    }

    /// Log start and end offsets of every partition of a topic.
    #[napi]
    pub async fn fetch_topic_offsets(&self, topic: String) -> Result<Vec<PartitionOffsets>> {
        let client = self.conn.client().await.map_err(to_napi)?;
        let admin = client.admin();
        let n = client.partition_count(&topic).await.map_err(to_napi)?;
        let mut out = Vec::with_capacity(n as usize);
        for p in 0..n {
            let (low, _) = admin
                .list_offsets(&topic, p, tidelog::OffsetSpec::Earliest)
                .await
                .map_err(to_napi)?;
            let (high, _) = admin
                .list_offsets(&topic, p, tidelog::OffsetSpec::Latest)
                .await
                .map_err(to_napi)?;
            out.push(PartitionOffsets {
                partition: p,
                offset: high.to_string(),
                low: low.to_string(),
                high: high.to_string(),
            });
        }
        Ok(out)
    }

    /// Per partition, the first offset whose record is at or after
    /// `timestamp` (ms since the epoch).
    #[napi]
    pub async fn fetch_topic_offsets_by_timestamp(
        &self,
        topic: String,
        timestamp: f64,
    ) -> Result<Vec<PartitionOffset>> {
        let client = self.conn.client().await.map_err(to_napi)?;
        let admin = client.admin();
        let n = client.partition_count(&topic).await.map_err(to_napi)?;
        let mut out = Vec::with_capacity(n as usize);
        for p in 0..n {
            let (offset, _) = admin
                .list_offsets(&topic, p, tidelog::OffsetSpec::Timestamp(timestamp as i64))
                .await
                .map_err(to_napi)?;
            out.push(PartitionOffset {
                partition: p,
                offset: offset.to_string(),
            });
        }
        Ok(out)
    }
}
