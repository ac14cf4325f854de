//! The entry point: connects, then hands out producers, consumers and
//! admins that share the connection. Nothing else lives here; the
//! connection and metadata are `connection.rs`.

use crate::admin::Admin;
pub use crate::connection::ClientConfig;
use crate::connection::Connection;
use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::Result;
use crate::group::{GroupConsumer, GroupConsumerConfig};
use crate::producer::{Producer, ProducerConfig};
use crate::unified::{ConsumerMode, UnifiedConsumer};

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
    conn: Connection,
}

impl Client {
    /// Connects with default timeouts.
    pub async fn connect(bootstrap: impl Into<String>) -> Result<Self> {
        Self::connect_with(ClientConfig::new(bootstrap)).await
    }

    /// Connects with the given config.
    pub async fn connect_with(config: ClientConfig) -> Result<Self> {
        Ok(Client {
            conn: Connection::open(config).await?,
        })
    }

    /// A producer with default settings.
    pub fn producer(&self) -> Producer {
        Producer::new(self.conn.clone(), ProducerConfig::default())
    }

    /// A producer with the given settings.
    pub fn producer_with(&self, config: ProducerConfig) -> Producer {
        Producer::new(self.conn.clone(), config)
    }

    /// A consumer with default settings (manual assignment).
    pub fn consumer(&self) -> Consumer {
        Consumer::new(self.conn.clone(), ConsumerConfig::default())
    }

    /// A consumer with the given settings.
    pub fn consumer_with(&self, config: ConsumerConfig) -> Consumer {
        Consumer::new(self.conn.clone(), config)
    }

    /// A consumer that joins a consumer group.
    pub fn group_consumer(&self, config: GroupConsumerConfig) -> GroupConsumer {
        GroupConsumer::new(self.conn.clone(), config)
    }

    /// One consumer for either use: a group member that subscribes, or a
    /// consumer of partitions it is assigned (see [`UnifiedConsumer`]).
    pub fn unified_consumer(&self, mode: ConsumerMode) -> UnifiedConsumer {
        UnifiedConsumer::new(self.conn.clone(), mode)
    }

    /// Topic administration.
    pub fn admin(&self) -> Admin {
        Admin::new(self.conn.clone())
    }

    /// Settings in use.
    pub fn config(&self) -> &ClientConfig {
        self.conn.config()
    }

    /// Number of partitions of a topic (cached after the first lookup).
    pub async fn partition_count(&self, topic: &str) -> Result<u32> {
        self.conn.partition_count(topic).await
    }

    /// Forgets cached metadata of a topic (after it was deleted or changed).
    pub fn invalidate_metadata(&self, topic: &str) {
        self.conn.invalidate_metadata(topic)
    }
}
