//! Offset commits: checked against the member's epoch and what it owns,
//! then made durable in the offset store before they are acknowledged.

use std::collections::BTreeMap;

use super::offsets::{Committed, Tp};
use super::{now_ms, validate_group_id, GroupCoordinator, GroupError, MAX_METADATA};
use crate::broker::BrokerError;

impl GroupCoordinator {
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
            match self.partition_count(topic) {
                None => return Err(BrokerError::UnknownTopic(topic.clone()).into()),
                Some(n) if *partition >= n => {
                    return Err(BrokerError::UnknownPartition {
                        topic: topic.clone(),
                        partition: *partition,
                        count: n,
                    }
                    .into())
                }
                Some(_) => {}
            }
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
                // The previous epoch is accepted too: a commit may be built
                // just before a heartbeat answer bumps the epoch (the
                // assignment changed), and the ownership check below keeps
                // it to partitions the member still holds. Older epochs
                // are fenced.
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
        self.offsets_changed(
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
            ),
        )
    }

    /// Committed offsets of a group.
    pub fn committed(&self, group_id: &str) -> Result<BTreeMap<Tp, Committed>, GroupError> {
        validate_group_id(group_id)?;
        Ok(self.store.get(group_id))
    }
}
