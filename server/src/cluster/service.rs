//! The server side of the internal `Cluster` service on `--cluster-listen`:
//! hands openraft messages to the local Raft and runs commands forwarded
//! to the controller.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tidelog_proto::internal::cluster_server::Cluster;
use tidelog_proto::internal::{ForwardRequest, ForwardResponse, RaftMessage};
use tonic::{Request, Response, Status};

use std::sync::Arc;

use super::controller::ControllerRequest;
use super::node::{ClusterNode, ForwardOutcome};

/// The service; one per broker.
#[derive(Clone)]
pub struct ClusterService {
    pub(super) node: Arc<ClusterNode>,
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
        let id = self.node.node_id();
        let req = decode(request.get_ref(), id)?;
        let result = self.node.raft().append_entries(req).await;
        encode(id, &result)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let id = self.node.node_id();
        let req = decode(request.get_ref(), id)?;
        let result = self.node.raft().vote(req).await;
        encode(id, &result)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let id = self.node.node_id();
        let req = decode(request.get_ref(), id)?;
        let result = self.node.raft().install_snapshot(req).await;
        encode(id, &result)
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardResponse>, Status> {
        let req: ControllerRequest = serde_json::from_slice(&request.get_ref().command)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let outcome: ForwardOutcome = self.node.execute(req).await;
        let result = serde_json::to_vec(&outcome).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ForwardResponse {
            result: result.into(),
        }))
    }
}
