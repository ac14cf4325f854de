//! The Admin service: topics and metadata.

use std::collections::BTreeMap;

use tidelog_proto::v1::{
    admin_server, AlterTopicConfigRequest, AlterTopicConfigResponse, BrokerInfo,
    ClusterBrokerStatus, ClusterStatusRequest, ClusterStatusResponse, CreateTopicRequest,
    CreateTopicResponse, DeleteTopicRequest, DeleteTopicResponse, DescribeTopicRequest,
    DescribeTopicResponse, ListTopicsRequest, ListTopicsResponse, MetadataRequest,
    MetadataResponse, PartitionDescription, TopicDescription, TopicMetadata, TopicSummary,
};
use tonic::{Request, Response, Status};

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tidelog_proto::v1::admin_client::AdminClient;

use super::Api;
use crate::broker::{topic_config, BrokerError, Partition, Topic};
use crate::cluster::controller::ControllerRequest;
use crate::cluster::node::ClusterError;
use crate::cluster::state::{CommandResult, Refusal, TopicRecord};

/// How long a broker waits for metadata it has not applied yet (a topic
/// created through another broker a moment ago) before answering that it
/// does not exist.
const METADATA_GRACE: Duration = Duration::from_secs(2);

impl Api {
    /// The local description of the partitions this broker hosts.
    fn describe_local(&self, topic: &Topic) -> Vec<PartitionDescription> {
        let me = self.cluster.node_id() as u32;
        topic
            .partitions()
            .iter()
            .map(|p| {
                let s = p.stats();
                let r = p.remote_stats();
                PartitionDescription {
                    partition: p.id(),
                    log_start_offset: p.log_start_offset(),
                    log_end_offset: p.high_watermark(),
                    size_bytes: s.size_bytes,
                    segments: s.segments,
                    leader: me,
                    local_start_offset: s.log_start_offset,
                    remote_start_offset: r.start_offset,
                    remote_end_offset: r.end_offset,
                    remote_size_bytes: r.size_bytes,
                    remote_segments: r.segments,
                }
            })
            .collect()
    }

    /// The topic's record in the metadata, waiting briefly for one created
    /// through another broker a moment ago.
    pub(super) async fn topic_record(&self, name: &str) -> Result<TopicRecord, BrokerError> {
        let mut rx = self.cluster.subscribe();
        let found = tokio::time::timeout(METADATA_GRACE, async {
            loop {
                if let Some(t) = rx.borrow_and_update().topics.get(name) {
                    return Some(t.clone());
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match found {
            Ok(Some(t)) => Ok(t),
            _ => Err(BrokerError::UnknownTopic(name.to_string())),
        }
    }

    /// A partition this broker hosts; else NOT_LEADER naming the broker
    /// that leads it, or NOT_FOUND when the cluster has no such topic.
    /// Never waits: produce streams call it in order.
    pub(super) fn partition(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Arc<Partition>, BrokerError> {
        match self.broker.partition(topic, partition) {
            Ok(p) => return Ok(p),
            Err(BrokerError::NotHosted { .. }) | Err(BrokerError::UnknownTopic(_)) => {}
            Err(e) => return Err(e),
        }
        let meta = self.cluster.metadata();
        let Some(t) = meta.topics.get(topic) else {
            return Err(BrokerError::UnknownTopic(topic.to_string()));
        };
        let Some(p) = t.partitions.get(partition as usize) else {
            return Err(BrokerError::UnknownPartition {
                topic: topic.to_string(),
                partition,
                count: t.partitions.len() as u32,
            });
        };
        let leader = meta
            .brokers
            .get(&p.leader)
            .map(|b| (b.id, b.address.clone()));
        Err(BrokerError::NotLeader {
            topic: topic.to_string(),
            partition,
            leader,
        })
    }

    /// Like [`Api::partition`], but waits briefly for a topic or partition
    /// the metadata has placed here and that is being created.
    pub(super) async fn partition_async(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<Arc<Partition>, BrokerError> {
        let deadline = tokio::time::Instant::now() + METADATA_GRACE;
        loop {
            let e = match self.partition(topic, partition) {
                Ok(p) => return Ok(p),
                Err(e) => e,
            };
            let placed_here = matches!(&e, BrokerError::NotLeader { leader: Some((id, _)), .. } if u64::from(*id) == self.cluster.node_id());
            let unknown = matches!(&e, BrokerError::UnknownTopic(_));
            if !(placed_here || unknown) || tokio::time::Instant::now() >= deadline {
                return Err(e);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The whole description of a topic: local partitions from here, the
    /// others from the brokers that host them (asked concurrently).
    async fn describe(&self, name: &str) -> Result<TopicDescription, BrokerError> {
        let record = self.topic_record(name).await?;
        let config = topic_config::resolve(&self.broker.settings().log_defaults, &record.config)
            .map(|c| topic_config::effective(&c))
            .unwrap_or_else(|_| record.config.clone());
        let meta = self.cluster.metadata();
        let me = self.cluster.node_id() as u32;
        let mut parts: BTreeMap<u32, PartitionDescription> = BTreeMap::new();
        if let Ok(local) = self.broker.topic(name) {
            for d in self.describe_local(&local) {
                parts.insert(d.partition, d);
            }
        }
        let others: BTreeSet<u32> = record
            .partitions
            .iter()
            .map(|p| p.leader)
            .filter(|&l| l != me)
            .collect();
        let asks = others.into_iter().filter_map(|id| {
            let address = meta.brokers.get(&id)?.address.clone();
            Some(describe_remote(address, name.to_string()))
        });
        for remote in futures::future::join_all(asks).await.into_iter().flatten() {
            for d in remote {
                parts.insert(d.partition, d);
            }
        }
        let partitions = record
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                parts.remove(&(i as u32)).unwrap_or(PartitionDescription {
                    partition: i as u32,
                    log_start_offset: -1,
                    log_end_offset: -1,
                    leader: p.leader,
                    local_start_offset: -1,
                    remote_start_offset: -1,
                    remote_end_offset: -1,
                    ..PartitionDescription::default()
                })
            })
            .collect();
        Ok(TopicDescription {
            name: name.to_string(),
            config: config.into_iter().collect(),
            partitions,
        })
    }

    /// Waits until this broker's local topics reflect the metadata as it
    /// is now (the reconciler has run over it).
    async fn settle(&self, name: &str, present: bool) {
        let _ = tokio::time::timeout(METADATA_GRACE, async {
            loop {
                let meta = self.cluster.metadata();
                let me = self.cluster.node_id() as u32;
                let hosts_any = meta
                    .topics
                    .get(name)
                    .is_some_and(|t| t.partitions.iter().any(|p| p.replicas.contains(&me)));
                let local = self.broker.topic(name).is_ok();
                let done = if present { local == hosts_any } else { !local };
                if done {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    fn cluster_error(e: ClusterError) -> BrokerError {
        BrokerError::QuorumUnavailable(e.to_string())
    }
}

/// The partitions `address` hosts, retried briefly while that broker has
/// not created them yet (a topic created a moment ago).
async fn describe_remote(address: String, name: String) -> Option<Vec<PartitionDescription>> {
    let deadline = tokio::time::Instant::now() + METADATA_GRACE;
    loop {
        let answer = async {
            let mut c = AdminClient::connect(format!("http://{address}"))
                .await
                .ok()?;
            c.describe_topic(DescribeTopicRequest {
                name: name.clone(),
                local_only: true,
            })
            .await
            .ok()
        };
        let got = tokio::time::timeout(Duration::from_secs(5), answer)
            .await
            .ok()
            .flatten();
        match got {
            Some(r) => return r.into_inner().topic.map(|t| t.partitions),
            None if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None => return None,
        }
    }
}

/// What a refused metadata change means to a client.
fn refused(r: CommandResult) -> Result<(), BrokerError> {
    match r {
        CommandResult::Ok => Ok(()),
        CommandResult::Refused(Refusal::TopicExists(n)) => Err(BrokerError::TopicExists(n)),
        CommandResult::Refused(Refusal::UnknownTopic(n)) => Err(BrokerError::UnknownTopic(n)),
        CommandResult::Refused(e) => Err(BrokerError::InvalidRequest(e.to_string())),
    }
}

#[tonic::async_trait]
impl admin_server::Admin for Api {
    async fn create_topic(
        &self,
        request: Request<CreateTopicRequest>,
    ) -> Result<Response<CreateTopicResponse>, Status> {
        let req = request.into_inner();
        let config: BTreeMap<String, String> = req.config.into_iter().collect();
        let run = async {
            self.broker
                .validate_new_topic(&req.name, req.partitions, &config)?;
            let result = self
                .cluster
                .request(ControllerRequest::CreateTopic {
                    name: req.name.clone(),
                    partitions: req.partitions,
                    config,
                })
                .await
                .map_err(Self::cluster_error)?;
            refused(result)?;
            self.settle(&req.name, true).await;
            self.describe(&req.name).await
        };
        let topic = run.await.map_err(|e| self.fail(e))?;
        Ok(Response::new(CreateTopicResponse { topic: Some(topic) }))
    }

    async fn list_topics(
        &self,
        _request: Request<ListTopicsRequest>,
    ) -> Result<Response<ListTopicsResponse>, Status> {
        let topics = self
            .cluster
            .metadata()
            .topics
            .iter()
            .map(|(name, t)| TopicSummary {
                name: name.clone(),
                partitions: t.partitions.len() as u32,
            })
            .collect();
        Ok(Response::new(ListTopicsResponse { topics }))
    }

    async fn describe_topic(
        &self,
        request: Request<DescribeTopicRequest>,
    ) -> Result<Response<DescribeTopicResponse>, Status> {
        let req = request.into_inner();
        if req.local_only {
            let topic = self.broker.topic(&req.name).map_err(|e| self.fail(e))?;
            return Ok(Response::new(DescribeTopicResponse {
                topic: Some(TopicDescription {
                    name: req.name.clone(),
                    config: Default::default(),
                    partitions: self.describe_local(&topic),
                }),
            }));
        }
        let topic = self.describe(&req.name).await.map_err(|e| self.fail(e))?;
        Ok(Response::new(DescribeTopicResponse { topic: Some(topic) }))
    }

    async fn delete_topic(
        &self,
        request: Request<DeleteTopicRequest>,
    ) -> Result<Response<DeleteTopicResponse>, Status> {
        let req = request.into_inner();
        let run = async {
            self.topic_record(&req.name).await?;
            let result = self
                .cluster
                .request(ControllerRequest::DeleteTopic {
                    name: req.name.clone(),
                })
                .await
                .map_err(Self::cluster_error)?;
            refused(result)?;
            self.settle(&req.name, false).await;
            Ok::<(), BrokerError>(())
        };
        run.await.map_err(|e| self.fail(e))?;
        Ok(Response::new(DeleteTopicResponse {}))
    }

    async fn alter_topic_config(
        &self,
        request: Request<AlterTopicConfigRequest>,
    ) -> Result<Response<AlterTopicConfigResponse>, Status> {
        let req = request.into_inner();
        let set: BTreeMap<String, String> = req.set.into_iter().collect();
        let run = async {
            let record = self.topic_record(&req.name).await?;
            // Check the result here, where the broker defaults are known.
            let mut next = record.config.clone();
            for k in &req.delete {
                if !topic_config::KEYS.contains(&k.as_str()) {
                    return Err(BrokerError::InvalidConfig(format!("unknown key '{k}'")));
                }
                next.remove(k);
            }
            next.extend(set.clone());
            topic_config::resolve_consistent(&self.broker.settings().log_defaults, &next)?;
            let result = self
                .cluster
                .request(ControllerRequest::AlterTopicConfig {
                    name: req.name.clone(),
                    set,
                    delete: req.delete.clone(),
                })
                .await
                .map_err(Self::cluster_error)?;
            refused(result)?;
            // Wait until this broker applied it (if it hosts the topic).
            let _ = tokio::time::timeout(METADATA_GRACE, async {
                while self
                    .broker
                    .topic(&req.name)
                    .is_ok_and(|t| t.meta().config != next)
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
            self.describe(&req.name).await
        };
        let topic = run.await.map_err(|e| self.fail(e))?;
        Ok(Response::new(AlterTopicConfigResponse {
            topic: Some(topic),
        }))
    }

    async fn metadata(
        &self,
        request: Request<MetadataRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        let req = request.into_inner();
        for name in &req.topics {
            self.topic_record(name).await.map_err(|e| self.fail(e))?;
        }
        let meta = self.cluster.metadata();
        let topics = meta
            .topics
            .iter()
            .filter(|(name, _)| req.topics.is_empty() || req.topics.contains(name))
            .map(|(name, t)| TopicMetadata {
                name: name.clone(),
                leaders: t.partitions.iter().map(|p| p.leader).collect(),
            })
            .collect();
        let brokers = meta
            .brokers
            .values()
            .map(|b| BrokerInfo {
                id: b.id,
                address: b.address.clone(),
            })
            .collect();
        Ok(Response::new(MetadataResponse { brokers, topics }))
    }

    async fn cluster_status(
        &self,
        _request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let meta = self.cluster.metadata();
        let view = self.cluster.view();
        let load = meta.load();
        let brokers = meta
            .brokers
            .values()
            .map(|b| {
                let (partitions, leaders) = load.get(&b.id).copied().unwrap_or_default();
                let id = u64::from(b.id);
                ClusterBrokerStatus {
                    id: b.id,
                    address: b.address.clone(),
                    cluster_address: b.cluster_address.clone(),
                    alive: !b.fenced,
                    quorum_role: if view.voters.contains(&id) {
                        "voter"
                    } else if view.learners.contains(&id) {
                        "learner"
                    } else {
                        "none"
                    }
                    .into(),
                    controller: view.leader == Some(id),
                    partitions,
                    leaders,
                    epoch: b.epoch,
                }
            })
            .collect();
        Ok(Response::new(ClusterStatusResponse {
            cluster_id: meta.cluster_id.clone(),
            answered_by: self.cluster.node_id() as u32,
            controller_id: view.leader.map(|l| l as u32),
            brokers,
            committed_index: view.last_log,
            applied_index: view.applied,
        }))
    }
}
