//! The broker: the set of topics in a data directory, their partitions and
//! background tasks. The gRPC services in `api` and the group coordinator
//! call into this layer; it calls into `tiering` and `log`.
//!
//! By job: `registry` (create, delete, alter topics), `retention`,
//! `disk_watch` (the produce high-water mark), `remote` (tiering: remote
//! state, the upload task, remote deletion), `gauges`; `partition` is one
//! live partition, `topic`/`topic_config` a topic's metadata.
//!
//! Data directory layout:
//! ```text
//! <data-dir>/.lock                      held while a broker runs
//! <data-dir>/topics/<topic>/topic.json  name, partitions, config overrides
//! <data-dir>/topics/<topic>/<p>/        one partition's segments
//! <data-dir>/deleted/                   topics being removed
//! ```

mod disk_watch;
pub mod error;
mod gauges;
pub mod listener;
pub mod partition;
mod registry;
mod remote;
mod retention;
mod scrub;
pub mod topic;
pub mod topic_config;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::BrokerError;
pub use listener::TopicListener;
pub use partition::{AckMode, Appended, FetchResult, Partition};
pub use topic::Topic;

use crate::log::LogConfig;
use crate::metrics::Metrics;
use crate::tiering::{RemotePartition, Tiering};

/// What the broker needs to know at start.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// Root of all data.
    pub data_dir: PathBuf,
    /// This broker's id.
    pub broker_id: u32,
    /// Address clients should use for this broker.
    pub advertised_address: String,
    /// Defaults for topic config.
    pub log_defaults: LogConfig,
    /// How often retention runs.
    pub retention_check_interval: Duration,
    /// Refuse produce (retriable) while local log bytes exceed this; 0: off.
    pub local_disk_high_water_bytes: u64,
    /// Open partitions whose log ends below their recovery point (segment
    /// data missing), continuing at the recovery point.
    pub accept_data_loss: bool,
    /// Read rate of the background scrub of sealed segments; 0: off.
    pub scrub_bytes_per_sec: u64,
    /// Pause between two scrub passes.
    pub scrub_interval: Duration,
}

/// The broker.
#[derive(Debug)]
pub struct Broker {
    settings: BrokerSettings,
    topics_dir: PathBuf,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises create/delete so two admins cannot race on a name.
    admin: tokio::sync::Mutex<()>,
    metrics: Metrics,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    tiering: Option<Arc<Tiering>>,
    /// Bytes of log on local disk, refreshed every 200 ms.
    local_bytes: std::sync::atomic::AtomicU64,
    /// Told about topic changes (the cluster snapshot publisher).
    listener: OnceLock<Weak<dyn TopicListener>>,
    _lock: File,
}

fn storage(path: &Path, e: std::io::Error) -> BrokerError {
    BrokerError::Storage(format!("{}: {e}", path.display()))
}

fn in_use(dir: &Path) -> BrokerError {
    BrokerError::Storage(format!(
        "{} is in use by another tidelog process; stop it or pick another --data-dir",
        dir.display()
    ))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Broker {
    /// Fails when another process holds the data directory's lock.
    pub fn check_not_in_use(dir: &Path) -> Result<(), BrokerError> {
        let lock_path = dir.join(".lock");
        let Ok(lock) = File::open(&lock_path) else {
            return Ok(());
        };
        if lock.try_lock().is_err() {
            return Err(in_use(dir));
        }
        Ok(())
    }

    /// Opens the data directory, recovers every topic and starts the
    /// background tasks.
    pub fn open(
        settings: BrokerSettings,
        metrics: Metrics,
        shutdown: CancellationToken,
        tiering: Option<Arc<Tiering>>,
    ) -> Result<Arc<Self>, BrokerError> {
        let dir = &settings.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| storage(dir, e))?;
        let lock_path = dir.join(".lock");
        let lock = File::create(&lock_path).map_err(|e| storage(&lock_path, e))?;
        if lock.try_lock().is_err() {
            return Err(in_use(dir));
        }
        let topics_dir = dir.join("topics");
        std::fs::create_dir_all(&topics_dir).map_err(|e| storage(&topics_dir, e))?;
        let deleted = dir.join("deleted");
        if deleted.exists() {
            std::fs::remove_dir_all(&deleted).map_err(|e| storage(&deleted, e))?;
        }
        let broker = Arc::new(Broker {
            topics_dir: topics_dir.clone(),
            topics: RwLock::new(BTreeMap::new()),
            admin: tokio::sync::Mutex::new(()),
            metrics,
            shutdown,
            tasks: TaskTracker::new(),
            tiering,
            local_bytes: std::sync::atomic::AtomicU64::new(0),
            listener: OnceLock::new(),
            _lock: lock,
            settings,
        });
        let mut loaded = BTreeMap::new();
        for entry in std::fs::read_dir(&topics_dir).map_err(|e| storage(&topics_dir, e))? {
            let entry = entry.map_err(|e| storage(&topics_dir, e))?;
            let tdir = entry.path();
            if !tdir.join("topic.json").exists() {
                // A create that died before its metadata was written.
                tracing::warn!(dir = %tdir.display(), "removing topic directory without topic.json");
                std::fs::remove_dir_all(&tdir).map_err(|e| storage(&tdir, e))?;
                continue;
            }
            let meta = Topic::read_meta(&tdir)?;
            let topic = broker.open_topic(meta, tdir)?;
            loaded.insert(topic.name(), topic);
        }
        tracing::info!(topics = loaded.len(), "recovered topics");
        *broker.topics.write() = loaded;
        let b = Arc::clone(&broker);
        broker.tasks.spawn(async move { b.run_retention().await });
        let b = Arc::clone(&broker);
        broker.tasks.spawn(async move { b.run_scrub().await });
        if broker.settings.local_disk_high_water_bytes > 0 {
            let b = Arc::clone(&broker);
            broker.tasks.spawn(async move { b.run_disk_watch().await });
        }
        if let Some(t) = broker.tiering.clone() {
            broker.spawn_uploads(t);
        }
        Ok(broker)
    }

    fn open_topic(&self, meta: topic::TopicMeta, dir: PathBuf) -> Result<Arc<Topic>, BrokerError> {
        let cfg = topic_config::resolve(&self.settings.log_defaults, &meta.config)?;
        if let Err(e) = topic_config::check_consistent(&cfg) {
            // Accepted by an older version: keep serving it, and say so.
            tracing::warn!(topic = %meta.name, error = %e, "topic config is contradictory; alter it");
        }
        let hosted = meta.hosted();
        let mut partitions = Vec::with_capacity(hosted.len());
        for p in hosted {
            let remote = self.tiering.as_ref().map(|t| {
                let pdir = dir.join(p.to_string());
                Arc::new(RemotePartition::new(
                    t,
                    &meta.name,
                    meta.created_ms,
                    p,
                    pdir,
                ))
            });
            partitions.push(Partition::open(
                &meta.name,
                p,
                &dir.join(p.to_string()),
                cfg.clone(),
                &self.metrics,
                remote,
                self.settings.accept_data_loss,
            )?);
        }
        let cancel = self.shutdown.child_token();
        for p in &partitions {
            let p = Arc::clone(p);
            let c = cancel.clone();
            self.tasks.spawn(async move { p.run_flusher(c).await });
        }
        Ok(Arc::new(Topic::new(meta, dir, partitions, cancel)))
    }

    /// Settings in force.
    pub fn settings(&self) -> &BrokerSettings {
        &self.settings
    }

    /// Metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Token cancelled when the broker stops.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// A topic by name, or NOT_FOUND.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        self.topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))
    }

    /// One partition of a topic.
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>, BrokerError> {
        let t = self.topic(topic)?;
        t.partition(partition).cloned()
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// Registers who hears about topic changes (once).
    pub fn set_topic_listener(&self, listener: Weak<dyn TopicListener>) {
        if self.listener.set(listener).is_err() {
            tracing::warn!("a topic listener was already registered; ignoring another");
        }
    }

    fn topic_listener(&self) -> Option<Arc<dyn TopicListener>> {
        self.listener.get().and_then(Weak::upgrade)
    }

    /// Runs a task owned by the broker: joined at shutdown.
    pub fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(fut);
    }

    /// Stops background tasks; flushers do a last fsync.
    pub async fn close(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        if let Some(t) = &self.tiering {
            t.close().await;
        }
    }
}
