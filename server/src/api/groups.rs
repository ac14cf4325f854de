//! The Groups service: membership heartbeats, offset commits and group
//! administration.

use std::collections::BTreeMap;
use std::time::Duration;

use tidelog_proto::v1::{
    groups_server, reset_spec::Spec, BrokerInfo, CommitOffsetsRequest, CommitOffsetsResponse,
    CommittedOffset, DeleteGroupRequest, DeleteGroupResponse, DescribeGroupRequest,
    DescribeGroupResponse, FetchOffsetsRequest, FetchOffsetsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupHeartbeatRequest, GroupHeartbeatResponse, GroupListing,
    GroupMember, ListGroupsRequest, ListGroupsResponse, PartitionLag, ResetOffsetsRequest,
    ResetOffsetsResponse, ResetPlanEntry, TopicPartitions,
};
use tonic::{Request, Response, Status};

use super::Api;
use crate::broker::BrokerError;
use crate::cluster::controller::ControllerRequest;
use crate::groups::offsets::Tp;
use crate::groups::{GroupError, Heartbeat, ResetTo, DEFAULT_SESSION_TIMEOUT};
use tidelog_proto::v1::ErrorReason;

fn flatten(tps: Vec<TopicPartitions>) -> Vec<Tp> {
    tps.into_iter()
        .flat_map(|t| {
            let topic = t.topic;
            t.partitions.into_iter().map(move |p| (topic.clone(), p))
        })
        .collect()
}

fn group_by_topic(tps: impl IntoIterator<Item = Tp>) -> Vec<TopicPartitions> {
    let mut m: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (t, p) in tps {
        m.entry(t).or_default().push(p);
    }
    m.into_iter()
        .map(|(topic, partitions)| TopicPartitions { topic, partitions })
        .collect()
}

impl Api {
    /// The broker coordinating `group`: from the metadata, or chosen by the
    /// controller at first use.
    async fn coordinator_of(&self, group: &str) -> Result<(u32, String), BrokerError> {
        let lookup = |meta: &crate::cluster::state::MetadataState| {
            let id = *meta.coordinators.get(group)?;
            let address = meta.brokers.get(&id)?.address.clone();
            Some((id, address))
        };
        if let Some(found) = lookup(&self.cluster.metadata()) {
            return Ok(found);
        }
        self.cluster
            .request(ControllerRequest::AssignCoordinator {
                group: group.to_string(),
            })
            .await
            .map_err(|e| BrokerError::QuorumUnavailable(e.to_string()))?;
        let mut rx = self.cluster.subscribe();
        let found = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(found) = lookup(&rx.borrow_and_update()) {
                    return Some(found);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        found.ok().flatten().ok_or_else(|| {
            BrokerError::QuorumUnavailable(format!("no coordinator for group '{group}' yet"))
        })
    }

    /// NOT_COORDINATOR (naming the coordinator) unless this broker
    /// coordinates `group`.
    async fn check_coordinator(&self, group: &str) -> Result<(), Status> {
        crate::groups::validate_group_id(group).map_err(|e| self.fail_group(e))?;
        let (id, address) = self.coordinator_of(group).await.map_err(|e| self.fail(e))?;
        if u64::from(id) == self.cluster.node_id() {
            return Ok(());
        }
        let mut s = Status::unavailable(format!(
            "broker {id} at {address} coordinates group '{group}'; send its calls there (FindCoordinator)"
        ));
        if let (Ok(r), Ok(i), Ok(a)) = (
            ErrorReason::NotCoordinator.as_str_name().parse(),
            id.to_string().parse(),
            address.parse(),
        ) {
            s.metadata_mut().insert(tidelog_proto::ERROR_REASON_KEY, r);
            s.metadata_mut().insert(tidelog_proto::LEADER_ID_KEY, i);
            s.metadata_mut()
                .insert(tidelog_proto::LEADER_ADDRESS_KEY, a);
        }
        Err(s)
    }
}

#[tonic::async_trait]
impl groups_server::Groups for Api {
    async fn find_coordinator(
        &self,
        request: Request<FindCoordinatorRequest>,
    ) -> Result<Response<FindCoordinatorResponse>, Status> {
        let group = request.into_inner().group_id;
        crate::groups::validate_group_id(&group).map_err(|e| self.fail_group(e))?;
        let (id, address) = self
            .coordinator_of(&group)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(Response::new(FindCoordinatorResponse {
            coordinator: Some(BrokerInfo { id, address }),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<GroupHeartbeatRequest>,
    ) -> Result<Response<GroupHeartbeatResponse>, Status> {
        let req = request.into_inner();
        self.check_coordinator(&req.group_id).await?;
        let session_timeout = match req.session_timeout_ms {
            0 => DEFAULT_SESSION_TIMEOUT,
            ms => Duration::from_millis(u64::from(ms)),
        };
        let reply = self
            .groups
            .heartbeat(Heartbeat {
                group_id: req.group_id,
                member_id: req.member_id,
                member_epoch: req.member_epoch,
                topics: req.topics,
                owned: flatten(req.owned),
                session_timeout,
                client_id: req.client_id,
            })
            .map_err(|e| self.fail_group(e))?;
        // Heartbeat often enough that two can be lost within the session.
        let interval = self.groups.heartbeat_interval().min(session_timeout / 3);
        Ok(Response::new(GroupHeartbeatResponse {
            member_id: reply.member_id,
            member_epoch: reply.member_epoch,
            heartbeat_interval_ms: interval.as_millis() as u32,
            assignment: group_by_topic(reply.assignment),
        }))
    }

    async fn commit_offsets(
        &self,
        request: Request<CommitOffsetsRequest>,
    ) -> Result<Response<CommitOffsetsResponse>, Status> {
        let req = request.into_inner();
        self.check_coordinator(&req.group_id).await?;
        let offsets = req
            .offsets
            .into_iter()
            .map(|o| ((o.topic, o.partition), o.offset, o.metadata))
            .collect();
        let groups = self.groups.clone();
        // The commit fsyncs a file: keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            groups.commit(&req.group_id, &req.member_id, req.member_epoch, offsets)
        })
        .await
        .map_err(|e| self.fail_group(GroupError::Storage(e.to_string())))?
        .map_err(|e| self.fail_group(e))?;
        Ok(Response::new(CommitOffsetsResponse {}))
    }

    async fn fetch_offsets(
        &self,
        request: Request<FetchOffsetsRequest>,
    ) -> Result<Response<FetchOffsetsResponse>, Status> {
        let req = request.into_inner();
        self.check_coordinator(&req.group_id).await?;
        let committed = self
            .groups
            .committed(&req.group_id)
            .map_err(|e| self.fail_group(e))?;
        let wanted = flatten(req.partitions);
        let entries: Vec<CommittedOffset> = if wanted.is_empty() {
            committed
                .into_iter()
                .map(|((topic, partition), c)| CommittedOffset {
                    topic,
                    partition,
                    offset: c.offset,
                    metadata: c.metadata,
                    commit_timestamp_ms: c.commit_ms,
                })
                .collect()
        } else {
            wanted
                .into_iter()
                .map(|tp| match committed.get(&tp) {
                    Some(c) => CommittedOffset {
                        topic: tp.0,
                        partition: tp.1,
                        offset: c.offset,
                        metadata: c.metadata.clone(),
                        commit_timestamp_ms: c.commit_ms,
                    },
                    None => CommittedOffset {
                        topic: tp.0,
                        partition: tp.1,
                        offset: -1,
                        metadata: String::new(),
                        commit_timestamp_ms: -1,
                    },
                })
                .collect()
        };
        Ok(Response::new(FetchOffsetsResponse { offsets: entries }))
    }

    async fn list_groups(
        &self,
        request: Request<ListGroupsRequest>,
    ) -> Result<Response<ListGroupsResponse>, Status> {
        let mut groups: BTreeMap<String, GroupListing> = self
            .groups
            .list()
            .into_iter()
            .map(|(group_id, state, members)| {
                (
                    group_id.clone(),
                    GroupListing {
                        group_id,
                        state: state.as_str().to_string(),
                        members: members as u32,
                    },
                )
            })
            .collect();
        if !request.into_inner().local_only {
            // Each coordinator knows its own groups: ask the others.
            let me = self.cluster.node_id() as u32;
            let others: Vec<String> = self
                .cluster
                .metadata()
                .brokers
                .values()
                .filter(|b| b.id != me)
                .map(|b| b.address.clone())
                .collect();
            let asks = others.into_iter().map(|address| async move {
                let call = async {
                    let mut c = tidelog_proto::v1::groups_client::GroupsClient::connect(format!(
                        "http://{address}"
                    ))
                    .await
                    .ok()?;
                    c.list_groups(ListGroupsRequest { local_only: true })
                        .await
                        .ok()
                        .map(|r| r.into_inner().groups)
                };
                let got = tokio::time::timeout(Duration::from_secs(5), call)
                    .await
                    .ok()
                    .flatten();
                if got.is_none() {
                    tracing::warn!(broker = %address, "could not list the groups a broker coordinates");
                }
                got.unwrap_or_default()
            });
            for listing in futures::future::join_all(asks).await.into_iter().flatten() {
                groups.entry(listing.group_id.clone()).or_insert(listing);
            }
        }
        Ok(Response::new(ListGroupsResponse {
            groups: groups.into_values().collect(),
        }))
    }

    async fn describe_group(
        &self,
        request: Request<DescribeGroupRequest>,
    ) -> Result<Response<DescribeGroupResponse>, Status> {
        let req = request.into_inner();
        self.check_coordinator(&req.group_id).await?;
        let d = self
            .groups
            .describe(&req.group_id)
            .await
            .map_err(|e| self.fail_group(e))?;
        Ok(Response::new(DescribeGroupResponse {
            group_id: req.group_id,
            state: d.state.as_str().to_string(),
            group_epoch: d.epoch,
            members: d
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id,
                    client_id: m.client_id,
                    member_epoch: m.epoch,
                    topics: m.topics,
                    assignment: group_by_topic(m.assignment),
                })
                .collect(),
            partitions: d
                .partitions
                .into_iter()
                .map(|p| PartitionLag {
                    topic: p.tp.0,
                    partition: p.tp.1,
                    committed_offset: p.committed,
                    log_end_offset: p.log_end,
                    lag: p.lag,
                    owner: p.owner,
                    metadata: p.metadata,
                })
                .collect(),
        }))
    }

    async fn delete_group(
        &self,
        request: Request<DeleteGroupRequest>,
    ) -> Result<Response<DeleteGroupResponse>, Status> {
        let req = request.into_inner();
        self.check_coordinator(&req.group_id).await?;
        let groups = self.groups.clone();
        tokio::task::spawn_blocking(move || groups.delete(&req.group_id))
            .await
            .map_err(|e| self.fail_group(GroupError::Storage(e.to_string())))?
            .map_err(|e| self.fail_group(e))?;
        Ok(Response::new(DeleteGroupResponse {}))
    }

    async fn reset_offsets(
        &self,
        request: Request<ResetOffsetsRequest>,
    ) -> Result<Response<ResetOffsetsResponse>, Status> {
        let req = request.into_inner();
        self.check_coordinator(&req.group_id).await?;
        let to =
            match req.spec.and_then(|s| s.spec) {
                Some(Spec::Earliest(_)) => ResetTo::Earliest,
                Some(Spec::Latest(_)) => ResetTo::Latest,
                // Clamped to [log start, log end] like every target.
                Some(Spec::Offset(o)) => ResetTo::Offset(o),
                Some(Spec::TimestampMs(t)) => ResetTo::Timestamp(t),
                Some(Spec::ShiftBy(d)) => ResetTo::ShiftBy(d),
                None => return Err(self.fail_group(GroupError::InvalidRequest(
                    "a reset needs a target: earliest, latest, offset, timestamp_ms or shift_by"
                        .into(),
                ))),
            };
        let plan = self
            .groups
            .reset_offsets(
                &req.group_id,
                &req.topic,
                &req.partitions,
                to,
                req.dry_run,
                req.force,
            )
            .await
            .map_err(|e| self.fail_group(e))?;
        Ok(Response::new(ResetOffsetsResponse {
            plan: plan
                .into_iter()
                .map(|e| ResetPlanEntry {
                    topic: e.tp.0,
                    partition: e.tp.1,
                    old_offset: e.old,
                    new_offset: e.new,
                })
                .collect(),
            applied: !req.dry_run,
        }))
    }
}
