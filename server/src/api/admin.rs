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

use super::Api;
use crate::broker::Topic;

impl Api {
    fn describe(&self, topic: &Topic) -> TopicDescription {
        let leader = self.broker.settings().broker_id;
        TopicDescription {
            name: topic.name(),
            config: self.broker.effective_config(topic).into_iter().collect(),
            partitions: topic
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
                        leader,
                        local_start_offset: s.log_start_offset,
                        remote_start_offset: r.start_offset,
                        remote_end_offset: r.end_offset,
                        remote_size_bytes: r.size_bytes,
                        remote_segments: r.segments,
                    }
                })
                .collect(),
        }
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
        let topic = self
            .broker
            .create_topic(&req.name, req.partitions, config)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(Response::new(CreateTopicResponse {
            topic: Some(self.describe(&topic)),
        }))
    }

    async fn list_topics(
        &self,
        _request: Request<ListTopicsRequest>,
    ) -> Result<Response<ListTopicsResponse>, Status> {
        let topics = self
            .broker
            .topics()
            .iter()
            .map(|t| TopicSummary {
                name: t.name(),
                partitions: t.partitions().len() as u32,
            })
            .collect();
        Ok(Response::new(ListTopicsResponse { topics }))
    }

    async fn describe_topic(
        &self,
        request: Request<DescribeTopicRequest>,
    ) -> Result<Response<DescribeTopicResponse>, Status> {
        let req = request.into_inner();
        let topic = self.broker.topic(&req.name).map_err(|e| self.fail(e))?;
        Ok(Response::new(DescribeTopicResponse {
            topic: Some(self.describe(&topic)),
        }))
    }

    async fn delete_topic(
        &self,
        request: Request<DeleteTopicRequest>,
    ) -> Result<Response<DeleteTopicResponse>, Status> {
        let req = request.into_inner();
        self.broker
            .delete_topic(&req.name)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(Response::new(DeleteTopicResponse {}))
    }

    async fn alter_topic_config(
        &self,
        request: Request<AlterTopicConfigRequest>,
    ) -> Result<Response<AlterTopicConfigResponse>, Status> {
        let req = request.into_inner();
        let topic = self
            .broker
            .alter_topic_config(&req.name, req.set.into_iter().collect(), &req.delete)
            .map_err(|e| self.fail(e))?;
        Ok(Response::new(AlterTopicConfigResponse {
            topic: Some(self.describe(&topic)),
        }))
    }

    async fn metadata(
        &self,
        request: Request<MetadataRequest>,
    ) -> Result<Response<MetadataResponse>, Status> {
        let req = request.into_inner();
        let settings = self.broker.settings();
        let topics = if req.topics.is_empty() {
            self.broker.topics()
        } else {
            req.topics
                .iter()
                .map(|n| self.broker.topic(n))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.fail(e))?
        };
        Ok(Response::new(MetadataResponse {
            brokers: vec![BrokerInfo {
                id: settings.broker_id,
                address: settings.advertised_address.clone(),
            }],
            topics: topics
                .iter()
                .map(|t| TopicMetadata {
                    name: t.name(),
                    leaders: vec![settings.broker_id; t.partitions().len()],
                })
                .collect(),
        }))
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
