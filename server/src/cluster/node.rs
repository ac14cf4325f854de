//! This broker's membership in the metadata quorum: starts openraft on the
//! local log, serves the cluster listener, forms the quorum from the voter
//! list at first start, registers the broker, and writes metadata
//! commands — locally when this broker is the controller, else forwarded
//! to it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{Config, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tidelog_proto::internal::cluster_client::ClusterClient;
use tidelog_proto::internal::cluster_server::ClusterServer;
use tidelog_proto::internal::ForwardRequest;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::controller::{decide, ControllerRequest};
use super::log_store::LogStore;
use super::network::{channel, NetFactory, MAX_MESSAGE};
use super::service::ClusterService;
use super::state::{Command, CommandResult, MetadataState, Refusal};
use super::state_machine::StateMachine;
use super::types::{MetaNode, Raft};

/// How long a metadata write may wait for the quorum.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What this broker needs to join the quorum.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// This broker's id (`--node-id`).
    pub node_id: u64,
    /// Address to listen on for quorum traffic; `None` for a one-node
    /// cluster that talks to nobody.
    pub cluster_listen: Option<String>,
    /// The voters: node id → cluster address (`--voters`). Empty: this
    /// broker alone.
    pub voters: BTreeMap<u64, String>,
    /// Where the quorum's log, vote and snapshots live.
    pub meta_dir: PathBuf,
    /// The address clients dial for this broker.
    pub client_address: String,
    /// A broker silent for longer than this is fenced by the controller.
    pub session_timeout: Duration,
}

/// Why the cluster layer failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The metadata files could not be read or written.
    #[error("metadata store {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The settings cannot form a cluster.
    #[error("{0}")]
    Config(String),
    /// openraft refused to start.
    #[error("metadata quorum failed: {0}")]
    Raft(String),
    /// No majority or no controller yet: metadata cannot change (retriable).
    #[error("the metadata quorum has no controller reachable ({0}); retry shortly")]
    QuorumUnavailable(String),
}

/// The answer to a write, also sent back over `Forward`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardOutcome {
    /// Committed and applied.
    Applied(CommandResult),
    /// This node does not lead the quorum.
    NotLeader {
        /// The leader's cluster address, when known.
        address: Option<String>,
    },
    /// The quorum could not commit it in time.
    Unavailable(String),
}

/// Runs `command` through the local Raft, which must lead the quorum.
async fn write_local(raft: &Raft, command: Command) -> ForwardOutcome {
    match tokio::time::timeout(WRITE_TIMEOUT, raft.client_write(command)).await {
        Ok(Ok(resp)) => ForwardOutcome::Applied(resp.data),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            ForwardOutcome::NotLeader {
                address: f.leader_node.map(|n| n.cluster_address),
            }
        }
        Ok(Err(e)) => ForwardOutcome::Unavailable(e.to_string()),
        Err(_) => ForwardOutcome::Unavailable(format!(
            "no majority committed the change within {WRITE_TIMEOUT:?}"
        )),
    }
}

/// This broker's view of the quorum.
#[derive(Debug, Clone)]
pub struct QuorumView {
    /// The controller (quorum leader), if one is known.
    pub leader: Option<u64>,
    /// Voter ids.
    pub voters: BTreeSet<u64>,
    /// Learner ids.
    pub learners: BTreeSet<u64>,
    /// Highest applied log index.
    pub applied: u64,
    /// Highest log index present locally.
    pub last_log: u64,
    /// This broker's role.
    pub state: ServerState,
}

/// The quorum membership of this broker.
pub struct ClusterNode {
    raft: Raft,
    sm: StateMachine,
    settings: ClusterSettings,
    registered: watch::Sender<bool>,
    /// Set when the cluster refused this broker for good.
    failed: watch::Sender<Option<String>>,
    deciding: tokio::sync::Mutex<()>,
    /// On the controller: when each broker was last heard from.
    last_seen: parking_lot::Mutex<BTreeMap<u32, tokio::time::Instant>>,
    metrics: Option<crate::metrics::ClusterMetrics>,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ClusterNode {
    /// Starts the quorum member: opens the local metadata store, listens,
    /// forms the quorum if this is its first start, and registers the
    /// broker in the background.
    pub async fn start(
        mut settings: ClusterSettings,
        metrics: Option<crate::metrics::ClusterMetrics>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, ClusterError> {
        let io = |source| ClusterError::Io {
            path: settings.meta_dir.clone(),
            source,
        };
        if settings.voters.is_empty() {
            let own = settings.cluster_listen.clone().unwrap_or_default();
            settings.voters.insert(settings.node_id, own);
        }
        // A broker whose id is not among the voters joins the running
        // cluster as a learner.
        let joining = !settings.voters.contains_key(&settings.node_id);
        if (joining || settings.voters.len() > 1) && settings.cluster_listen.is_none() {
            return Err(ClusterError::Config(
                "--voters names other brokers but --cluster-listen is not set".into(),
            ));
        }
        if let (Some(own), Some(listen)) = (
            settings.voters.get(&settings.node_id),
            settings.cluster_listen.as_deref(),
        ) {
            if settings.voters.len() > 1 && !same_listener(listen, own) {
                return Err(ClusterError::Config(format!(
                    "--voters lists node {} at {own}, but this broker's --cluster-listen is {listen}: two brokers with node id {}? Each broker needs its own id",
                    settings.node_id, settings.node_id
                )));
            }
        }
        let log = LogStore::open(&settings.meta_dir).map_err(io)?;
        let sm = StateMachine::open(&settings.meta_dir).map_err(io)?;
        let single = settings.voters.len() == 1 && !joining;
        let config = Config {
            cluster_name: "tidelog-metadata".into(),
            // A lone voter has nobody to wait for.
            heartbeat_interval: if single { 50 } else { 150 },
            election_timeout_min: if single { 100 } else { 600 },
            election_timeout_max: if single { 200 } else { 1200 },
            install_snapshot_timeout: 5_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(1_000),
            max_in_snapshot_log_to_keep: 500,
            purge_batch_size: 64,
            ..Default::default()
        };
        let config = Arc::new(
            config
                .validate()
                .map_err(|e| ClusterError::Raft(e.to_string()))?,
        );
        let raft = Raft::new(
            settings.node_id,
            config,
            NetFactory::default(),
            log,
            sm.clone(),
        )
        .await
        .map_err(|e| ClusterError::Raft(e.to_string()))?;

        // Bind before anything else can fail later, so a bad address is
        // the error reported.
        let listener = match &settings.cluster_listen {
            Some(listen) => Some(tokio::net::TcpListener::bind(listen).await.map_err(|e| {
                ClusterError::Config(format!("cannot listen on --cluster-listen {listen}: {e}"))
            })?),
            None => None,
        };

        let members: BTreeMap<u64, MetaNode> = settings
            .voters
            .iter()
            .map(|(id, addr)| {
                (
                    *id,
                    MetaNode {
                        cluster_address: addr.clone(),
                    },
                )
            })
            .collect();
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        if initialized {
            let stored: BTreeMap<u64, String> = {
                let m = raft.metrics().borrow().membership_config.clone();
                let membership = m.membership();
                membership
                    .voter_ids()
                    .map(|id| {
                        let addr = membership
                            .get_node(&id)
                            .map(|n| n.cluster_address.clone())
                            .unwrap_or_default();
                        (id, addr)
                    })
                    .collect()
            };
            let given: BTreeMap<u64, String> = members
                .iter()
                .map(|(id, n)| (*id, n.cluster_address.clone()))
                .collect();
            let lone_renamed = stored.len() == 1 && stored.keys().eq(given.keys());
            if lone_renamed && stored != given {
                tracing::warn!(
                    ?stored,
                    ?given,
                    "this one-broker cluster's own cluster address changed"
                );
            } else if stored != given {
                let show = |m: &BTreeMap<u64, String>| {
                    m.iter()
                        .map(|(id, a)| format!("{id}={a}"))
                        .collect::<Vec<_>>()
                        .join(",")
                };
                return Err(ClusterError::Config(format!(
                    "--voters {} disagrees with the voters this data directory's cluster was formed with ({}); start it with that list, or use another --data-dir",
                    show(&given),
                    show(&stored)
                )));
            }
        } else if !joining {
            match raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(ClusterError::Raft(e.to_string())),
            }
        }

        let (registered, _) = watch::channel(false);
        let node = Arc::new(ClusterNode {
            raft,
            sm,
            settings,
            registered,
            failed: watch::channel(None).0,
            deciding: tokio::sync::Mutex::new(()),
            last_seen: parking_lot::Mutex::new(BTreeMap::new()),
            metrics,
        });
        if let Some(listener) = listener {
            let service = ClusterServer::new(ClusterService {
                node: Arc::clone(&node),
            })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                let served = tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "cluster listener failed");
                }
            });
        }
        let n = Arc::clone(&node);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if joining && !n.join(&stop).await {
                return;
            }
            Arc::clone(&n).register(stop.clone()).await;
            n.heartbeat(stop).await;
        });
        let n = Arc::clone(&node);
        let stop = shutdown.clone();
        tokio::spawn(async move { n.watch_liveness(stop).await });
        let n = Arc::clone(&node);
        tokio::spawn(async move { n.export_metrics(shutdown).await });
        Ok(node)
    }

    /// Asks the controller to add this broker as a learner, until it does.
    async fn join(&self, shutdown: &CancellationToken) -> bool {
        let request = ControllerRequest::AddLearner {
            id: self.settings.node_id,
            cluster_address: self.settings.cluster_listen.clone().unwrap_or_default(),
        };
        loop {
            match self.request(request.clone()).await {
                Ok(_) => {
                    tracing::info!(
                        node_id = self.settings.node_id,
                        "joined the cluster as a learner"
                    );
                    return true;
                }
                Err(e) => tracing::warn!(error = %e, "joining the cluster; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.cancelled() => return false,
            }
        }
    }

    /// Names the cluster (the first name applied wins) and records this
    /// broker, retrying until the quorum takes it.
    async fn register(self: Arc<Self>, shutdown: CancellationToken) {
        let id = self.settings.node_id as u32;
        loop {
            let mut done = true;
            if self.sm.current().cluster_id.is_empty() {
                let cluster_id = format!("{:032x}", rand::random::<u128>());
                done &= self
                    .write(Command::InitCluster { cluster_id })
                    .await
                    .is_ok();
            }
            let before = self.sm.current().brokers.get(&id).map(|b| b.epoch);
            if done {
                let registered = self
                    .write(Command::RegisterBroker {
                        id,
                        address: self.settings.client_address.clone(),
                        cluster_address: self.settings.cluster_listen.clone().unwrap_or_default(),
                    })
                    .await;
                match registered {
                    Ok(CommandResult::Ok) => {}
                    Ok(CommandResult::Refused(why)) => {
                        self.failed.send_replace(Some(why.to_string()));
                        return;
                    }
                    Err(_) => done = false,
                }
            }
            if done {
                // Caught up far enough to see itself: the local metadata
                // is then at least as new as the registration.
                let mut rx = self.sm.subscribe();
                let _ = tokio::time::timeout(Duration::from_secs(30), async {
                    while rx.borrow_and_update().brokers.get(&id).is_none_or(|b| {
                        b.address != self.settings.client_address
                            || before.is_some_and(|e| b.epoch <= e)
                    }) {
                        if rx.changed().await.is_err() {
                            return;
                        }
                    }
                })
                .await;
                self.registered.send_replace(true);
                tracing::info!(node_id = id, "registered with the cluster");
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Heartbeats the controller every third of the session timeout; when
    /// it says this broker was fenced (or forgot it), registers again.
    async fn heartbeat(&self, shutdown: CancellationToken) {
        let id = self.settings.node_id as u32;
        let every = (self.settings.session_timeout / 3).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => return,
            }
            match self.request(ControllerRequest::Heartbeat { id }).await {
                Ok(CommandResult::Ok) => {}
                Ok(CommandResult::Refused(why)) => {
                    tracing::warn!(node_id = id, %why, "the controller fenced this broker; registering again");
                    let _ = self
                        .write(Command::RegisterBroker {
                            id,
                            address: self.settings.client_address.clone(),
                            cluster_address: self
                                .settings
                                .cluster_listen
                                .clone()
                                .unwrap_or_default(),
                        })
                        .await;
                }
                Err(e) => tracing::debug!(error = %e, "heartbeat not delivered"),
            }
        }
    }

    /// On the controller: fences brokers silent for longer than the
    /// session timeout (their epoch is bumped; they get no new partitions
    /// until they register again).
    async fn watch_liveness(&self, shutdown: CancellationToken) {
        let mut was_leader = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = shutdown.cancelled() => return,
            }
            let leader = self.raft.metrics().borrow().current_leader == Some(self.settings.node_id);
            if !leader {
                was_leader = false;
                continue;
            }
            let now = tokio::time::Instant::now();
            let meta = self.sm.current();
            if !was_leader {
                // A new controller gives everyone a full session.
                let mut seen = self.last_seen.lock();
                seen.clear();
                for id in meta.brokers.keys() {
                    seen.insert(*id, now);
                }
                was_leader = true;
                continue;
            }
            let silent: Vec<u32> = {
                let mut seen = self.last_seen.lock();
                meta.brokers
                    .values()
                    .filter(|b| !b.fenced)
                    .filter(|b| {
                        let last = *seen.entry(b.id).or_insert(now);
                        now.duration_since(last) > self.settings.session_timeout
                    })
                    .map(|b| b.id)
                    .collect()
            };
            for id in silent {
                tracing::warn!(node_id = id, timeout = ?self.settings.session_timeout, "broker missed its session timeout; fencing it");
                let _ = write_local(&self.raft, Command::FenceBroker { id }).await;
            }
        }
    }

    /// Keeps the cluster metrics current.
    async fn export_metrics(&self, shutdown: CancellationToken) {
        let Some(m) = self.metrics.clone() else {
            return;
        };
        let mut raft = self.raft.metrics();
        let mut meta = self.sm.subscribe();
        let mut leader = None;
        loop {
            let r = raft.borrow_and_update().clone();
            if r.current_leader != leader {
                if leader.is_some() || r.current_leader.is_some() {
                    m.leader_changes.inc();
                }
                leader = r.current_leader;
            }
            m.is_controller
                .set(i64::from(r.current_leader == Some(self.settings.node_id)));
            m.last_log_index.set(r.last_log_index.unwrap_or(0) as i64);
            m.applied_index
                .set(r.last_applied.map_or(0, |l| l.index) as i64);
            let state = meta.borrow_and_update().clone();
            let fenced = state.brokers.values().filter(|b| b.fenced).count();
            m.brokers
                .with_label_values(&["alive"])
                .set((state.brokers.len() - fenced) as i64);
            m.brokers.with_label_values(&["fenced"]).set(fenced as i64);
            for (id, (parts, _)) in state.load() {
                m.broker_partitions
                    .with_label_values(&[&id.to_string()])
                    .set(i64::from(parts));
            }
            tokio::select! {
                _ = raft.changed() => {}
                _ = meta.changed() => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// Waits until this broker is registered (it has caught up with the
    /// metadata log far enough to see itself).
    pub async fn wait_registered(&self) {
        let mut rx = self.registered.subscribe();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits until the cluster refuses this broker for good (its node id
    /// is in use); the reason.
    pub async fn wait_refused(&self) -> String {
        let mut rx = self.failed.subscribe();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// True once registered.
    pub fn is_registered(&self) -> bool {
        *self.registered.borrow()
    }

    /// Writes a metadata command through the controller.
    pub async fn write(&self, command: Command) -> Result<CommandResult, ClusterError> {
        self.request(ControllerRequest::Apply(command)).await
    }

    /// Asks the controller for a change: decided here when this broker
    /// leads the quorum, else forwarded to the controller; retried while a
    /// controller is being elected.
    pub async fn request(&self, request: ControllerRequest) -> Result<CommandResult, ClusterError> {
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        let mut last = String::from("no controller elected yet");
        while tokio::time::Instant::now() < deadline {
            let outcome = match self.execute(request.clone()).await {
                ForwardOutcome::NotLeader {
                    address: Some(address),
                } => forward(&address, &request).await,
                // Not (yet) a member that knows the controller: ask the
                // voters, who do.
                ForwardOutcome::NotLeader { address: None } => self.ask_voters(&request).await,
                other => other,
            };
            match outcome {
                ForwardOutcome::Applied(r) => return Ok(r),
                ForwardOutcome::NotLeader { .. } => last = "no controller elected yet".into(),
                ForwardOutcome::Unavailable(why) => last = why,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ClusterError::QuorumUnavailable(last))
    }

    /// Sends `request` to the voters in turn, following one redirect to
    /// the controller they name.
    async fn ask_voters(&self, request: &ControllerRequest) -> ForwardOutcome {
        let mut last = ForwardOutcome::NotLeader { address: None };
        for (id, address) in &self.settings.voters {
            if *id == self.settings.node_id || address.is_empty() {
                continue;
            }
            last = match forward(address, request).await {
                ForwardOutcome::NotLeader {
                    address: Some(leader),
                } => forward(&leader, request).await,
                other => other,
            };
            if matches!(last, ForwardOutcome::Applied(_)) {
                return last;
            }
        }
        last
    }

    /// Decides and writes `request` here; `NotLeader` unless this broker
    /// leads the quorum.
    pub(super) async fn execute(&self, request: ControllerRequest) -> ForwardOutcome {
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader != Some(self.settings.node_id) {
            let address = m.current_leader.and_then(|l| {
                m.membership_config
                    .membership()
                    .get_node(&l)
                    .map(|n| n.cluster_address.clone())
            });
            return ForwardOutcome::NotLeader { address };
        }
        if let ControllerRequest::Heartbeat { id } = &request {
            self.last_seen
                .lock()
                .insert(*id, tokio::time::Instant::now());
            let known = self.sm.current().brokers.get(id).map(|b| b.fenced);
            return ForwardOutcome::Applied(match known {
                Some(false) => CommandResult::Ok,
                _ => CommandResult::Refused(Refusal::UnknownBroker(*id)),
            });
        }
        // Serialised so each decision sees the one before it applied.
        let _one_at_a_time = self.deciding.lock().await;
        if let ControllerRequest::Apply(Command::RegisterBroker { id, address, .. }) = &request {
            let current = self.sm.current().brokers.get(id).cloned();
            let recently = self
                .last_seen
                .lock()
                .get(id)
                .is_some_and(|t| t.elapsed() < self.settings.session_timeout);
            if let Some(b) = current {
                if !b.fenced && b.address != *address && recently {
                    return ForwardOutcome::Applied(CommandResult::Refused(Refusal::NodeIdInUse {
                        id: *id,
                        address: b.address,
                    }));
                }
            }
        }
        if let ControllerRequest::AddLearner {
            id,
            cluster_address,
        } = &request
        {
            return self.add_learner(*id, cluster_address.clone()).await;
        }
        let command = match decide(
            &self.sm.current(),
            request,
            chrono::Utc::now().timestamp_millis(),
        ) {
            Ok(c) => c,
            Err(refused) => return ForwardOutcome::Applied(refused),
        };
        write_local(&self.raft, command).await
    }

    /// Adds `id` to the quorum as a learner (on the controller).
    async fn add_learner(&self, id: u64, cluster_address: String) -> ForwardOutcome {
        let known = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .is_some();
        if known {
            return ForwardOutcome::Applied(CommandResult::Ok);
        }
        let node = MetaNode { cluster_address };
        match tokio::time::timeout(WRITE_TIMEOUT, self.raft.add_learner(id, node, false)).await {
            Ok(Ok(_)) => {
                tracing::info!(node_id = id, "added a broker to the quorum as a learner");
                ForwardOutcome::Applied(CommandResult::Ok)
            }
            Ok(Err(e)) => ForwardOutcome::Unavailable(e.to_string()),
            Err(_) => ForwardOutcome::Unavailable("adding the learner timed out".into()),
        }
    }

    /// The metadata as applied here.
    pub fn metadata(&self) -> Arc<MetadataState> {
        self.sm.current()
    }

    /// Every change of the metadata applied here.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataState>> {
        self.sm.subscribe()
    }

    /// The local Raft (for the cluster service).
    pub(super) fn raft(&self) -> &Raft {
        &self.raft
    }

    /// This broker's id.
    pub fn node_id(&self) -> u64 {
        self.settings.node_id
    }

    /// The quorum as this broker sees it.
    pub fn view(&self) -> QuorumView {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let learners: BTreeSet<u64> = membership.learner_ids().collect();
        QuorumView {
            leader: m.current_leader,
            voters,
            learners,
            applied: m.last_applied.map_or(0, |l| l.index),
            last_log: m.last_log_index.unwrap_or(0),
            state: m.state,
        }
    }

    /// Stops the quorum member.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "metadata quorum did not stop cleanly");
        }
    }
}

impl crate::groups::PartitionDirectory for ClusterNode {
    fn partition_count(&self, topic: &str) -> Option<u32> {
        self.metadata()
            .topics
            .get(topic)
            .map(|t| t.partitions.len() as u32)
    }

    fn remote_bounds<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
    ) -> futures::future::BoxFuture<'a, Option<(i64, i64)>> {
        Box::pin(async move {
            use tidelog_proto::v1::offset_spec::Spec;
            let start = self
                .list_offset(topic, partition, Spec::Earliest(true))
                .await?;
            let end = self
                .list_offset(topic, partition, Spec::Latest(true))
                .await?;
            Some((start, end))
        })
    }

    fn remote_offset_for_time<'a>(
        &'a self,
        topic: &'a str,
        partition: u32,
        ts: i64,
    ) -> futures::future::BoxFuture<'a, Option<i64>> {
        Box::pin(async move {
            use tidelog_proto::v1::offset_spec::Spec;
            self.list_offset(topic, partition, Spec::TimestampMs(ts))
                .await
        })
    }
}

impl ClusterNode {
    /// `ListOffsets` asked of the broker that leads the partition.
    async fn list_offset(
        &self,
        topic: &str,
        partition: u32,
        spec: tidelog_proto::v1::offset_spec::Spec,
    ) -> Option<i64> {
        use tidelog_proto::v1::consumer_client::ConsumerClient;
        use tidelog_proto::v1::{ListOffsetsRequest, OffsetSpec};
        let meta = self.metadata();
        let leader = meta
            .topics
            .get(topic)?
            .partitions
            .get(partition as usize)?
            .leader;
        let address = meta.brokers.get(&leader)?.address.clone();
        let call = async {
            let mut c = ConsumerClient::connect(format!("http://{address}"))
                .await
                .ok()?;
            c.list_offsets(ListOffsetsRequest {
                topic: topic.to_string(),
                partition,
                spec: Some(OffsetSpec { spec: Some(spec) }),
            })
            .await
            .ok()
            .map(|r| r.into_inner().offset)
        };
        tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .ok()
            .flatten()
    }
}

/// Whether a listener on `listen` is reachable as `advertised` (the same
/// address, or a wildcard listen on the same port).
fn same_listener(listen: &str, advertised: &str) -> bool {
    if listen == advertised {
        return true;
    }
    let port = |a: &str| {
        a.rsplit_once(':')
            .map(|(h, p)| (h.to_string(), p.to_string()))
    };
    match (port(listen), port(advertised)) {
        (Some((h, p)), Some((_, q))) => p == q && matches!(h.as_str(), "0.0.0.0" | "[::]" | "::"),
        _ => false,
    }
}

/// Sends `request` to the controller at `address` (its cluster listener).
async fn forward(address: &str, request: &ControllerRequest) -> ForwardOutcome {
    let Some(ch) = channel(address) else {
        return ForwardOutcome::Unavailable(format!("bad controller address '{address}'"));
    };
    let Ok(bytes) = serde_json::to_vec(request) else {
        return ForwardOutcome::Unavailable("cannot encode the request".into());
    };
    let mut request = tonic::Request::new(ForwardRequest {
        command: bytes.into(),
    });
    request.set_timeout(WRITE_TIMEOUT);
    match ClusterClient::new(ch).forward(request).await {
        Ok(r) => serde_json::from_slice(&r.into_inner().result)
            .unwrap_or_else(|e| ForwardOutcome::Unavailable(e.to_string())),
        Err(s) => ForwardOutcome::Unavailable(format!("controller at {address}: {}", s.message())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port")
    }

    async fn wait_for(what: &str, f: impl Fn() -> bool) {
        for _ in 0..200 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_nodes_form_one_quorum_and_any_of_them_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let voters: BTreeMap<u64, String> = (1..=3)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect();
        let stop = CancellationToken::new();
        let mut nodes = vec![];
        for (&id, addr) in &voters {
            let settings = ClusterSettings {
                node_id: id,
                cluster_listen: Some(addr.clone()),
                voters: voters.clone(),
                meta_dir: dir.path().join(id.to_string()),
                client_address: format!("client-{id}"),
                session_timeout: Duration::from_secs(6),
            };
            nodes.push(
                ClusterNode::start(settings, None, stop.clone())
                    .await
                    .expect("start"),
            );
        }
        for n in &nodes {
            tokio::time::timeout(Duration::from_secs(20), n.wait_registered())
                .await
                .expect("registered");
        }
        wait_for("every broker to see all three", || {
            nodes.iter().all(|n| n.metadata().brokers.len() == 3)
        })
        .await;
        let leader = nodes[0].view().leader.expect("a controller");
        let follower = nodes
            .iter()
            .find(|n| n.node_id() != leader)
            .expect("a follower");
        let placement = follower.metadata().place(6, 1).expect("placement");
        let r = follower
            .write(Command::CreateTopic {
                name: "t".into(),
                config: BTreeMap::new(),
                created_ms: 1,
                placement,
            })
            .await
            .expect("forwarded to the controller");
        assert_eq!(r, CommandResult::Ok);
        wait_for("every broker to apply it", || {
            nodes.iter().all(|n| n.metadata().topics.contains_key("t"))
        })
        .await;
        let ids: BTreeSet<String> = nodes
            .iter()
            .map(|n| n.metadata().cluster_id.clone())
            .collect();
        assert_eq!(ids.len(), 1, "one cluster id: {ids:?}");
        stop.cancel();
        for n in &nodes {
            n.shutdown().await;
        }
    }
}
