//! The connection to a Tidelog cluster, shared by producers, consumers and
//! admins.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidelog_proto::v1::{admin_client::AdminClient, MetadataRequest};
use tonic::transport::{Channel, Endpoint};

use crate::admin::Admin;
use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::{Error, Result};
use crate::group::{GroupConsumer, GroupConsumerConfig};
use crate::producer::{Producer, ProducerConfig};

/// Largest gRPC message the client sends or accepts.
pub(crate) const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of any broker (the gRPC listener).
    pub bootstrap: String,
    /// Time allowed to establish the connection.
    pub connect_timeout: Duration,
    /// Time allowed for one request (excluding streaming subscriptions).
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// Defaults: 5 s to connect, 30 s per request.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        ClientConfig {
            bootstrap: bootstrap.into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A connection to a Tidelog cluster. Cheap to clone; every clone shares the
/// same HTTP/2 connection.
///
/// ```no_run
/// # async fn demo() -> tidelog::Result<()> {
/// let client = tidelog::Client::connect("127.0.0.1:7070").await?;
/// let topics = client.admin().list_topics().await?;
/// println!("{topics:?}");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    channel: Channel,
    config: ClientConfig,
    partition_counts: Mutex<HashMap<String, u32>>,
}

impl Client {
    /// Connects with default timeouts.
    pub async fn connect(bootstrap: impl Into<String>) -> Result<Self> {
        Self::connect_with(ClientConfig::new(bootstrap)).await
    }

    /// Connects with the given config.
    pub async fn connect_with(config: ClientConfig) -> Result<Self> {
        let address = config.bootstrap.clone();
        let uri = if address.contains("://") {
            address.clone()
        } else {
            format!("http://{address}")
        };
        let connect_err = |message: String| Error::Connect {
            address: address.clone(),
            message,
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|e| connect_err(e.to_string()))?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            // Large windows so one stream can fill the link (see BENCHMARKS).
            .initial_stream_window_size(Some(16 * 1024 * 1024))
            .initial_connection_window_size(Some(32 * 1024 * 1024))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| connect_err(format!("{e}; is `tidelog serve` running there?")))?;
        Ok(Client {
            inner: Arc::new(ClientInner {
                channel,
                config,
                partition_counts: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A producer with default settings.
    pub fn producer(&self) -> Producer {
        Producer::new(self.clone(), ProducerConfig::default())
    }

    /// A producer with the given settings.
    pub fn producer_with(&self, config: ProducerConfig) -> Producer {
        Producer::new(self.clone(), config)
    }

    /// A consumer with default settings (manual assignment).
    pub fn consumer(&self) -> Consumer {
        Consumer::new(self.clone(), ConsumerConfig::default())
    }

    /// A consumer with the given settings.
    pub fn consumer_with(&self, config: ConsumerConfig) -> Consumer {
        Consumer::new(self.clone(), config)
    }

    /// A consumer that joins a consumer group.
    pub fn group_consumer(&self, config: GroupConsumerConfig) -> GroupConsumer {
        GroupConsumer::new(self.clone(), config)
    }

    /// Topic administration.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// The shared gRPC channel.
    pub(crate) fn channel(&self) -> Channel {
        self.inner.channel.clone()
    }

    /// Settings in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Runs one unary call under the request timeout.
    pub(crate) async fn call<T, F>(&self, fut: F) -> Result<T>
    where
        F: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(self.inner.config.request_timeout, fut).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(Error::from(s)),
            Err(_) => Err(Error::Timeout(format!(
                "no answer within {:?} from {}",
                self.inner.config.request_timeout, self.inner.config.bootstrap
            ))),
        }
    }

    /// Number of partitions of a topic (cached after the first lookup).
    pub async fn partition_count(&self, topic: &str) -> Result<u32> {
        if let Some(n) = self.cached_count(topic) {
            return Ok(n);
        }
        let mut admin = AdminClient::new(self.channel());
        let resp = self
            .call(admin.metadata(MetadataRequest {
                topics: vec![topic.to_string()],
            }))
            .await?;
        let n = resp
            .topics
            .iter()
            .find(|t| t.name == topic)
            .map(|t| t.leaders.len() as u32)
            .ok_or_else(|| Error::UnknownTopic(topic.to_string()))?;
        if let Ok(mut m) = self.inner.partition_counts.lock() {
            m.insert(topic.to_string(), n);
        }
        Ok(n)
    }

    pub(crate) fn cached_count(&self, topic: &str) -> Option<u32> {
        self.inner
            .partition_counts
            .lock()
            .ok()
            .and_then(|m| m.get(topic).copied())
    }

    /// Forgets cached metadata of a topic (after it was deleted or changed).
    pub fn invalidate_metadata(&self, topic: &str) {
        if let Ok(mut m) = self.inner.partition_counts.lock() {
            m.remove(topic);
        }
    }
}
