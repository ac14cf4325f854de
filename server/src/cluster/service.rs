//! The server side of the internal `Cluster` service on `--cluster-listen`:
//! hands openraft messages to the local Raft and runs commands forwarded
//! to the controller.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tidelog_proto::internal::cluster_server::Cluster;
use tidelog_proto::internal::{ForwardRequest, ForwardResponse, RaftMessage};
use tonic::{Request, Response, Status};

use super::node::{write_local, ForwardOutcome};
use super::state::Command;
use super::types::Raft;

/// The service; one per broker.
#[derive(Clone)]
pub struct ClusterService {
    pub(super) raft: Raft,
    pub(super) node_id: u64,
}

fn decode<T: DeserializeOwned>(msg: &RaftMessage, node_id: u64) -> Result<T, Status> {
    if msg.target != node_id {
        // A misrouted address: answering would corrupt the quorum's view.
        return Err(Status::failed_precondition(format!(
            "this is node {node_id}, not node {}: check the --voters addresses",
            msg.target
        )));
    }
    serde_json::from_slice(&msg.data).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn encode<T: Serialize>(target: u64, value: &T) -> Result<Response<RaftMessage>, Status> {
    let data = serde_json::to_vec(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftMessage {
        target,
        data: data.into(),
    }))
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let req = decode(request.get_ref(), self.node_id)?;
        let result = self.raft.append_entries(req).await;
        encode(self.node_id, &result)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let req = decode(request.get_ref(), self.node_id)?;
        let result = self.raft.vote(req).await;
        encode(self.node_id, &result)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let req = decode(request.get_ref(), self.node_id)?;
        let result = self.raft.install_snapshot(req).await;
        encode(self.node_id, &result)
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardResponse>, Status> {
        let command: Command = serde_json::from_slice(&request.get_ref().command)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let outcome: ForwardOutcome = write_local(&self.raft, command).await;
        let result = serde_json::to_vec(&outcome).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ForwardResponse {
            result: result.into(),
        }))
    }
}
