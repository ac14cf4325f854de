//! The quorum's transport: openraft messages as JSON inside the internal
//! `Cluster` gRPC service, one lazily connected channel per peer.

use std::collections::HashMap;
use std::sync::Arc;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tidelog_proto::internal::cluster_client::ClusterClient;
use tidelog_proto::internal::RaftMessage;
use tonic::transport::{Channel, Endpoint};

use super::types::{MetaNode, TypeConfig};

/// Largest quorum message (a snapshot chunk is 3 MiB by default).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// A gRPC channel to `address` (lazy: connects on first use).
pub fn channel(address: &str) -> Option<Channel> {
    Endpoint::from_shared(format!("http://{address}"))
        .ok()
        .map(|e| e.connect_lazy())
}

/// Makes clients for peers, reusing one channel per address.
#[derive(Debug, Clone, Default)]
pub struct NetFactory {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl NetFactory {
    fn channel_for(&self, address: &str) -> Option<Channel> {
        let mut map = self.channels.lock();
        if let Some(c) = map.get(address) {
            return Some(c.clone());
        }
        let c = channel(address)?;
        map.insert(address.to_string(), c.clone());
        Some(c)
    }
}

impl RaftNetworkFactory<TypeConfig> for NetFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &MetaNode) -> PeerClient {
        PeerClient {
            target,
            address: node.cluster_address.clone(),
            client: self.channel_for(&node.cluster_address).map(|c| {
                ClusterClient::new(c)
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE)
            }),
        }
    }
}

/// One peer.
#[derive(Debug)]
pub struct PeerClient {
    target: u64,
    address: String,
    client: Option<ClusterClient<Channel>>,
}

#[derive(Clone, Copy)]
enum Kind {
    Append,
    Vote,
    Snapshot,
}

type RpcResult<T, E> = Result<T, RPCError<u64, MetaNode, RaftError<u64, E>>>;

impl PeerClient {
    async fn call<Req, Resp, E>(
        &mut self,
        kind: Kind,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let Some(client) = self.client.as_mut() else {
            return Err(RPCError::Unreachable(Unreachable::new(
                &std::io::Error::other(format!("bad cluster address '{}'", self.address)),
            )));
        };
        let data = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftMessage {
            target: self.target,
            data: data.into(),
        });
        request.set_timeout(option.hard_ttl());
        let answer = match kind {
            Kind::Append => client.append_entries(request).await,
            Kind::Vote => client.vote(request).await,
            Kind::Snapshot => client.install_snapshot(request).await,
        };
        let reply = match answer {
            Ok(r) => r.into_inner(),
            Err(s) if matches!(s.code(), tonic::Code::Unavailable) => {
                return Err(RPCError::Unreachable(Unreachable::new(&s)))
            }
            Err(s) => return Err(RPCError::Network(NetworkError::new(&s))),
        };
        let result: Result<Resp, RaftError<u64, E>> = serde_json::from_slice(&reply.data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, openraft::error::Infallible> {
        self.call(Kind::Append, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, openraft::error::Infallible> {
        self.call(Kind::Vote, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.call(Kind::Snapshot, &rpc, &option).await
    }
}
