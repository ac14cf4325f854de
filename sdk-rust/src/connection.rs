//! The connection to a cluster and what the client knows about it
//! (partition counts). Producers, consumers and admins reach the broker only
//! through here, so routing requests to partition leaders can grow in this
//! one module.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidelog_proto::limits::MAX_MESSAGE_BYTES;
use tidelog_proto::v1::{
    admin_client::AdminClient, consumer_client::ConsumerClient, groups_client::GroupsClient,
    producer_client::ProducerClient, ListOffsetsRequest, MetadataRequest,
};
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};
use crate::types::OffsetSpec;

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

/// A gRPC stub on the connection that accepts and sends messages up to the
/// limit the broker uses, so a large fetch or produce is never cut short.
macro_rules! sized {
    ($stub:ident, $conn:expr) => {
        $stub::new($conn.inner.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    };
}

/// One HTTP/2 connection and the metadata cache. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    channel: Channel,
    config: ClientConfig,
    partition_counts: Mutex<HashMap<String, u32>>,
}

impl Connection {
    /// Connects to the bootstrap broker.
    pub(crate) async fn open(config: ClientConfig) -> Result<Self> {
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
        Ok(Connection {
            inner: Arc::new(Inner {
                channel,
                config,
                partition_counts: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    pub(crate) fn admin(&self) -> AdminClient<Channel> {
        sized!(AdminClient, self)
    }

    pub(crate) fn consumer(&self) -> ConsumerClient<Channel> {
        sized!(ConsumerClient, self)
    }

    pub(crate) fn producer(&self) -> ProducerClient<Channel> {
        sized!(ProducerClient, self)
    }

    pub(crate) fn groups(&self) -> GroupsClient<Channel> {
        sized!(GroupsClient, self)
    }

    /// Runs one call under the request timeout.
    pub(crate) async fn call<T, F>(&self, fut: F) -> Result<T>
    where
        F: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let config = &self.inner.config;
        match tokio::time::timeout(config.request_timeout, fut).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(Error::from(s)),
            Err(_) => Err(Error::Timeout(format!(
                "no answer within {:?} from {}",
                config.request_timeout, config.bootstrap
            ))),
        }
    }

    /// Number of partitions of a topic (cached after the first lookup).
    pub(crate) async fn partition_count(&self, topic: &str) -> Result<u32> {
        if let Some(n) = self.cached_count(topic) {
            return Ok(n);
        }
        let resp = self
            .call(self.admin().metadata(MetadataRequest {
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

    /// The cached partition count, without asking the broker.
    pub(crate) fn cached_count(&self, topic: &str) -> Option<u32> {
        self.inner
            .partition_counts
            .lock()
            .ok()
            .and_then(|m| m.get(topic).copied())
    }

    /// Forgets cached metadata of a topic (after it was deleted or changed).
    pub(crate) fn invalidate_metadata(&self, topic: &str) {
        if let Ok(mut m) = self.inner.partition_counts.lock() {
            m.remove(topic);
        }
    }

    /// Resolves an offset of a partition: `(offset, timestamp)`, the
    /// timestamp being that of the record a timestamp lookup found, else -1.
    pub(crate) async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<(i64, i64)> {
        let r = self
            .call(self.consumer().list_offsets(ListOffsetsRequest {
                topic: topic.into(),
                partition,
                spec: Some(spec.to_wire()),
            }))
            .await?;
        Ok((r.offset, r.timestamp_ms))
    }
}
