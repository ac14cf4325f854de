//! Node.js bindings for Tidelog, over the Rust client core (`sdk-rust`).
//!
//! Every I/O call is an async napi function running on napi-rs's Tokio
//! runtime, so nothing blocks the event loop. Hot paths (producing many
//! records, handing fetched records to JavaScript) convert values with raw
//! N-API calls in one native call per batch; see `convert.rs`.

#![deny(clippy::unwrap_used)]

mod admin;
mod consumer;
mod convert;
mod error;
mod producer;

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::OnceCell;

pub use admin::Admin;
pub use consumer::Consumer;
pub use error::{error_codes, ErrorCodeInfo};
pub use producer::Producer;

/// Options of `new Tidelog(...)`.
#[napi(object)]
pub struct TidelogOptions {
    /// Broker addresses, `host:port` of the gRPC listener. The client
    /// connects to the first that answers and learns the rest of the
    /// cluster from it.
    pub brokers: Vec<String>,
    /// Shown in `tidelog group describe` for group members.
    pub client_id: Option<String>,
    /// Milliseconds allowed to establish the connection (default 5000).
    pub connection_timeout: Option<u32>,
    /// Milliseconds allowed for one request (default 30000).
    pub request_timeout: Option<u32>,
}

/// The shared, lazily established connection.
#[derive(Clone)]
pub(crate) struct Conn {
    config: tidelog::ClientConfig,
    client_id: String,
    cell: Arc<OnceCell<tidelog::Client>>,
}

impl Conn {
    /// Connects on first use; every producer, consumer and admin of one
    /// `Tidelog` shares the connection.
    pub(crate) async fn client(&self) -> std::result::Result<tidelog::Client, tidelog::Error> {
        let config = self.config.clone();
        self.cell
            .get_or_try_init(|| async move { tidelog::Client::connect_with(config).await })
            .await
            .cloned()
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }
}

/// A Tidelog cluster: the factory of producers, consumers and admins.
#[napi]
pub struct Tidelog {
    conn: Conn,
}

#[napi]
impl Tidelog {
    #[napi(constructor)]
    pub fn new(options: TidelogOptions) -> Result<Self> {
        let mut config = tidelog::ClientConfig::with_brokers(&options.brokers);
        if config.bootstrap_addresses().is_empty() {
            return Err(error::invalid("`brokers` needs at least one `host:port`"));
        }
        if let Some(ms) = options.connection_timeout {
            config.connect_timeout = Duration::from_millis(u64::from(ms));
        }
        if let Some(ms) = options.request_timeout {
            config.request_timeout = Duration::from_millis(u64::from(ms));
        }
        Ok(Tidelog {
            conn: Conn {
                config,
                client_id: options.client_id.unwrap_or_else(|| "tidelog-node".into()),
                cell: Arc::new(OnceCell::new()),
            },
        })
    }

    /// A producer. Batching, linger, compression and retries happen in Rust.
    #[napi]
    pub fn producer(&self, options: Option<producer::ProducerOptions>) -> Result<Producer> {
        Producer::create(self.conn.clone(), options.unwrap_or_default())
    }

    /// A consumer: a consumer-group member when `groupId` is given, otherwise
    /// a standalone consumer reading every partition of the subscribed topics.
    #[napi]
    pub fn consumer(&self, options: Option<consumer::ConsumerOptions>) -> Result<Consumer> {
        Consumer::create(self.conn.clone(), options.unwrap_or_default())
    }

    /// Topic and group administration.
    #[napi]
    pub fn admin(&self) -> Admin {
        Admin::create(self.conn.clone())
    }

    /// Connects now (otherwise the first call connects).
    #[napi]
    pub async fn connect(&self) -> Result<()> {
        self.conn.client().await.map_err(error::to_napi)?;
        Ok(())
    }
}
