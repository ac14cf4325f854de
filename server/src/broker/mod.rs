//! The broker: the set of topics in a data directory, their partitions and
//! background tasks (group-commit flushers, retention). The gRPC services
//! in `api` call into this layer; it calls into `log`.
//!
//! Data directory layout:
//! ```text
//! <data-dir>/.lock                      held while a broker runs
//! <data-dir>/topics/<topic>/topic.json  name, partitions, config overrides
//! <data-dir>/topics/<topic>/<p>/        one partition's segments
//! <data-dir>/deleted/                   topics being removed
//! ```

pub mod error;
pub mod partition;
pub mod topic;
pub mod topic_config;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::BrokerError;
pub use partition::{AckMode, Appended, FetchResult, Partition};
pub use topic::Topic;

use crate::log::LogConfig;
use crate::metrics::Metrics;
use crate::tiering::manifest::SnapshotTopic;
use crate::tiering::{uploader, RemotePartition, Tiering, TieringError, TieringStatus};

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
    /// Set when a snapshot write failed; the uploader retries it.
    snapshot_dirty: std::sync::atomic::AtomicBool,
    _lock: File,
}

fn storage(path: &Path, e: std::io::Error) -> BrokerError {
    BrokerError::Storage(format!("{}: {e}", path.display()))
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
            return Err(BrokerError::Storage(format!(
                "{} is in use by another tidelog process; stop it or pick another --data-dir",
                dir.display()
            )));
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
            return Err(BrokerError::Storage(format!(
                "{} is in use by another tidelog process; stop it or pick another --data-dir",
                dir.display()
            )));
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
            snapshot_dirty: std::sync::atomic::AtomicBool::new(false),
            local_bytes: std::sync::atomic::AtomicU64::new(0),
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
        if broker.settings.local_disk_high_water_bytes > 0 {
            let b = Arc::clone(&broker);
            broker.tasks.spawn(async move { b.run_disk_watch().await });
        }
        if let Some(t) = broker.tiering.clone() {
            let b = Arc::clone(&broker);
            broker.tasks.spawn(async move { b.run_uploader(t).await });
        }
        Ok(broker)
    }

    fn open_topic(&self, meta: topic::TopicMeta, dir: PathBuf) -> Result<Arc<Topic>, BrokerError> {
        let cfg = topic_config::resolve(&self.settings.log_defaults, &meta.config)?;
        let mut partitions = Vec::with_capacity(meta.partitions as usize);
        for p in 0..meta.partitions {
            let remote = self.tiering.as_ref().map(|t| {
                (
                    Arc::clone(t),
                    Arc::new(RemotePartition::new(
                        &meta.name,
                        meta.created_ms,
                        p,
                        t.writer,
                    )),
                )
            });
            partitions.push(Partition::open(
                &meta.name,
                p,
                &dir.join(p.to_string()),
                cfg.clone(),
                &self.metrics,
                remote,
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

    /// Creates a topic: validates, writes partition directories, then
    /// `topic.json` last, so a crash mid-way leaves nothing half-visible.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        config: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, BrokerError> {
        topic::validate_name(name)?;
        if partitions == 0 || partitions > topic::MAX_PARTITIONS {
            return Err(BrokerError::InvalidRequest(format!(
                "partitions={partitions}: must be between 1 and {}",
                topic::MAX_PARTITIONS
            )));
        }
        topic_config::resolve(&self.settings.log_defaults, &config)?;
        let _guard = self.admin.lock().await;
        if self.topics.read().contains_key(name) {
            return Err(BrokerError::TopicExists(name.to_string()));
        }
        let dir = Topic::dir_for(&self.topics_dir, name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| storage(&dir, e))?;
        }
        let meta = Topic::new_meta(name, partitions, config, now_ms());
        for p in 0..partitions {
            let pdir = dir.join(p.to_string());
            std::fs::create_dir_all(&pdir).map_err(|e| storage(&pdir, e))?;
        }
        Topic::write_meta(&dir, &meta)?;
        crate::log::partition_log::sync_dir(&self.topics_dir)?;
        let topic = self.open_topic(meta, dir)?;
        self.topics
            .write()
            .insert(name.to_string(), Arc::clone(&topic));
        tracing::info!(topic = name, partitions, "created topic");
        let _ = self.load_remote_state_of(&topic).await;
        self.publish_snapshot().await;
        Ok(topic)
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        let _guard = self.admin.lock().await;
        let topic = self
            .topics
            .write()
            .remove(name)
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))?;
        topic.cancel_token().cancel();
        let deleted = self.settings.data_dir.join("deleted");
        std::fs::create_dir_all(&deleted).map_err(|e| storage(&deleted, e))?;
        let target = deleted.join(format!("{name}.{}", now_ms()));
        // The rename is the commit point: once it is durable the topic is
        // gone even if the removal below is interrupted.
        std::fs::rename(topic.dir(), &target).map_err(|e| storage(topic.dir(), e))?;
        crate::log::partition_log::sync_dir(&self.topics_dir)?;
        let removal = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&target)).await;
        if let Ok(Err(e)) | Err(e) = removal.map_err(std::io::Error::other) {
            tracing::warn!(topic = name, error = %e, "could not remove deleted topic data; retried at start-up");
        }
        self.metrics.segments.remove_label_values(&[name]).ok();
        self.metrics.log_size.remove_label_values(&[name]).ok();
        self.metrics
            .tiering
            .remote_size
            .remove_label_values(&[name])
            .ok();
        tracing::info!(topic = name, "deleted topic");
        self.publish_snapshot().await;
        if let Some(t) = self.tiering.clone() {
            // The snapshot no longer lists the topic; its objects go in the
            // background (a failure leaves unreachable objects, logged).
            let (name, incarnation) = (name.to_string(), topic.meta().created_ms);
            let remotes: Vec<_> = topic
                .partitions()
                .iter()
                .filter_map(|p| p.remote().cloned())
                .collect();
            self.spawn(async move {
                // Wait out an upload round in flight and stop later ones.
                for rp in &remotes {
                    let _round = rp.upload_lock.lock().await;
                    let mut s = rp.state();
                    s.fenced = Some("the topic was deleted".into());
                    rp.set_state(s);
                }
                match uploader::delete_topic_objects(&t, &name, incarnation).await {
                    Ok(n) => tracing::info!(topic = %name, objects = n, "deleted the topic's objects from the bucket"),
                    Err(e) => tracing::warn!(topic = %name, error = %e, "could not delete the topic's objects from the bucket"),
                }
            });
        }
        Ok(())
    }

    /// Changes a topic's config.
    pub fn alter_topic_config(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<Arc<Topic>, BrokerError> {
        let topic = self.topic(name)?;
        topic.alter_config(&self.settings.log_defaults, set, delete)?;
        if let Some(t) = self.tiering.clone() {
            let snapshot = self.snapshot_topics();
            self.spawn(async move {
                if let Err(e) = t.write_snapshot(snapshot).await {
                    tracing::warn!(error = %e, "could not write the cluster snapshot to the bucket");
                }
            });
        }
        Ok(topic)
    }

    /// Effective config of a topic.
    pub fn effective_config(&self, topic: &Topic) -> BTreeMap<String, String> {
        match topic_config::resolve(&self.settings.log_defaults, &topic.meta().config) {
            Ok(cfg) => topic_config::effective(&cfg),
            Err(_) => topic.meta().config,
        }
    }

    /// Refreshes the per-topic gauges (called at scrape time).
    pub fn refresh_gauges(&self) {
        for t in self.topics() {
            let (mut segs, mut size) = (0i64, 0i64);
            for p in t.partitions() {
                let s = p.stats();
                segs += i64::from(s.segments);
                size += s.size_bytes as i64;
            }
            let name = t.name();
            self.metrics.segments.with_label_values(&[&name]).set(segs);
            self.metrics.log_size.with_label_values(&[&name]).set(size);
            if self.tiering.is_some() {
                let remote: u64 = t
                    .partitions()
                    .iter()
                    .map(|p| p.remote_stats().size_bytes)
                    .sum();
                self.metrics
                    .tiering
                    .remote_size
                    .with_label_values(&[&name])
                    .set(remote as i64);
            }
        }
    }

    async fn run_retention(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.retention_check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.shutdown.cancelled() => return,
            }
            for t in self.topics() {
                for p in t.partitions() {
                    match p.enforce_retention() {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(topic = %t.name(), partition = p.id(), segments = n, "retention removed segments")
                        }
                        Err(e) => {
                            tracing::warn!(topic = %t.name(), partition = p.id(), error = %e, "retention failed")
                        }
                    }
                }
            }
        }
    }

    /// `Err(DiskFull)` while local log data is above the high-water mark.
    pub fn check_disk_space(&self) -> Result<(), BrokerError> {
        let limit = self.settings.local_disk_high_water_bytes;
        let used = self.local_bytes.load(std::sync::atomic::Ordering::Acquire);
        if limit > 0 && used > limit {
            return Err(BrokerError::DiskFull { used, limit });
        }
        Ok(())
    }

    async fn run_disk_watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.shutdown.cancelled() => return,
            }
            let used: u64 = self
                .topics()
                .iter()
                .flat_map(|t| t.partitions().to_vec())
                .map(|p| p.stats().size_bytes)
                .sum();
            self.local_bytes
                .store(used, std::sync::atomic::Ordering::Release);
        }
    }

    /// The tiering service, if on.
    pub fn tiering(&self) -> Option<&Arc<Tiering>> {
        self.tiering.as_ref()
    }

    pub fn snapshot_topics(&self) -> Vec<SnapshotTopic> {
        self.topics()
            .iter()
            .map(|t| {
                let m = t.meta();
                SnapshotTopic {
                    name: m.name,
                    partitions: m.partitions,
                    config: m.config,
                    created_ms: m.created_ms,
                }
            })
            .collect()
    }

    /// Writes the cluster snapshot (topics, configs) to the bucket; a
    /// failure is logged and retried by the uploader.
    pub async fn publish_snapshot(&self) {
        if let Some(t) = &self.tiering {
            if let Err(e) = t.write_snapshot(self.snapshot_topics()).await {
                tracing::warn!(error = %e, "could not write the cluster snapshot to the bucket");
                self.snapshot_dirty
                    .store(true, std::sync::atomic::Ordering::Release);
            }
        }
    }

    /// Reads the manifests of a topic's partitions; stops at the first
    /// failure (the store is likely unreachable: the uploader retries).
    async fn load_remote_state_of(&self, topic: &Topic) -> Result<(), TieringError> {
        let Some(t) = &self.tiering else {
            return Ok(());
        };
        for p in topic.partitions() {
            if let Some(rp) = p.remote() {
                if let Err(e) = uploader::load_manifest(t, rp).await {
                    tracing::warn!(partition = %rp.label(), error = %e, "could not read the manifest; the uploader retries");
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Reads every partition's manifest (at start, before serving). When
    /// the store is unreachable the broker serves local data and the
    /// uploader loads the manifests later.
    pub async fn load_remote_state(&self) {
        for t in self.topics() {
            if self.load_remote_state_of(&t).await.is_err() {
                return;
            }
        }
    }

    async fn run_uploader(self: Arc<Self>, t: Arc<Tiering>) {
        let base = t.settings.upload_interval;
        let mut delay = base;
        let mut failures = 0u32;
        // Remote retention runs at the retention interval, like local
        // retention (which deletes local copies once the manifest lists them).
        let mut last_retention = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.cancelled() => return,
            }
            let retention_due = last_retention.elapsed() >= self.settings.retention_check_interval;
            if retention_due {
                last_retention = tokio::time::Instant::now();
            }
            if self
                .snapshot_dirty
                .swap(false, std::sync::atomic::Ordering::AcqRel)
            {
                self.publish_snapshot().await;
            }
            let mut status = TieringStatus::default();
            let mut lag = 0i64;
            let mut failed = false;
            'topics: for topic in self.topics() {
                for p in topic.partitions() {
                    let Some(rp) = p.remote() else { continue };
                    let sync = tokio::select! {
                        s = uploader::sync_partition(&t, rp, p.as_ref(), retention_due) => s,
                        _ = self.shutdown.cancelled() => return,
                    };
                    status.backlog_segments += sync.backlog_segments;
                    status.backlog_bytes += sync.backlog_bytes;
                    lag += sync.lag_offsets;
                    match sync.error {
                        None => {}
                        Some(e @ TieringError::Fenced { .. }) => {
                            status.fenced.push(rp.label());
                            status.last_error = Some(e.to_string());
                        }
                        Some(e) => {
                            t.metrics.upload_errors.inc();
                            tracing::warn!(partition = %rp.label(), error = %e, "upload round failed; retrying with back-off");
                            status.last_error = Some(e.to_string());
                            failed = true;
                            // The store is likely down: do not wait for every
                            // partition's timeout in this round.
                            break 'topics;
                        }
                    }
                }
            }
            t.metrics.upload_lag_offsets.set(lag);
            if failed {
                // Keep the backlog of the last complete count if this round
                // stopped early.
                let prev = t.status();
                status.backlog_segments = status.backlog_segments.max(prev.backlog_segments);
                status.backlog_bytes = status.backlog_bytes.max(prev.backlog_bytes);
                failures = failures.saturating_add(1);
                let factor = 1u32 << failures.min(16);
                delay = base
                    .saturating_mul(factor)
                    .min(t.settings.max_backoff.max(base));
            } else {
                failures = 0;
                delay = base;
            }
            t.set_status(status);
        }
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
