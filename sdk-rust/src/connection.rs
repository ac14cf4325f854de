//! The connection to a cluster and what the client knows about it. Producers,
//! consumers and admins reach brokers only through here, so routing lives in
//! this one module:
//!
//! * the client bootstraps from the first reachable address of a list;
//! * `Metadata` answers fill a cache of brokers (id → address) and of each
//!   topic's partition leaders; `FindCoordinator` answers one of group
//!   coordinators;
//! * there is one HTTP/2 channel per broker address, opened on first use
//!   and kept;
//! * partition calls (produce, fetch, subscribe, list offsets) go to the
//!   partition's leader, a group's calls to its coordinator, everything else
//!   to the broker the client talks to now (any broker answers or forwards
//!   them);
//! * a `NOT_LEADER` / `NOT_COORDINATOR` answer moves the route to the broker
//!   its status metadata names, or marks it stale so the next call asks for
//!   metadata again; a broken connection also drops that broker's channel,
//!   and the next metadata request goes to another known broker or a
//!   bootstrap address.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tidelog_proto::limits::MAX_MESSAGE_BYTES;
use tidelog_proto::v1::{
    admin_client::AdminClient, consumer_client::ConsumerClient, groups_client::GroupsClient,
    producer_client::ProducerClient, ErrorReason, FindCoordinatorRequest, ListOffsetsRequest,
    MetadataRequest, MetadataResponse,
};
use tidelog_proto::{ERROR_REASON_KEY, LEADER_ADDRESS_KEY, LEADER_ID_KEY};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::error::{Error, Result};
use crate::types::OffsetSpec;

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of one or more brokers (their gRPC listeners), separated
    /// by commas: `"10.0.0.1:7070,10.0.0.2:7070"`. The client connects to
    /// the first that answers and learns the rest of the cluster from it;
    /// the others are tried again when no known broker answers.
    pub bootstrap: String,
    /// Time allowed to establish a connection to one broker.
    pub connect_timeout: Duration,
    /// Time allowed for one request (excluding streaming subscriptions).
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// Defaults: 5 s to connect, 30 s per request. `bootstrap` is one
    /// `host:port` or a comma-separated list of them.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        ClientConfig {
            bootstrap: bootstrap.into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// Defaults, bootstrapping from a list of `host:port` addresses.
    pub fn with_brokers<I, S>(brokers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let list: Vec<String> = brokers
            .into_iter()
            .map(|b| b.as_ref().trim().to_string())
            .collect();
        Self::new(list.join(","))
    }

    /// The bootstrap addresses, in order, without blanks and repeats.
    pub fn bootstrap_addresses(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for a in self.bootstrap.split(',').map(str::trim) {
            if !a.is_empty() && !out.iter().any(|o| o == a) {
                out.push(a.to_string());
            }
        }
        out
    }
}

/// A stub on `channel` that accepts and sends messages up to the limit the
/// broker uses, so a large fetch or produce is never cut short.
macro_rules! sized {
    ($stub:ident, $channel:expr) => {
        $stub::new($channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    };
}

/// An admin stub on a channel.
pub(crate) fn admin(channel: Channel) -> AdminClient<Channel> {
    sized!(AdminClient, channel)
}

/// A consumer stub on a channel.
pub(crate) fn consumer(channel: Channel) -> ConsumerClient<Channel> {
    sized!(ConsumerClient, channel)
}

/// A producer stub on a channel.
pub(crate) fn producer(channel: Channel) -> ProducerClient<Channel> {
    sized!(ProducerClient, channel)
}

/// A groups stub on a channel.
pub(crate) fn groups(channel: Channel) -> GroupsClient<Channel> {
    sized!(GroupsClient, channel)
}

/// Whether a call may be sent again after its connection broke mid-call,
/// when it is unknown whether the broker acted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resend {
    /// Reads, and writes whose repetition changes nothing (committing the
    /// same offsets).
    Safe,
    /// Writes that must not happen twice (creating a topic, shifting
    /// offsets): sent again only when they surely never arrived.
    IfNotSent,
}

/// Where a partition's requests go: the leader's address and channel.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) address: String,
    pub(crate) channel: Channel,
}

/// Attempts of one routed call: enough to follow a moved leader or
/// coordinator once or twice, few enough to fail fast when the cluster
/// itself is in trouble (callers that retry longer have their own loops).
const ROUTED_ATTEMPTS: u32 = 4;

/// Clusters and connections. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    bootstrap: Vec<String>,
    /// One channel per broker address, opened on first use.
    channels: Mutex<HashMap<String, Channel>>,
    cluster: Mutex<Cluster>,
    /// One metadata request at a time: after a failover every partition
    /// notices at once, and one answer serves them all.
    refreshing: tokio::sync::Mutex<()>,
}

/// What the client knows about the cluster.
#[derive(Debug, Default)]
struct Cluster {
    /// The broker that receives calls not bound to a partition or group.
    current: String,
    /// Live brokers by id, from the last metadata answer (and leader hints).
    brokers: HashMap<u32, String>,
    topics: HashMap<String, TopicRoutes>,
    /// Coordinator address by group id.
    coordinators: HashMap<String, String>,
    /// The last broker whose connection broke: asked last for metadata and
    /// admin calls. A proxy or load balancer in front of a dead broker
    /// accepts connections and then drops every call, so a connection
    /// that opens proves nothing.
    avoid: Option<String>,
}

#[derive(Debug, Clone)]
struct TopicRoutes {
    /// Leader broker id per partition.
    leaders: Vec<u32>,
    /// A call failed in a way that says the leaders may have moved: ask
    /// for metadata before routing the next call. The partition count
    /// stays valid.
    stale: bool,
}

/// Where a partition's leader is, as far as the cache knows.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    Leader(String),
    /// Not known, or known to be stale: ask for metadata.
    Refresh,
    /// The metadata has no such partition, or names a leader it lists no
    /// address for.
    Unroutable,
}

/// The broker named in a `NOT_LEADER` / `NOT_COORDINATOR` status.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hint {
    id: Option<u32>,
    address: String,
}

/// What a failed call says about the route it took.
#[derive(Debug, PartialEq, Eq)]
enum Fault {
    /// The broker did not handle it and points elsewhere (or is going
    /// away): nothing happened, the call can go to the right broker.
    Misrouted(Option<Hint>),
    /// The connection broke or the call timed out: the broker may or may
    /// not have acted on it.
    Broken,
    /// A broker answer that has nothing to do with routing.
    None,
}

fn fault_of(status: &Status) -> Fault {
    let reason = status
        .metadata()
        .get(ERROR_REASON_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(ErrorReason::from_str_name);
    match reason {
        Some(ErrorReason::NotLeader | ErrorReason::NotCoordinator) => {
            let text = |key: &str| {
                status
                    .metadata()
                    .get(key)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
            };
            let hint = text(LEADER_ADDRESS_KEY).map(|address| Hint {
                id: text(LEADER_ID_KEY).and_then(|id| id.parse().ok()),
                address: address.to_string(),
            });
            Fault::Misrouted(hint)
        }
        // Its partitions and groups move to other brokers.
        Some(ErrorReason::ShuttingDown) => Fault::Misrouted(None),
        Some(_) => Fault::None,
        // Every broker error carries a reason; a status without one comes
        // from the transport (refused, reset, cut off).
        None if matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled
        ) =>
        {
            Fault::Broken
        }
        None => Fault::None,
    }
}

impl Cluster {
    /// Takes in a metadata answer: it lists every live broker and the
    /// leaders of the topics asked for.
    fn apply_metadata(&mut self, resp: MetadataResponse) {
        if !resp.brokers.is_empty() {
            self.brokers = resp
                .brokers
                .into_iter()
                .map(|b| (b.id, b.address))
                .collect();
        }
        for t in resp.topics {
            self.topics.insert(
                t.name,
                TopicRoutes {
                    leaders: t.leaders,
                    stale: false,
                },
            );
        }
    }

    /// Follows a `NOT_LEADER` status: the partition's leader is the broker
    /// it names. Without an id the address cannot be tied to the leader
    /// table, so the topic is asked about again instead.
    fn apply_leader_hint(&mut self, topic: &str, partition: u32, hint: Hint) {
        let Some(id) = hint.id else {
            self.forget_leaders(topic);
            return;
        };
        self.brokers.insert(id, hint.address);
        match self
            .topics
            .get_mut(topic)
            .and_then(|t| t.leaders.get_mut(partition as usize))
        {
            Some(leader) => *leader = id,
            None => self.forget_leaders(topic),
        }
    }

    fn forget_leaders(&mut self, topic: &str) {
        if let Some(t) = self.topics.get_mut(topic) {
            t.stale = true;
        }
    }

    fn lookup(&self, topic: &str, partition: u32) -> Lookup {
        match self.topics.get(topic) {
            None => Lookup::Refresh,
            Some(t) if t.stale => Lookup::Refresh,
            Some(t) => match t
                .leaders
                .get(partition as usize)
                .and_then(|id| self.brokers.get(id))
            {
                Some(address) => Lookup::Leader(address.clone()),
                None => Lookup::Unroutable,
            },
        }
    }

    fn fresh(&self, topic: &str) -> bool {
        self.topics.get(topic).is_some_and(|t| !t.stale)
    }

    /// Brokers to ask for metadata, in order: the current one, the others
    /// the cluster named, then the bootstrap list.
    fn candidates(&self, bootstrap: &[String]) -> Vec<String> {
        let mut known: Vec<(&u32, &String)> = self.brokers.iter().collect();
        known.sort();
        let mut out: Vec<String> = Vec::new();
        let all = std::iter::once(&self.current)
            .chain(known.into_iter().map(|(_, a)| a))
            .chain(bootstrap);
        for a in all {
            if !a.is_empty() && !out.contains(a) && self.avoid.as_ref() != Some(a) {
                out.push(a.clone());
            }
        }
        if let Some(a) = &self.avoid {
            out.push(a.clone());
        }
        out
    }
}

/// An error and its causes on one line: tonic's transport errors say only
/// "transport error" at the top.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The error for a list of addresses none of which could be reached.
fn unreachable(tried: Vec<(String, Error)>) -> Error {
    let address = tried
        .iter()
        .map(|(a, _)| a.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let message = match tried.as_slice() {
        [] => "no broker address given".to_string(),
        [(_, e)] => reason_of(e),
        _ => tried
            .iter()
            .map(|(a, e)| format!("{a}: {}", reason_of(e)))
            .collect::<Vec<_>>()
            .join("; "),
    };
    Error::Connect {
        address,
        message: format!("{message}; is `tidelog serve` running there?"),
    }
}

/// The part of an error worth repeating in a list of failed addresses.
fn reason_of(e: &Error) -> String {
    match e {
        Error::Connect { message, .. } => message.clone(),
        e => e.to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data stays consistent under every lock holder (no await inside),
    // so a panic elsewhere does not make it unusable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Connection {
    /// Connects to the first reachable bootstrap address.
    pub(crate) async fn open(config: ClientConfig) -> Result<Self> {
        let bootstrap = config.bootstrap_addresses();
        let conn = Connection {
            inner: Arc::new(Inner {
                config,
                bootstrap: bootstrap.clone(),
                channels: Mutex::new(HashMap::new()),
                cluster: Mutex::new(Cluster::default()),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        };
        let mut tried = Vec::new();
        for address in bootstrap {
            match conn.channel(&address).await {
                Ok(_) => {
                    lock(&conn.inner.cluster).current = address;
                    return Ok(conn);
                }
                Err(e) => tried.push((address, e)),
            }
        }
        Err(unreachable(tried))
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The channel to a broker, connecting on first use.
    async fn channel(&self, address: &str) -> Result<Channel> {
        if let Some(c) = lock(&self.inner.channels).get(address) {
            return Ok(c.clone());
        }
        let connect_err = |message: String| Error::Connect {
            address: address.to_string(),
            message,
        };
        let uri = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| connect_err(chain(&e)))?
            .connect_timeout(self.inner.config.connect_timeout)
            .tcp_nodelay(true)
            // Large windows so one stream can fill the link (see BENCHMARKS).
            .initial_stream_window_size(Some(16 * 1024 * 1024))
            .initial_connection_window_size(Some(32 * 1024 * 1024))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        // Connecting now (not lazily) tells a dead address apart before
        // any request is sent on it, so the caller can go elsewhere.
        let connecting = endpoint.connect();
        let channel =
            match tokio::time::timeout(self.inner.config.connect_timeout, connecting).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(connect_err(chain(&e))),
                Err(_) => {
                    return Err(connect_err(format!(
                        "no connection within {:?}",
                        self.inner.config.connect_timeout
                    )))
                }
            };
        // Two tasks may have connected at once: keep the first channel.
        Ok(lock(&self.inner.channels)
            .entry(address.to_string())
            .or_insert(channel)
            .clone())
    }

    /// Forgets a broker's channel after its connection broke, so the next
    /// use connects again (or finds the broker gone), and asks the other
    /// brokers first from now on.
    fn drop_channel(&self, address: &str) {
        lock(&self.inner.channels).remove(address);
        lock(&self.inner.cluster).avoid = Some(address.to_string());
    }

    fn candidates(&self) -> Vec<String> {
        lock(&self.inner.cluster).candidates(&self.inner.bootstrap)
    }

    /// A broker for calls any broker answers: the current one, else the
    /// first other known or bootstrap broker that accepts a connection
    /// (which becomes current).
    async fn any_broker(&self) -> Result<Route> {
        let mut tried = Vec::new();
        for address in self.candidates() {
            match self.channel(&address).await {
                Ok(channel) => {
                    lock(&self.inner.cluster).current = address.clone();
                    return Ok(Route { address, channel });
                }
                Err(e) => tried.push((address, e)),
            }
        }
        Err(unreachable(tried))
    }

    /// Runs one call on `address` under the request timeout. A broken
    /// connection drops the channel; the fault says what else to do.
    async fn attempt<T, Fut>(&self, address: &str, fut: Fut) -> (Result<T>, Fault)
    where
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let timeout = self.inner.config.request_timeout;
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(r)) => (Ok(r.into_inner()), Fault::None),
            Ok(Err(status)) => {
                let fault = fault_of(&status);
                if fault == Fault::Broken {
                    self.drop_channel(address);
                }
                (Err(Error::from(status)), fault)
            }
            Err(_) => {
                // A broker that does not answer may be gone without the
                // connection noticing yet: connect afresh next time.
                self.drop_channel(address);
                (
                    Err(Error::Timeout(format!(
                        "no answer within {timeout:?} from {address}"
                    ))),
                    Fault::Broken,
                )
            }
        }
    }

    /// Runs a call on the current broker. When it cannot be reached the
    /// call goes to another known or bootstrap broker; when the connection
    /// breaks mid-call it is sent again elsewhere only if `resend` allows.
    pub(crate) async fn on_any<T, F, Fut>(&self, resend: Resend, mut make: F) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let mut tried = Vec::new();
        for _ in 0..ROUTED_ATTEMPTS {
            let route = match self.any_broker().await {
                Ok(r) => r,
                Err(e) if tried.is_empty() => return Err(e),
                // Every broker tried failed: report the first failure, the
                // one the caller's broker gave.
                Err(_) => break,
            };
            match self.attempt(&route.address, make(route.channel)).await {
                (Err(e), Fault::Broken) if resend == Resend::Safe => {
                    tracing::debug!(error = %e, broker = %route.address, "call failed; trying another broker");
                    tried.push((route.address, e));
                }
                (outcome, _) => return outcome,
            }
        }
        Err(tried
            .into_iter()
            .next()
            .map(|(_, e)| e)
            .unwrap_or_else(|| Error::Unavailable("no broker answered".into())))
    }

    /// Asks for the leaders of `topic` (once, whoever asks first after
    /// they went stale) and for the live brokers.
    async fn refresh(&self, topic: &str) -> Result<()> {
        let _one_at_a_time = self.inner.refreshing.lock().await;
        if lock(&self.inner.cluster).fresh(topic) {
            return Ok(());
        }
        let request = MetadataRequest {
            topics: vec![topic.to_string()],
        };
        let resp = self
            .on_any(Resend::Safe, |c| {
                let request = request.clone();
                async move { admin(c).metadata(request).await }
            })
            .await?;
        lock(&self.inner.cluster).apply_metadata(resp);
        Ok(())
    }

    /// The route to a partition's leader. When metadata cannot name one
    /// (no such partition, a leader without an address) the current broker
    /// gets the request and its answer says what is wrong. A leader that
    /// does not accept a connection in a one-broker cluster is the broker
    /// the client already talks to under another name (an advertised
    /// address unreachable from here): the request goes there.
    pub(crate) async fn leader(&self, topic: &str, partition: u32) -> Result<Route> {
        let mut lookup = lock(&self.inner.cluster).lookup(topic, partition);
        if lookup == Lookup::Refresh {
            match self.refresh(topic).await {
                Ok(()) => lookup = lock(&self.inner.cluster).lookup(topic, partition),
                // The broker's own answer to the request explains it best.
                Err(Error::UnknownTopic(_)) => lookup = Lookup::Unroutable,
                Err(e) => return Err(e),
            }
        }
        let address = match lookup {
            Lookup::Leader(address) => address,
            Lookup::Refresh | Lookup::Unroutable => return self.any_broker().await,
        };
        match self.channel(&address).await {
            Ok(channel) => Ok(Route { address, channel }),
            Err(e) => {
                let single = lock(&self.inner.cluster).brokers.len() <= 1;
                if single {
                    if let Ok(route) = self.any_broker().await {
                        return Ok(route);
                    }
                }
                self.forget_leaders(topic);
                Err(e)
            }
        }
    }

    /// Marks a topic's leaders stale: the next call asks for metadata.
    pub(crate) fn forget_leaders(&self, topic: &str) {
        lock(&self.inner.cluster).forget_leaders(topic);
    }

    /// Learns from a failed call on a partition's route (a moved leader, a
    /// broken connection) and returns the error it means.
    pub(crate) fn partition_failed(
        &self,
        topic: &str,
        partition: u32,
        address: &str,
        status: Status,
    ) -> Error {
        let fault = fault_of(&status);
        if fault == Fault::Broken {
            self.drop_channel(address);
        }
        self.learn(topic, partition, fault);
        Error::from(status)
    }

    fn learn(&self, topic: &str, partition: u32, fault: Fault) {
        let mut cluster = lock(&self.inner.cluster);
        match fault {
            Fault::None => {}
            Fault::Misrouted(Some(hint)) => cluster.apply_leader_hint(topic, partition, hint),
            Fault::Misrouted(None) | Fault::Broken => cluster.forget_leaders(topic),
        }
    }

    /// Opens a call on a partition's route (a stream, or one request) under
    /// the request timeout, learning from a failure.
    pub(crate) async fn on_route<T, Fut>(
        &self,
        topic: &str,
        partition: u32,
        route: &Route,
        fut: Fut,
    ) -> Result<T>
    where
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let (outcome, fault) = self.attempt(&route.address, fut).await;
        self.learn(topic, partition, fault);
        outcome
    }

    /// Runs a read-only call on a partition's leader, following the leader
    /// when it moved or its connection broke.
    async fn on_leader<T, F, Fut>(&self, topic: &str, partition: u32, mut make: F) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let mut last = None;
        for attempt in 0..ROUTED_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            let route = match self.leader(topic, partition).await {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let (outcome, fault) = self.attempt(&route.address, make(route.channel)).await;
            match fault {
                Fault::None => return outcome,
                fault => {
                    self.learn(topic, partition, fault);
                    last = outcome.err();
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Unavailable(format!("{topic}/{partition}: no leader"))))
    }

    /// The broker that coordinates a group, as `FindCoordinator` says.
    async fn coordinator(&self, group: &str) -> Result<String> {
        if let Some(a) = lock(&self.inner.cluster).coordinators.get(group) {
            return Ok(a.clone());
        }
        let request = FindCoordinatorRequest {
            group_id: group.to_string(),
        };
        let resp = self
            .on_any(Resend::Safe, |c| {
                let request = request.clone();
                async move { groups(c).find_coordinator(request).await }
            })
            .await?;
        let address = resp
            .coordinator
            .map(|b| b.address)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| Error::Unavailable(format!("no coordinator for group {group} yet")))?;
        lock(&self.inner.cluster)
            .coordinators
            .insert(group.to_string(), address.clone());
        Ok(address)
    }

    /// Runs a call of a group on its coordinator, finding it again when it
    /// moved (`NOT_COORDINATOR`) or cannot be reached. After a connection
    /// broke mid-call the call is sent again only if `resend` allows.
    pub(crate) async fn on_coordinator<T, F, Fut>(
        &self,
        group: &str,
        resend: Resend,
        mut make: F,
    ) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    {
        let mut last = None;
        for attempt in 0..ROUTED_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
            }
            let address = self.coordinator(group).await?;
            let route = match self.channel(&address).await {
                Ok(channel) => Route { address, channel },
                Err(e) => {
                    self.forget_coordinator(group);
                    // As for leaders: one broker is the one the client
                    // already reaches, whatever address it advertises.
                    let single = lock(&self.inner.cluster).brokers.len() <= 1;
                    match self.any_broker().await {
                        Ok(route) if single => route,
                        _ => {
                            last = Some(e);
                            continue;
                        }
                    }
                }
            };
            let (outcome, fault) = self.attempt(&route.address, make(route.channel)).await;
            match fault {
                Fault::None => return outcome,
                Fault::Misrouted(hint) => {
                    let mut cluster = lock(&self.inner.cluster);
                    match hint {
                        Some(h) => cluster.coordinators.insert(group.to_string(), h.address),
                        None => cluster.coordinators.remove(group),
                    };
                }
                Fault::Broken => {
                    self.forget_coordinator(group);
                    if resend == Resend::IfNotSent {
                        return outcome;
                    }
                }
            }
            last = outcome.err();
        }
        Err(last.unwrap_or_else(|| Error::Unavailable(format!("no coordinator for group {group}"))))
    }

    fn forget_coordinator(&self, group: &str) {
        lock(&self.inner.cluster).coordinators.remove(group);
    }

    /// Number of partitions of a topic (cached after the first lookup).
    pub(crate) async fn partition_count(&self, topic: &str) -> Result<u32> {
        if let Some(n) = self.cached_count(topic) {
            return Ok(n);
        }
        self.refresh(topic).await?;
        self.cached_count(topic)
            .ok_or_else(|| Error::UnknownTopic(format!("topic {topic} does not exist")))
    }

    /// The cached partition count, without asking the broker.
    pub(crate) fn cached_count(&self, topic: &str) -> Option<u32> {
        lock(&self.inner.cluster)
            .topics
            .get(topic)
            .map(|t| t.leaders.len() as u32)
    }

    /// Forgets cached metadata of a topic (after it was deleted or changed).
    pub(crate) fn invalidate_metadata(&self, topic: &str) {
        lock(&self.inner.cluster).topics.remove(topic);
    }

    /// Resolves an offset of a partition: `(offset, timestamp)`, the
    /// timestamp being that of the record a timestamp lookup found, else -1.
    pub(crate) async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<(i64, i64)> {
        let request = ListOffsetsRequest {
            topic: topic.into(),
            partition,
            spec: Some(spec.to_wire()),
        };
        let r = self
            .on_leader(topic, partition, |c| {
                let request = request.clone();
                async move { consumer(c).list_offsets(request).await }
            })
            .await?;
        Ok((r.offset, r.timestamp_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidelog_proto::v1::{BrokerInfo, TopicMetadata};

    fn metadata(brokers: &[(u32, &str)], topics: &[(&str, &[u32])]) -> MetadataResponse {
        MetadataResponse {
            brokers: brokers
                .iter()
                .map(|(id, a)| BrokerInfo {
                    id: *id,
                    address: a.to_string(),
                })
                .collect(),
            topics: topics
                .iter()
                .map(|(n, l)| TopicMetadata {
                    name: n.to_string(),
                    leaders: l.to_vec(),
                })
                .collect(),
        }
    }

    fn status(reason: &str, hint: Option<(&str, &str)>) -> Status {
        let mut s = Status::unavailable("not here");
        let md = s.metadata_mut();
        if let Ok(v) = reason.parse() {
            md.insert(ERROR_REASON_KEY, v);
        }
        if let Some((id, address)) = hint {
            if let (Ok(id), Ok(address)) = (id.parse(), address.parse()) {
                md.insert(LEADER_ID_KEY, id);
                md.insert(LEADER_ADDRESS_KEY, address);
            }
        }
        s
    }

    #[test]
    fn bootstrap_lists_split_on_commas() {
        let c = ClientConfig::new(" a:1, b:2 ,,a:1,c:3 ");
        assert_eq!(c.bootstrap_addresses(), ["a:1", "b:2", "c:3"]);
        assert_eq!(ClientConfig::new("a:1").bootstrap_addresses(), ["a:1"]);
        assert_eq!(
            ClientConfig::with_brokers(["a:1", "b:2"]).bootstrap,
            "a:1,b:2"
        );
        assert!(ClientConfig::new(" , ").bootstrap_addresses().is_empty());
    }

    #[test]
    fn metadata_routes_partitions_to_their_leaders() {
        let mut c = Cluster::default();
        assert_eq!(c.lookup("t", 0), Lookup::Refresh);
        c.apply_metadata(metadata(&[(1, "h1:1"), (2, "h2:2")], &[("t", &[1, 2])]));
        assert_eq!(c.lookup("t", 0), Lookup::Leader("h1:1".into()));
        assert_eq!(c.lookup("t", 1), Lookup::Leader("h2:2".into()));
        assert_eq!(c.lookup("t", 2), Lookup::Unroutable);
        // A leader the broker list does not name cannot be dialled.
        c.apply_metadata(metadata(&[(1, "h1:1")], &[("u", &[3])]));
        assert_eq!(c.lookup("u", 0), Lookup::Unroutable);
        assert_eq!(c.lookup("t", 1), Lookup::Unroutable, "broker 2 is gone");
    }

    #[test]
    fn a_leader_hint_moves_one_partition_at_once() {
        let mut c = Cluster::default();
        c.apply_metadata(metadata(&[(1, "h1:1"), (2, "h2:2")], &[("t", &[1, 1])]));
        let Fault::Misrouted(Some(hint)) = fault_of(&status("NOT_LEADER", Some(("3", "h3:3"))))
        else {
            panic!("a NOT_LEADER status with a hint");
        };
        c.apply_leader_hint("t", 1, hint);
        assert_eq!(c.lookup("t", 0), Lookup::Leader("h1:1".into()));
        assert_eq!(c.lookup("t", 1), Lookup::Leader("h3:3".into()));
        assert_eq!(c.brokers.get(&3).map(String::as_str), Some("h3:3"));
    }

    #[test]
    fn without_a_usable_hint_the_topic_is_asked_about_again() {
        let mut c = Cluster::default();
        c.apply_metadata(metadata(&[(1, "h1:1")], &[("t", &[1, 1])]));
        assert_eq!(
            fault_of(&status("NOT_LEADER", None)),
            Fault::Misrouted(None)
        );
        c.forget_leaders("t");
        assert_eq!(c.lookup("t", 0), Lookup::Refresh);
        assert_eq!(c.topics["t"].leaders.len(), 2, "the count stays known");
        // An address without an id cannot be placed in the leader table.
        c.apply_metadata(metadata(&[(1, "h1:1")], &[("t", &[1, 1])]));
        c.apply_leader_hint(
            "t",
            0,
            Hint {
                id: None,
                address: "h9:9".into(),
            },
        );
        assert_eq!(c.lookup("t", 0), Lookup::Refresh);
    }

    #[test]
    fn faults_tell_moved_routes_from_broken_connections() {
        assert_eq!(fault_of(&Status::unavailable("reset")), Fault::Broken);
        assert_eq!(fault_of(&Status::unknown("h2 error")), Fault::Broken);
        assert_eq!(
            fault_of(&status("SHUTTING_DOWN", None)),
            Fault::Misrouted(None)
        );
        assert_eq!(fault_of(&status("STORAGE_UNAVAILABLE", None)), Fault::None);
        assert_eq!(fault_of(&Status::not_found("no topic")), Fault::None);
        assert_eq!(
            fault_of(&status("NOT_COORDINATOR", Some(("2", "h2:2")))),
            Fault::Misrouted(Some(Hint {
                id: Some(2),
                address: "h2:2".into()
            }))
        );
    }

    #[test]
    fn metadata_is_asked_of_the_current_then_known_then_bootstrap_brokers() {
        let mut c = Cluster {
            current: "h2:2".into(),
            ..Cluster::default()
        };
        c.apply_metadata(metadata(&[(2, "h2:2"), (1, "h1:1")], &[]));
        let bootstrap = vec!["b:1".to_string(), "h1:1".to_string()];
        assert_eq!(c.candidates(&bootstrap), ["h2:2", "h1:1", "b:1"]);
        // A broker whose connection broke goes last.
        c.avoid = Some("h2:2".into());
        assert_eq!(c.candidates(&bootstrap), ["h1:1", "b:1", "h2:2"]);
    }
}
