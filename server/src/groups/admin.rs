//! Group admin: list, describe (with lag), delete, reset offsets.

use std::collections::{BTreeSet, HashMap};

use super::offsets::{Committed, Tp};
use super::{now_ms, validate_group_id, GroupCoordinator, GroupError, GroupState};
use crate::broker::BrokerError;

/// A member as described.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Client id.
    pub client_id: String,
    /// Epoch.
    pub epoch: i32,
    /// Topics.
    pub topics: Vec<String>,
    /// Current assignment.
    pub assignment: Vec<Tp>,
}

/// Lag of one partition.
#[derive(Debug, Clone)]
pub struct PartitionLag {
    /// Topic and partition.
    pub tp: Tp,
    /// Committed offset or -1.
    pub committed: i64,
    /// Committed metadata.
    pub metadata: String,
    /// Log end offset.
    pub log_end: i64,
    /// Lag.
    pub lag: i64,
    /// Owning member.
    pub owner: String,
}

/// A group as described.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// State.
    pub state: GroupState,
    /// Group epoch.
    pub epoch: i32,
    /// Members.
    pub members: Vec<MemberDescription>,
    /// Offsets and lag.
    pub partitions: Vec<PartitionLag>,
}

/// Target of an offset reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// Log start.
    Earliest,
    /// Log end.
    Latest,
    /// An offset (clamped).
    Offset(i64),
    /// First record at or after a time (ms).
    Timestamp(i64),
    /// Relative to the committed offset (clamped).
    ShiftBy(i64),
}

/// One line of a reset plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetPlanEntry {
    /// Topic and partition.
    pub tp: Tp,
    /// Committed before (-1: none).
    pub old: i64,
    /// Committed after.
    pub new: i64,
}

impl GroupCoordinator {
    /// Every known group: (id, state, member count).
    pub fn list(&self) -> Vec<(String, GroupState, usize)> {
        let groups = self.groups.lock();
        let mut ids: BTreeSet<String> = self.store.groups().into_iter().collect();
        ids.extend(
            groups
                .iter()
                .filter(|(_, g)| !g.members.is_empty())
                .map(|(id, _)| id.clone()),
        );
        ids.into_iter()
            .map(|id| match groups.get(&id) {
                Some(g) => (id, GroupState::of(g), g.members.len()),
                None => (id, GroupState::Empty, 0),
            })
            .collect()
    }

    /// Describes a group with offsets and lag.
    pub async fn describe(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        validate_group_id(group_id)?;
        let committed = self.store.get(group_id);
        let (state, epoch, members, subscribed) = {
            let groups = self.groups.lock();
            match groups.get(group_id).filter(|g| !g.members.is_empty()) {
                Some(g) => (
                    GroupState::of(g),
                    g.epoch,
                    g.members
                        .iter()
                        .map(|(id, m)| MemberDescription {
                            member_id: id.clone(),
                            client_id: m.client_id.clone(),
                            epoch: m.epoch,
                            topics: m.topics.iter().cloned().collect(),
                            assignment: m.assigned.iter().cloned().collect(),
                        })
                        .collect::<Vec<_>>(),
                    g.members
                        .values()
                        .flat_map(|m| m.topics.iter().cloned())
                        .collect::<BTreeSet<_>>(),
                ),
                None if !committed.is_empty() => {
                    (GroupState::Empty, 0, Vec::new(), BTreeSet::new())
                }
                None => return Err(GroupError::UnknownGroup(group_id.to_string())),
            }
        };
        let mut tps: BTreeSet<Tp> = committed.keys().cloned().collect();
        for (t, n) in self.partition_counts(subscribed.into_iter()) {
            tps.extend((0..n).map(|p| (t.clone(), p)));
        }
        let owners: HashMap<Tp, String> = members
            .iter()
            .flat_map(|m| {
                m.assignment
                    .iter()
                    .map(move |tp| (tp.clone(), m.member_id.clone()))
            })
            .collect();
        let bounds = futures::future::join_all(tps.iter().map(|tp| self.bounds(&tp.0, tp.1))).await;
        let partitions = tps
            .into_iter()
            .zip(bounds)
            .map(|(tp, bounds)| {
                let c = committed.get(&tp);
                let (start, end) = bounds.unwrap_or((-1, -1));
                let committed_offset = c.map_or(-1, |c| c.offset);
                let lag = match (committed_offset, end) {
                    (_, -1) => -1,
                    (-1, e) => e - start,
                    (o, e) => (e - o).max(0),
                };
                PartitionLag {
                    owner: owners.get(&tp).cloned().unwrap_or_default(),
                    tp,
                    committed: committed_offset,
                    metadata: c.map(|c| c.metadata.clone()).unwrap_or_default(),
                    log_end: end,
                    lag,
                }
            })
            .collect();
        Ok(GroupDescription {
            state,
            epoch,
            members,
            partitions,
        })
    }

    /// Deletes a group's offsets; refused while it has members.
    pub fn delete(&self, group_id: &str) -> Result<(), GroupError> {
        validate_group_id(group_id)?;
        {
            let groups = self.groups.lock();
            if let Some(g) = groups.get(group_id).filter(|g| !g.members.is_empty()) {
                return Err(GroupError::GroupNotEmpty {
                    group: group_id.to_string(),
                    members: g.members.len(),
                });
            }
        }
        if !self.store.contains(group_id) {
            return Err(GroupError::UnknownGroup(group_id.to_string()));
        }
        self.offsets_changed(self.store.delete(group_id))
    }

    /// Computes (and unless `dry_run`, applies) an offset reset.
    pub async fn reset_offsets(
        &self,
        group_id: &str,
        topic: &str,
        partitions: &[u32],
        to: ResetTo,
        dry_run: bool,
        force: bool,
    ) -> Result<Vec<ResetPlanEntry>, GroupError> {
        validate_group_id(group_id)?;
        let count = self
            .partition_count(topic)
            .ok_or_else(|| BrokerError::UnknownTopic(topic.to_string()))?;
        let ids: Vec<u32> = if partitions.is_empty() {
            (0..count).collect()
        } else {
            partitions.to_vec()
        };
        if let Some(&p) = ids.iter().find(|&&p| p >= count) {
            return Err(BrokerError::UnknownPartition {
                topic: topic.to_string(),
                partition: p,
                count,
            }
            .into());
        }
        let members = self
            .groups
            .lock()
            .get(group_id)
            .map_or(0, |g| g.members.len());
        if members > 0 && !force && !dry_run {
            return Err(GroupError::GroupNotEmpty {
                group: group_id.to_string(),
                members,
            });
        }
        let committed = self.store.get(group_id);
        let mut plan = Vec::with_capacity(ids.len());
        for p in ids {
            let local = self.broker.partition(topic, p).ok();
            let (start, end) = self.bounds(topic, p).await.ok_or_else(|| {
                BrokerError::Storage(format!(
                    "the broker hosting {topic}/{p} did not answer; retry the reset"
                ))
            })?;
            let tp = (topic.to_string(), p);
            let old = committed.get(&tp).map_or(-1, |c| c.offset);
            let new = match to {
                ResetTo::Earliest => start,
                ResetTo::Latest => end,
                ResetTo::Offset(o) => o.clamp(start, end),
                ResetTo::ShiftBy(d) => (if old < 0 { start } else { old })
                    .saturating_add(d)
                    .clamp(start, end),
                ResetTo::Timestamp(ts) => match &local {
                    Some(partition) => {
                        let found = partition.offset_for_timestamp(ts).await?;
                        found.map_or(end, |(o, _)| o)
                    }
                    None => {
                        let unreachable = || {
                            BrokerError::Storage(format!(
                                "the broker hosting {topic}/{p} did not answer; retry the reset"
                            ))
                        };
                        let directory = self.directory.get().ok_or_else(unreachable)?;
                        directory
                            .remote_offset_for_time(topic, p, ts)
                            .await
                            .ok_or_else(unreachable)?
                    }
                },
            };
            plan.push(ResetPlanEntry { tp, old, new });
        }
        if dry_run {
            return Ok(plan);
        }
        if members > 0 {
            // --force: fence every member; they rejoin and resume from the
            // offsets written below.
            let mut groups = self.groups.lock();
            if let Some(g) = groups.get_mut(group_id) {
                g.members.clear();
                g.target.clear();
                g.epoch += 1;
            }
            tracing::warn!(
                group = group_id,
                members,
                "fenced members for a forced offset reset"
            );
        }
        let now = now_ms();
        self.offsets_changed(
            self.store.commit(
                group_id,
                plan.iter()
                    .map(|e| {
                        (
                            e.tp.clone(),
                            Committed {
                                offset: e.new,
                                metadata: String::new(),
                                commit_ms: now,
                            },
                        )
                    })
                    .collect(),
            ),
        )?;
        Ok(plan)
    }
}
