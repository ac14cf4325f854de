//! The replicated metadata: what every broker applies from the quorum's
//! log, in the same order, so every broker answers `Metadata` alike. The
//! controller (the quorum leader) is the only writer; it decides (placement,
//! fencing) and writes commands that say what was decided, so applying a
//! command never needs anything but the state itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A broker the cluster knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRecord {
    /// Its `--node-id`.
    pub id: u32,
    /// host:port clients dial.
    pub address: String,
    /// host:port of its cluster listener.
    pub cluster_address: String,
    /// Bumped at each registration (restart) and each fencing.
    pub epoch: u64,
    /// Missed its session timeout; not given new partitions until it
    /// registers again.
    pub fenced: bool,
}

/// One partition's placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Brokers holding a replica, preferred leader first.
    pub replicas: Vec<u32>,
    /// The broker that leads it.
    pub leader: u32,
    /// Bumped at each change of leader.
    pub leader_epoch: u32,
    /// Replicas in sync with the leader.
    pub isr: Vec<u32>,
}

/// A topic and where its partitions live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// Config overrides (as `topic.json` holds them).
    pub config: BTreeMap<String, String>,
    /// Creation time (ms); part of the bucket layout.
    pub created_ms: i64,
    /// Partitions, by number.
    pub partitions: Vec<PartitionRecord>,
}

/// The whole replicated metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataState {
    /// Chosen by the first controller; names the cluster in the bucket.
    pub cluster_id: String,
    /// Known brokers.
    pub brokers: BTreeMap<u32, BrokerRecord>,
    /// Topics.
    pub topics: BTreeMap<String, TopicRecord>,
    /// The coordinator of each consumer group (chosen at first use and
    /// kept, since the group's committed offsets live there).
    #[serde(default)]
    pub coordinators: BTreeMap<String, u32>,
}

/// A change to the metadata, decided by the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Names the cluster; applied once (later ones are ignored).
    InitCluster {
        /// The new cluster's id.
        cluster_id: String,
    },
    /// A broker (re)started: record its addresses and bump its epoch.
    RegisterBroker {
        /// Node id.
        id: u32,
        /// Client address.
        address: String,
        /// Cluster listener address.
        cluster_address: String,
    },
    /// A broker missed its session timeout.
    FenceBroker {
        /// Node id.
        id: u32,
    },
    /// Creates a topic with the placement the controller chose.
    CreateTopic {
        /// Name.
        name: String,
        /// Config overrides.
        config: BTreeMap<String, String>,
        /// Creation time (ms).
        created_ms: i64,
        /// Replicas per partition, leader first.
        placement: Vec<Vec<u32>>,
    },
    /// Deletes a topic.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// Names a group's coordinator (the first assignment stays).
    AssignCoordinator {
        /// Group id.
        group: String,
        /// The broker.
        broker: u32,
    },
    /// Replaces a topic's config overrides.
    SetTopicConfig {
        /// Name.
        name: String,
        /// The new overrides.
        config: BTreeMap<String, String>,
    },
}

/// What applying a command answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Applied.
    Ok,
    /// Refused; the state is unchanged.
    Refused(Refusal),
}

/// Why a command changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// A topic of that name exists.
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    /// No such topic.
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    /// No such broker.
    #[error("unknown broker {0}")]
    UnknownBroker(u32),
    /// Another live broker registered with this node id.
    #[error("node id {id} is in use by the live broker at {address}; give each broker its own --node-id")]
    NodeIdInUse {
        /// The id.
        id: u32,
        /// The other broker's client address.
        address: String,
    },
    /// Too few live brokers for the replicas asked.
    #[error("{needed} live broker(s) needed, {live} live")]
    NotEnoughBrokers {
        /// Replicas per partition.
        needed: usize,
        /// Live brokers.
        live: usize,
    },
}

impl MetadataState {
    /// Applies one command.
    pub fn apply(&mut self, command: &Command) -> CommandResult {
        match command {
            Command::InitCluster { cluster_id } => {
                if self.cluster_id.is_empty() {
                    self.cluster_id = cluster_id.clone();
                }
            }
            Command::RegisterBroker {
                id,
                address,
                cluster_address,
            } => {
                let epoch = self.brokers.get(id).map_or(1, |b| b.epoch + 1);
                self.brokers.insert(
                    *id,
                    BrokerRecord {
                        id: *id,
                        address: address.clone(),
                        cluster_address: cluster_address.clone(),
                        epoch,
                        fenced: false,
                    },
                );
            }
            Command::FenceBroker { id } => match self.brokers.get_mut(id) {
                Some(b) => {
                    b.fenced = true;
                    b.epoch += 1;
                }
                None => return CommandResult::Refused(Refusal::UnknownBroker(*id)),
            },
            Command::CreateTopic {
                name,
                config,
                created_ms,
                placement,
            } => {
                if self.topics.contains_key(name) {
                    return CommandResult::Refused(Refusal::TopicExists(name.clone()));
                }
                let partitions = placement
                    .iter()
                    .map(|replicas| PartitionRecord {
                        leader: replicas.first().copied().unwrap_or_default(),
                        leader_epoch: 0,
                        isr: replicas.clone(),
                        replicas: replicas.clone(),
                    })
                    .collect();
                self.topics.insert(
                    name.clone(),
                    TopicRecord {
                        config: config.clone(),
                        created_ms: *created_ms,
                        partitions,
                    },
                );
            }
            Command::DeleteTopic { name } => {
                if self.topics.remove(name).is_none() {
                    return CommandResult::Refused(Refusal::UnknownTopic(name.clone()));
                }
            }
            Command::AssignCoordinator { group, broker } => {
                self.coordinators.entry(group.clone()).or_insert(*broker);
            }
            Command::SetTopicConfig { name, config } => match self.topics.get_mut(name) {
                Some(t) => t.config = config.clone(),
                None => return CommandResult::Refused(Refusal::UnknownTopic(name.clone())),
            },
        }
        CommandResult::Ok
    }

    /// A broker to coordinate `group`, spread by a hash of the id over the
    /// live brokers.
    pub fn pick_coordinator(&self, group: &str) -> Option<u32> {
        let live = self.live_brokers();
        if live.is_empty() {
            return None;
        }
        let i = crc32c::crc32c(group.as_bytes()) as usize % live.len();
        live.get(i).copied()
    }

    /// Brokers that may take new partitions (registered, not fenced).
    pub fn live_brokers(&self) -> Vec<u32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect()
    }

    /// Partitions placed on, and led by, each broker.
    pub fn load(&self) -> BTreeMap<u32, (u32, u32)> {
        let mut out: BTreeMap<u32, (u32, u32)> =
            self.brokers.keys().map(|&id| (id, (0, 0))).collect();
        for t in self.topics.values() {
            for p in &t.partitions {
                for r in &p.replicas {
                    out.entry(*r).or_default().0 += 1;
                }
                out.entry(p.leader).or_default().1 += 1;
            }
        }
        out
    }

    /// Places `partitions` new partitions of `replication` replicas each on
    /// live brokers, fewest partitions first and then fewest leaderships,
    /// so partitions and leadership spread evenly. `None` when fewer live
    /// brokers than replicas exist.
    pub fn place(&self, partitions: u32, replication: usize) -> Option<Vec<Vec<u32>>> {
        let live = self.live_brokers();
        if live.len() < replication || replication == 0 {
            return None;
        }
        let load = self.load();
        let mut counts: BTreeMap<u32, (u32, u32)> = live
            .iter()
            .map(|id| (*id, load.get(id).copied().unwrap_or_default()))
            .collect();
        let mut out = Vec::with_capacity(partitions as usize);
        for _ in 0..partitions {
            // Leader: fewest leaderships, then fewest partitions, then id.
            let mut by_leadership: Vec<u32> = counts.keys().copied().collect();
            by_leadership.sort_by_key(|id| {
                let (parts, leads) = counts[id];
                (leads, parts, *id)
            });
            let leader = by_leadership[0];
            let mut replicas = vec![leader];
            let mut rest: Vec<u32> = counts.keys().copied().filter(|&id| id != leader).collect();
            rest.sort_by_key(|id| (counts[id].0, *id));
            replicas.extend(rest.into_iter().take(replication - 1));
            for r in &replicas {
                if let Some(c) = counts.get_mut(r) {
                    c.0 += 1;
                }
            }
            if let Some(c) = counts.get_mut(&leader) {
                c.1 += 1;
            }
            out.push(replicas);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_brokers() -> MetadataState {
        let mut s = MetadataState::default();
        for id in 1..=3 {
            s.apply(&Command::RegisterBroker {
                id,
                address: format!("b{id}:7070"),
                cluster_address: format!("b{id}:7072"),
            });
        }
        s
    }

    #[test]
    fn placement_spreads_partitions_and_leadership_evenly() {
        let mut s = three_brokers();
        let placement = s.place(6, 1).expect("enough brokers");
        s.apply(&Command::CreateTopic {
            name: "t".into(),
            config: BTreeMap::new(),
            created_ms: 0,
            placement,
        });
        let load = s.load();
        for id in 1..=3 {
            assert_eq!(load[&id], (2, 2), "broker {id}: {load:?}");
        }
        // A second topic keeps the balance.
        let placement = s.place(3, 2).expect("enough brokers");
        assert!(placement.iter().all(|r| r.len() == 2 && r[0] != r[1]));
        let leaders: Vec<u32> = placement.iter().map(|r| r[0]).collect();
        assert_eq!(leaders.len(), 3);
        assert!(s.place(1, 4).is_none(), "more replicas than brokers");
    }

    #[test]
    fn fencing_and_reregistration_bump_the_epoch_and_fenced_brokers_get_nothing() {
        let mut s = three_brokers();
        assert_eq!(s.apply(&Command::FenceBroker { id: 2 }), CommandResult::Ok);
        assert_eq!(s.brokers[&2].epoch, 2);
        let placement = s.place(4, 1).expect("two live");
        assert!(placement.iter().all(|r| r[0] != 2));
        s.apply(&Command::RegisterBroker {
            id: 2,
            address: "b2:7070".into(),
            cluster_address: "b2:7072".into(),
        });
        assert_eq!((s.brokers[&2].epoch, s.brokers[&2].fenced), (3, false));
        assert_eq!(
            s.apply(&Command::FenceBroker { id: 9 }),
            CommandResult::Refused(Refusal::UnknownBroker(9))
        );
    }

    #[test]
    fn topic_commands_refuse_what_does_not_fit_and_change_nothing() {
        let mut s = three_brokers();
        let create = Command::CreateTopic {
            name: "t".into(),
            config: BTreeMap::new(),
            created_ms: 5,
            placement: vec![vec![1], vec![2]],
        };
        assert_eq!(s.apply(&create), CommandResult::Ok);
        let before = s.clone();
        assert_eq!(
            s.apply(&create),
            CommandResult::Refused(Refusal::TopicExists("t".into()))
        );
        assert_eq!(s, before);
        assert_eq!(
            s.apply(&Command::DeleteTopic { name: "x".into() }),
            CommandResult::Refused(Refusal::UnknownTopic("x".into()))
        );
        assert_eq!(
            s.apply(&Command::DeleteTopic { name: "t".into() }),
            CommandResult::Ok
        );
        assert!(s.topics.is_empty());
    }
}
