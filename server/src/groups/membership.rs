//! Membership: joins, heartbeats, leaves and session expiry, and the
//! target assignment recomputed when members or subscriptions change.
//! A partition moves only once its old owner stops reporting it
//! (revoke before assign).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::offsets::Tp;
use super::{assignor, validate_group_id, GroupCoordinator, GroupError, GroupState};

#[derive(Debug, Clone)]
pub(super) struct Member {
    pub(super) client_id: String,
    pub(super) topics: BTreeSet<String>,
    pub(super) epoch: i32,
    pub(super) previous_epoch: i32,
    pub(super) session_timeout: Duration,
    pub(super) last_seen: Instant,
    /// What the member reported owning.
    pub(super) owned: BTreeSet<Tp>,
    /// What the coordinator last told it it may own.
    pub(super) assigned: BTreeSet<Tp>,
}

#[derive(Debug, Default)]
pub(super) struct Group {
    pub(super) epoch: i32,
    pub(super) members: BTreeMap<String, Member>,
    pub(super) target: BTreeMap<String, BTreeSet<Tp>>,
}

/// A heartbeat as received.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// Group id.
    pub group_id: String,
    /// Member id (empty when joining).
    pub member_id: String,
    /// 0 join, -1 leave, else current epoch.
    pub member_epoch: i32,
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Owned partitions.
    pub owned: Vec<Tp>,
    /// Session timeout.
    pub session_timeout: Duration,
    /// Client id.
    pub client_id: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone)]
pub struct HeartbeatReply {
    /// Member id.
    pub member_id: String,
    /// Member epoch.
    pub member_epoch: i32,
    /// Partitions the member may own now.
    pub assignment: Vec<Tp>,
}

impl GroupState {
    pub(super) fn of(group: &Group) -> Self {
        if group.members.is_empty() {
            GroupState::Empty
        } else if group.members.iter().all(|(id, m)| {
            group
                .target
                .get(id)
                .is_some_and(|t| *t == m.owned && *t == m.assigned)
        }) {
            GroupState::Stable
        } else {
            GroupState::Reconciling
        }
    }
}

impl GroupCoordinator {
    pub(super) fn partition_counts(
        &self,
        topics: impl Iterator<Item = String>,
    ) -> BTreeMap<String, u32> {
        topics
            .filter_map(|t| self.partition_count(&t).map(|n| (t, n)))
            .collect()
    }

    /// Recomputes the group's target after a membership or subscription
    /// change.
    pub(super) fn rebalance(&self, group: &mut Group) {
        group.epoch += 1;
        let topics: BTreeSet<String> = group
            .members
            .values()
            .flat_map(|m| m.topics.iter().cloned())
            .collect();
        let counts = self.partition_counts(topics.into_iter());
        let inputs = group
            .members
            .iter()
            .map(|(id, m)| {
                (
                    id.clone(),
                    assignor::MemberInput {
                        topics: m.topics.clone(),
                        previous: group.target.get(id).cloned().unwrap_or_default(),
                    },
                )
            })
            .collect();
        group.target = assignor::assign(&inputs, &counts);
    }

    /// Handles a heartbeat (join, heartbeat or leave).
    pub fn heartbeat(&self, hb: Heartbeat) -> Result<HeartbeatReply, GroupError> {
        validate_group_id(&hb.group_id)?;
        if !(Duration::from_secs(1)..=Duration::from_secs(300)).contains(&hb.session_timeout) {
            return Err(GroupError::InvalidRequest(format!(
                "session timeout {:?} must be between 1s and 300s",
                hb.session_timeout
            )));
        }
        let mut groups = self.groups.lock();
        let group = groups.entry(hb.group_id.clone()).or_default();
        let topics: BTreeSet<String> = hb.topics.iter().cloned().collect();
        let owned: BTreeSet<Tp> = hb.owned.iter().cloned().collect();
        let member_id = match hb.member_epoch {
            -1 => {
                if group.members.remove(&hb.member_id).is_some() {
                    group.target.remove(&hb.member_id);
                    self.rebalance(group);
                    tracing::info!(group = %hb.group_id, member = %hb.member_id, "member left");
                }
                return Ok(HeartbeatReply {
                    member_id: hb.member_id,
                    member_epoch: -1,
                    assignment: Vec::new(),
                });
            }
            0 => {
                let id = if hb.member_id.is_empty() {
                    new_member_id()
                } else {
                    hb.member_id.clone()
                };
                group.members.insert(
                    id.clone(),
                    Member {
                        client_id: hb.client_id.clone(),
                        topics,
                        epoch: 0,
                        previous_epoch: 0,
                        session_timeout: hb.session_timeout,
                        last_seen: Instant::now(),
                        // A joining member owns nothing yet, whatever it
                        // reports: partitions come only from assignments.
                        owned: BTreeSet::new(),
                        assigned: BTreeSet::new(),
                    },
                );
                self.rebalance(group);
                tracing::info!(group = %hb.group_id, member = %id, "member joined");
                id
            }
            epoch => {
                let Some(member) = group.members.get_mut(&hb.member_id) else {
                    return Err(GroupError::UnknownMember {
                        group: hb.group_id,
                        member: hb.member_id,
                    });
                };
                // KIP-848: the previous epoch is accepted only when the
                // answer that carried the current one was lost, which the
                // member shows by owning nothing beyond its current
                // assignment; anything else is a stale member.
                let lost_answer =
                    epoch == member.previous_epoch && owned.is_subset(&member.assigned);
                if epoch != member.epoch && !lost_answer {
                    return Err(GroupError::FencedEpoch {
                        member: hb.member_id,
                        got: epoch,
                        current: member.epoch,
                    });
                }
                member.last_seen = Instant::now();
                member.session_timeout = hb.session_timeout;
                // Only what it was given can it still hold: a member cannot
                // claim (and so pin or commit) partitions it never owned.
                let mut held: BTreeSet<Tp> = member.owned.intersection(&owned).cloned().collect();
                held.extend(member.assigned.intersection(&owned).cloned());
                member.owned = held;
                let changed = member.topics != topics;
                member.topics = topics;
                if changed {
                    self.rebalance(group);
                }
                hb.member_id.clone()
            }
        };
        // What this member may own now: its target, minus partitions still
        // held (owned or assigned) by another member.
        let held_by_others: BTreeSet<Tp> = group
            .members
            .iter()
            .filter(|(id, _)| **id != member_id)
            .flat_map(|(_, m)| m.owned.iter().chain(m.assigned.iter()).cloned())
            .collect();
        let target = group.target.get(&member_id).cloned().unwrap_or_default();
        let assignment: BTreeSet<Tp> = target.difference(&held_by_others).cloned().collect();
        let member = group
            .members
            .get_mut(&member_id)
            .ok_or_else(|| GroupError::InvalidRequest("member vanished during heartbeat".into()))?;
        if assignment != member.assigned || member.epoch == 0 {
            member.previous_epoch = member.epoch;
            member.epoch += 1;
            member.assigned = assignment.clone();
        }
        Ok(HeartbeatReply {
            member_id,
            member_epoch: member.epoch,
            assignment: assignment.into_iter().collect(),
        })
    }

    /// Removes members whose session expired.
    pub(super) fn expire_members(&self) {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        for (gid, group) in groups.iter_mut() {
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| now.duration_since(m.last_seen) > m.session_timeout)
                .map(|(id, _)| id.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            for id in &expired {
                group.members.remove(id);
                group.target.remove(id);
                tracing::info!(group = %gid, member = %id, "member session expired");
            }
            self.rebalance(group);
        }
        groups.retain(|_, g| !g.members.is_empty());
    }
}

fn new_member_id() -> String {
    let a: u64 = rand::random();
    let b: u64 = rand::random();
    format!("{a:016x}{b:016x}")
}
