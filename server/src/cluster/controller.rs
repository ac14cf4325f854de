//! What the controller (the quorum leader) decides: requests from any
//! broker arrive here (forwarded when this broker is not the controller)
//! and become metadata commands — placement of a new topic's partitions on
//! live brokers, deletion, config changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::state::{Command, CommandResult, MetadataState, Refusal};

/// A change asked of the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// A command decided already (registration and the like).
    Apply(Command),
    /// Create a topic: the controller places its partitions.
    CreateTopic {
        /// Name (validated by the broker that took the call).
        name: String,
        /// Partition count.
        partitions: u32,
        /// Config overrides.
        config: BTreeMap<String, String>,
    },
    /// Adopt a topic a broker already holds on disk (created before it
    /// joined a quorum, or restored from the bucket): all its partitions
    /// stay on that broker.
    AdoptTopic {
        /// Name.
        name: String,
        /// Partition count.
        partitions: u32,
        /// Config overrides.
        config: BTreeMap<String, String>,
        /// Creation time (ms) from its `topic.json`.
        created_ms: i64,
        /// The broker holding it.
        broker: u32,
    },
    /// Add a broker to the quorum as a learner (it follows the metadata log
    /// and can host partitions, but does not vote).
    AddLearner {
        /// Its node id.
        id: u64,
        /// Its cluster listener.
        cluster_address: String,
    },
    /// A broker is alive (handled by the controller in memory; refused
    /// when the broker is fenced or unknown, so it registers again).
    Heartbeat {
        /// Node id.
        id: u32,
    },
    /// Choose a coordinator for a group that has none yet.
    AssignCoordinator {
        /// Group id.
        group: String,
    },
    /// Delete a topic.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// Change a topic's config overrides.
    AlterTopicConfig {
        /// Name.
        name: String,
        /// Keys to set.
        set: BTreeMap<String, String>,
        /// Keys to remove.
        delete: Vec<String>,
    },
}

/// Turns a request into the command to write, given the metadata as the
/// controller has applied it. `Err` is a refusal that needs no write.
pub fn decide(
    state: &MetadataState,
    request: ControllerRequest,
    now_ms: i64,
) -> Result<Command, CommandResult> {
    Ok(match request {
        ControllerRequest::Apply(c) => c,
        ControllerRequest::CreateTopic {
            name,
            partitions,
            config,
        } => {
            if state.topics.contains_key(&name) {
                return Err(CommandResult::Refused(Refusal::TopicExists(name)));
            }
            // One replica per partition until replication lands.
            let placement = state.place(partitions, 1).ok_or_else(|| {
                CommandResult::Refused(Refusal::NotEnoughBrokers {
                    needed: 1,
                    live: state.live_brokers().len(),
                })
            })?;
            Command::CreateTopic {
                name,
                config,
                created_ms: now_ms,
                placement,
            }
        }
        ControllerRequest::AdoptTopic {
            name,
            partitions,
            config,
            created_ms,
            broker,
        } => Command::CreateTopic {
            name,
            config,
            created_ms,
            placement: vec![vec![broker]; partitions as usize],
        },
        ControllerRequest::DeleteTopic { name } => Command::DeleteTopic { name },
        // Handled by the node (a membership change, not a command).
        ControllerRequest::AddLearner { .. } | ControllerRequest::Heartbeat { .. } => {
            return Err(CommandResult::Ok)
        }
        ControllerRequest::AssignCoordinator { group } => {
            if state.coordinators.contains_key(&group) {
                return Err(CommandResult::Ok);
            }
            let broker = state
                .pick_coordinator(&group)
                .ok_or(CommandResult::Refused(Refusal::NotEnoughBrokers {
                    needed: 1,
                    live: 0,
                }))?;
            Command::AssignCoordinator { group, broker }
        }
        ControllerRequest::AlterTopicConfig { name, set, delete } => {
            let Some(t) = state.topics.get(&name) else {
                return Err(CommandResult::Refused(Refusal::UnknownTopic(name)));
            };
            let mut config = t.config.clone();
            for k in &delete {
                config.remove(k);
            }
            config.extend(set);
            Command::SetTopicConfig { name, config }
        }
    })
}
