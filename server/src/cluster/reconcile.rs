//! Makes this broker's local topics match the cluster's metadata: creates
//! the partitions placed on it, applies config changes, deletes topics the
//! cluster deleted. Before the first pass it adopts topics the data
//! directory holds that the metadata lacks (created before the broker was
//! in a quorum, or restored from the bucket), so no local data is ever
//! deleted for not being known yet.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::controller::ControllerRequest;
use super::node::ClusterNode;
use super::state::{CommandResult, MetadataState, Refusal};
use crate::broker::topic::{TopicMeta, META_VERSION};
use crate::broker::Broker;

/// Starts reconciling; the receiver turns true once the local topics match
/// the metadata for the first time.
pub fn start(
    node: Arc<ClusterNode>,
    broker: Arc<Broker>,
    shutdown: CancellationToken,
) -> watch::Receiver<bool> {
    let (ready, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = node.wait_registered() => {}
            _ = shutdown.cancelled() => return,
        }
        let conflicts = adopt(&node, &broker, &shutdown).await;
        let mut changes = node.subscribe();
        loop {
            let meta = changes.borrow_and_update().clone();
            reconcile(&node, &broker, &meta, &conflicts).await;
            ready.send_replace(true);
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = shutdown.cancelled() => return,
            }
        }
    });
    rx
}

/// Registers local topics the metadata lacks; returns the names that
/// clash with a different topic of the same name in the metadata (left
/// alone, never deleted).
async fn adopt(
    node: &ClusterNode,
    broker: &Broker,
    shutdown: &CancellationToken,
) -> BTreeSet<String> {
    let me = node.node_id() as u32;
    let mut conflicts = BTreeSet::new();
    for topic in broker.topics() {
        let meta = topic.meta();
        loop {
            if let Some(t) = node.metadata().topics.get(&meta.name) {
                if t.created_ms != meta.created_ms {
                    tracing::error!(topic = %meta.name, "this data directory holds a topic of the same name as a different topic in the cluster; its local data is left as it is and not served");
                    conflicts.insert(meta.name.clone());
                }
                break;
            }
            let request = ControllerRequest::AdoptTopic {
                name: meta.name.clone(),
                partitions: meta.partitions,
                config: meta.config.clone(),
                created_ms: meta.created_ms,
                broker: me,
            };
            match node.request(request).await {
                Ok(CommandResult::Ok) => {
                    tracing::info!(topic = %meta.name, "registered a local topic with the cluster");
                    break;
                }
                // Someone registered it meanwhile: compare on the next turn.
                Ok(CommandResult::Refused(Refusal::TopicExists(_))) => {
                    wait_for_topic(node, &meta.name).await;
                }
                Ok(CommandResult::Refused(e)) => {
                    tracing::error!(topic = %meta.name, error = %e, "cannot register a local topic with the cluster");
                    conflicts.insert(meta.name.clone());
                    break;
                }
                Err(e) => {
                    tracing::warn!(topic = %meta.name, error = %e, "registering a local topic; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.cancelled() => return conflicts,
                    }
                }
            }
        }
    }
    conflicts
}

async fn wait_for_topic(node: &ClusterNode, name: &str) {
    let mut rx = node.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while !rx.borrow_and_update().topics.contains_key(name) {
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
}

async fn reconcile(
    node: &ClusterNode,
    broker: &Broker,
    meta: &MetadataState,
    conflicts: &BTreeSet<String>,
) {
    let me = node.node_id() as u32;
    for (name, t) in &meta.topics {
        if conflicts.contains(name) {
            continue;
        }
        let hosted: Vec<u32> = t
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.replicas.contains(&me))
            .map(|(i, _)| i as u32)
            .collect();
        if let Ok(local) = broker.topic(name) {
            let lm = local.meta();
            if lm.created_ms == t.created_ms {
                if lm.config != t.config {
                    if let Err(e) = broker.set_topic_config(name, t.config.clone()) {
                        tracing::error!(topic = %name, error = %e, "cannot apply the cluster's topic config");
                    }
                }
                continue;
            }
            // Deleted and created again while this broker was away: the
            // local data belongs to the old topic.
            if let Err(e) = broker.delete_topic(name).await {
                tracing::error!(topic = %name, error = %e, "cannot remove an old incarnation of a topic");
                continue;
            }
        }
        if hosted.is_empty() {
            continue;
        }
        let local = TopicMeta {
            version: META_VERSION,
            name: name.clone(),
            partitions: t.partitions.len() as u32,
            config: t.config.clone(),
            created_ms: t.created_ms,
            hosted: Some(hosted),
        };
        if let Err(e) = broker.create_local_topic(local).await {
            tracing::error!(topic = %name, error = %e, "cannot create the partitions placed on this broker");
        }
    }
    for local in broker.topics() {
        let name = local.name();
        if !meta.topics.contains_key(&name) && !conflicts.contains(&name) {
            if let Err(e) = broker.delete_topic(&name).await {
                tracing::error!(topic = %name, error = %e, "cannot delete a topic the cluster deleted");
            }
        }
    }
}
