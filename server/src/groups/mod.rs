//! Consumer groups: the coordinator (membership, server-side sticky
//! assignment, fencing), durable committed offsets, and group admin
//! (describe with lag, delete, reset offsets).
//!
//! Protocol, in the direction of Kafka's KIP-848: members only heartbeat,
//! reporting their subscription and the partitions they own; the
//! coordinator answers with the partitions they may own now. A partition
//! leaving a member is first dropped from that member's assignment; it is
//! given to its new owner only once the old owner stops reporting it, so no
//! partition is owned by two members at once. Each member's epoch changes
//! whenever its assignment does and commits must carry it.

pub mod assignor;
pub mod error;
pub mod offsets;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::broker::Broker;
use crate::tiering::manifest::{SnapshotGroup, SnapshotOffset};
pub use error::GroupError;
use offsets::{Committed, OffsetStore, Tp};

/// Default session timeout.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest group id.
const MAX_GROUP_ID: usize = 249;
/// Longest commit metadata.
const MAX_METADATA: usize = 4096;
/// Changed offsets reach the bucket's snapshot at most every 20 × 250 ms.
const SNAPSHOT_EVERY_TICKS: u64 = 20;

/// Group state names shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Every member owns exactly its target.
    Stable,
    /// Partitions are moving between members.
    Reconciling,
}

impl GroupState {
    /// Upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "EMPTY",
            GroupState::Stable => "STABLE",
            GroupState::Reconciling => "RECONCILING",
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    client_id: String,
    topics: BTreeSet<String>,
    epoch: i32,
    previous_epoch: i32,
    session_timeout: Duration,
    last_seen: Instant,
    /// What the member reported owning.
    owned: BTreeSet<Tp>,
    /// What the coordinator last told it it may own.
    assigned: BTreeSet<Tp>,
}

#[derive(Debug, Default)]
struct Group {
    epoch: i32,
    members: BTreeMap<String, Member>,
    target: BTreeMap<String, BTreeSet<Tp>>,
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

/// The group coordinator of this broker.
#[derive(Debug)]
pub struct GroupCoordinator {
    broker: Arc<Broker>,
    store: OffsetStore,
    /// Offsets changed since they were last published to the bucket.
    snapshot_dirty: std::sync::atomic::AtomicBool,
    groups: Mutex<HashMap<String, Group>>,
    heartbeat_interval: Duration,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Checks a group id.
pub fn validate_group_id(id: &str) -> Result<(), GroupError> {
    if id.is_empty() || id.len() > MAX_GROUP_ID || id.chars().any(char::is_control) {
        return Err(GroupError::InvalidGroupId(id.to_string()));
    }
    Ok(())
}

impl GroupState {
    fn of(group: &Group) -> Self {
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
    /// Opens the offset store under `<data-dir>/groups` and starts the
    /// session-expiry task.
    pub fn open(
        broker: Arc<Broker>,
        heartbeat_interval: Duration,
    ) -> Result<Arc<Self>, GroupError> {
        let store = OffsetStore::open(&broker.settings().data_dir.join("groups"))?;
        let c = Arc::new(GroupCoordinator {
            broker: Arc::clone(&broker),
            store,
            // Publish once at start, so a restored or fresh broker's bucket
            // snapshot carries the offsets it has.
            snapshot_dirty: std::sync::atomic::AtomicBool::new(true),
            groups: Mutex::new(HashMap::new()),
            heartbeat_interval,
        });
        let weak = Arc::downgrade(&c);
        let shutdown = broker.shutdown_token().clone();
        broker.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            let mut ticks: u64 = 0;
            loop {
                let stopping = tokio::select! {
                    _ = tick.tick() => false,
                    _ = shutdown.cancelled() => true,
                };
                let Some(c) = weak.upgrade() else { return };
                if stopping {
                    // Last chance to get recent commits into the bucket.
                    c.publish_offsets().await;
                    return;
                }
                c.expire_members();
                ticks += 1;
                if ticks % SNAPSHOT_EVERY_TICKS == 1 {
                    c.publish_offsets().await;
                }
            }
        });
        Ok(c)
    }

    /// Publishes committed offsets to the bucket's cluster snapshot when they
    /// changed (tiered storage only).
    async fn publish_offsets(&self) {
        use std::sync::atomic::Ordering;
        let Some(tiering) = self.broker.tiering() else {
            return;
        };
        if !self.snapshot_dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let groups = self
            .store
            .snapshot()
            .into_iter()
            .map(|(group_id, offsets)| SnapshotGroup {
                group_id,
                offsets: offsets
                    .into_iter()
                    .map(|((topic, partition), c)| SnapshotOffset {
                        topic,
                        partition,
                        offset: c.offset,
                        metadata: c.metadata,
                        commit_ms: c.commit_ms,
                    })
                    .collect(),
            })
            .collect();
        tiering.set_groups(groups);
        let tiering = Arc::clone(tiering);
        if let Err(e) = tiering.write_snapshot(self.broker.snapshot_topics()).await {
            tracing::warn!(error = %e, "could not publish group offsets to the bucket; retrying");
            self.snapshot_dirty.store(true, Ordering::Release);
        }
    }

    fn mark_dirty(&self) {
        self.snapshot_dirty
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Suggested heartbeat interval.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    fn partition_counts(&self, topics: impl Iterator<Item = String>) -> BTreeMap<String, u32> {
        topics
            .filter_map(|t| {
                self.broker
                    .topic(&t)
                    .ok()
                    .map(|topic| (t, topic.partitions().len() as u32))
            })
            .collect()
    }

    /// Recomputes the group's target after a membership or subscription
    /// change.
    fn rebalance(&self, group: &mut Group) {
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
                        owned,
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
                if epoch != member.epoch && epoch != member.previous_epoch {
                    return Err(GroupError::FencedEpoch {
                        member: hb.member_id,
                        got: epoch,
                        current: member.epoch,
                    });
                }
                member.last_seen = Instant::now();
                member.session_timeout = hb.session_timeout;
                member.owned = owned;
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
    fn expire_members(&self) {
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

    /// Commits offsets, checking the member's epoch and ownership.
    pub fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        offsets: Vec<(Tp, i64, String)>,
    ) -> Result<(), GroupError> {
        validate_group_id(group_id)?;
        for ((topic, partition), offset, metadata) in &offsets {
            self.broker.partition(topic, *partition)?;
            if *offset < 0 {
                return Err(GroupError::InvalidRequest(format!(
                    "offset {offset} for {topic}/{partition} is negative"
                )));
            }
            if metadata.len() > MAX_METADATA {
                return Err(GroupError::InvalidRequest(format!(
                    "metadata for {topic}/{partition} is longer than {MAX_METADATA} bytes"
                )));
            }
        }
        {
            let groups = self.groups.lock();
            let group = groups.get(group_id);
            if member_id.is_empty() {
                if let Some(g) = group.filter(|g| !g.members.is_empty()) {
                    return Err(GroupError::GroupNotEmpty {
                        group: group_id.to_string(),
                        members: g.members.len(),
                    });
                }
            } else {
                let member = group
                    .and_then(|g| g.members.get(member_id))
                    .ok_or_else(|| GroupError::UnknownMember {
                        group: group_id.to_string(),
                        member: member_id.to_string(),
                    })?;
                if member_epoch != member.epoch && member_epoch != member.previous_epoch {
                    return Err(GroupError::FencedEpoch {
                        member: member_id.to_string(),
                        got: member_epoch,
                        current: member.epoch,
                    });
                }
                for (tp, _, _) in &offsets {
                    // A partition being revoked is still committable until
                    // the member reports it gone.
                    if !member.assigned.contains(tp) && !member.owned.contains(tp) {
                        return Err(GroupError::NotAssigned {
                            member: member_id.to_string(),
                            topic: tp.0.clone(),
                            partition: tp.1,
                        });
                    }
                }
            }
        }
        let now = now_ms();
        self.mark_dirty();
        self.store.commit(
            group_id,
            offsets
                .into_iter()
                .map(|(tp, offset, metadata)| {
                    (
                        tp,
                        Committed {
                            offset,
                            metadata,
                            commit_ms: now,
                        },
                    )
                })
                .collect(),
        )
    }

    /// Committed offsets of a group.
    pub fn committed(&self, group_id: &str) -> Result<BTreeMap<Tp, Committed>, GroupError> {
        validate_group_id(group_id)?;
        Ok(self.store.get(group_id))
    }

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
    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
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
        let partitions = tps
            .into_iter()
            .map(|tp| {
                let c = committed.get(&tp);
                let (start, end) = self
                    .broker
                    .partition(&tp.0, tp.1)
                    .map(|p| (p.log_start_offset(), p.high_watermark()))
                    .unwrap_or((-1, -1));
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
        self.mark_dirty();
        self.store.delete(group_id)
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
        let t = self.broker.topic(topic)?;
        let ids: Vec<u32> = if partitions.is_empty() {
            (0..t.partitions().len() as u32).collect()
        } else {
            partitions.to_vec()
        };
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
            let partition = Arc::clone(t.partition(p)?);
            let (start, end) = (partition.log_start_offset(), partition.high_watermark());
            let tp = (topic.to_string(), p);
            let old = committed.get(&tp).map_or(-1, |c| c.offset);
            let new = match to {
                ResetTo::Earliest => start,
                ResetTo::Latest => end,
                ResetTo::Offset(o) => o.clamp(start, end),
                ResetTo::ShiftBy(d) => (if old < 0 { start } else { old })
                    .saturating_add(d)
                    .clamp(start, end),
                ResetTo::Timestamp(ts) => {
                    let found = partition.offset_for_timestamp(ts).await?;
                    found.map_or(end, |(o, _)| o)
                }
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
        self.mark_dirty();
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
        )?;
        Ok(plan)
    }
}

fn new_member_id() -> String {
    let a: u64 = rand::random();
    let b: u64 = rand::random();
    format!("{a:016x}{b:016x}")
}
