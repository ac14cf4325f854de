//! Tiered storage: sealed segments are uploaded to an object store
//! (`file://` directory or S3-compatible bucket) and recorded in a
//! per-partition manifest written with conditional puts; local copies are
//! removed only after the manifest listing them is durable; reads below the
//! local log start are served from the bucket in ranged chunks through a
//! cache. The cluster snapshot is stored here as bytes; what it holds is
//! the snapshot publisher's business (`crate::cluster_snapshot`).
//!
//! Knows the log's file formats but not gRPC, topics or groups; the broker
//! asks a [`RemotePartition`] to read from an offset, and hands the upload
//! loop (`upload_loop`) its partitions.

pub mod cache;
pub mod checkpoint;
pub mod error;
pub mod manifest;
pub mod remote_read;
pub mod store;
pub mod upload_loop;
pub mod uploader;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::Semaphore;

pub use error::TieringError;
use manifest::{PartitionManifest, Writer};
use store::{ObjectVersion, RemoteStore};
pub use uploader::LocalLog;

use crate::log::ReadOutcome;
use crate::metrics::TieringMetrics;

/// Tiering settings of a broker.
#[derive(Debug, Clone)]
pub struct TieringSettings {
    /// Object store URL.
    pub url: String,
    /// Cache sizes and directory.
    pub cache: cache::CacheSettings,
    /// Size of ranged reads from the bucket.
    pub chunk_bytes: u64,
    /// Remote reads running at once (the rest wait, produce never does).
    pub read_concurrency: usize,
    /// How often the uploader looks for sealed segments.
    pub upload_interval: Duration,
    /// Longest back-off between failed upload rounds.
    pub max_backoff: Duration,
    /// Unlisted segment objects younger than this are not swept as orphans.
    pub orphan_min_age: Duration,
    /// This broker's id.
    pub broker_id: u32,
}

/// What `/readyz` and the logs say about tiering.
#[derive(Debug, Clone, Default)]
pub struct TieringStatus {
    /// Sealed segments waiting for upload.
    pub backlog_segments: u64,
    /// Their bytes.
    pub backlog_bytes: u64,
    /// Last error of an upload round, if the last round failed.
    pub last_error: Option<String>,
    /// Partitions fenced by another writer.
    pub fenced: Vec<String>,
}

impl TieringStatus {
    /// True when uploads are failing or a partition is fenced.
    pub fn degraded(&self) -> bool {
        self.last_error.is_some() || !self.fenced.is_empty()
    }
}

/// The broker's tiering service: store, caches, limits, metrics, status.
#[derive(Debug)]
pub struct Tiering {
    /// The object store.
    pub store: RemoteStore,
    /// Settings.
    pub settings: TieringSettings,
    /// This broker run's identity in manifests.
    pub writer: Writer,
    caches: cache::RemoteCaches,
    read_limit: Semaphore,
    /// Metrics.
    pub metrics: TieringMetrics,
    status: Mutex<TieringStatus>,
}

impl Tiering {
    /// Opens the store and builds the caches.
    pub async fn open(
        settings: TieringSettings,
        metrics: TieringMetrics,
    ) -> Result<Arc<Self>, TieringError> {
        let store = RemoteStore::open(&settings.url)?;
        let caches = cache::RemoteCaches::open(&settings.cache).await?;
        Ok(Arc::new(Tiering {
            store,
            writer: Writer {
                broker_id: settings.broker_id,
                epoch: chrono::Utc::now().timestamp_millis(),
            },
            caches,
            read_limit: Semaphore::new(settings.read_concurrency.max(1)),
            metrics,
            status: Mutex::new(TieringStatus::default()),
            settings,
        }))
    }

    /// Current status.
    pub fn status(&self) -> TieringStatus {
        self.status.lock().clone()
    }

    /// Records the outcome of an upload round.
    fn set_status(&self, status: TieringStatus) {
        self.metrics
            .upload_backlog_segments
            .set(status.backlog_segments as i64);
        self.metrics
            .upload_backlog_bytes
            .set(status.backlog_bytes as i64);
        self.metrics.degraded.set(i64::from(status.degraded()));
        *self.status.lock() = status;
    }

    /// Stores the cluster snapshot's bytes (`cluster.json`).
    pub async fn put_cluster_snapshot(&self, bytes: bytes::Bytes) -> Result<(), TieringError> {
        self.store.put(manifest::CLUSTER_KEY, bytes).await
    }

    /// Stops uploads of a deleted topic's partitions (waiting out a round
    /// in flight), then deletes every object of that topic incarnation.
    pub async fn delete_topic(
        &self,
        topic: &str,
        incarnation: i64,
        parts: &[Arc<RemotePartition>],
    ) {
        for rp in parts {
            let _round = rp.upload_lock.lock().await;
            rp.state.write().fenced = Some("the topic was deleted".into());
        }
        match uploader::delete_topic_objects(self, topic, incarnation).await {
            Ok(n) => {
                tracing::info!(
                    topic,
                    objects = n,
                    "deleted the topic's objects from the bucket"
                )
            }
            Err(e) => {
                tracing::warn!(topic, error = %e, "could not delete the topic's objects from the bucket")
            }
        }
    }

    /// Flushes caches at shutdown.
    pub async fn close(&self) {
        self.caches.close().await;
    }
}

/// The cluster snapshot's bytes in a store, if there are any.
pub async fn get_cluster_snapshot(
    store: &RemoteStore,
) -> Result<Option<bytes::Bytes>, TieringError> {
    Ok(store
        .get(manifest::CLUSTER_KEY)
        .await?
        .map(|(bytes, _)| bytes))
}

/// What a partition knows of its remote part.
#[derive(Debug, Clone)]
pub struct RemoteState {
    /// False until the manifest was read from the bucket.
    pub loaded: bool,
    /// The manifest as last read or written.
    pub manifest: Arc<PartitionManifest>,
    /// Its version, for the next conditional write (`None`: not in the bucket yet).
    pub version: Option<ObjectVersion>,
    /// Set when another writer changed the manifest: uploads stop.
    pub fenced: Option<String>,
}

/// The remote side of one partition.
#[derive(Debug)]
pub struct RemotePartition {
    tiering: Arc<Tiering>,
    /// Topic name.
    pub topic: String,
    /// Topic incarnation (creation ms).
    pub incarnation: i64,
    /// Partition number.
    pub partition: u32,
    /// The partition's local directory (holds the remote state checkpoint).
    dir: PathBuf,
    state: RwLock<RemoteState>,
    /// Serialises upload rounds of this partition.
    upload_lock: tokio::sync::Mutex<()>,
}

/// How a read below the local log start is answered.
#[derive(Debug)]
pub enum RemoteRead {
    /// Batches from the bucket.
    Served(ReadOutcome),
    /// The bucket's next data starts at or after the local start: read
    /// locally from there.
    ReadLocally,
    /// The bucket does not hold the offset.
    NotHeld,
}

/// Remote numbers of a partition, for describe.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoteStats {
    /// First offset in the bucket (-1: none).
    pub start_offset: i64,
    /// Offset after the last record in the bucket (-1: none).
    pub end_offset: i64,
    /// Bytes in the bucket.
    pub size_bytes: u64,
    /// Segments in the bucket.
    pub segments: u32,
}

impl RemotePartition {
    /// A partition whose manifest is not loaded yet; `dir` is its local
    /// directory.
    pub fn new(
        tiering: &Arc<Tiering>,
        topic: &str,
        incarnation: i64,
        partition: u32,
        dir: PathBuf,
    ) -> Self {
        let writer = tiering.writer;
        RemotePartition {
            tiering: Arc::clone(tiering),
            topic: topic.to_string(),
            incarnation,
            partition,
            dir,
            state: RwLock::new(RemoteState {
                loaded: false,
                manifest: Arc::new(PartitionManifest::new(
                    topic,
                    incarnation,
                    partition,
                    writer,
                )),
                version: None,
                fenced: None,
            }),
            upload_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Name for logs: `topic/partition`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.topic, self.partition)
    }

    /// Key of the manifest.
    pub fn manifest_key(&self) -> String {
        manifest::manifest_key(&self.topic, self.incarnation, self.partition)
    }

    /// Copy of the state.
    pub fn state(&self) -> RemoteState {
        self.state.read().clone()
    }

    fn set_state(&self, state: RemoteState) {
        *self.state.write() = state;
    }

    /// Reads the manifest from the bucket (at start, or when a topic is
    /// created); on failure the upload loop retries. `local_start` is the
    /// first offset on local disk (to tell whether the log start moved).
    pub async fn load(&self, local_start: i64) -> Result<(), TieringError> {
        uploader::load_manifest(&self.tiering, self, local_start).await
    }

    /// Reads from `offset`, which is below `local_start`: from the remote
    /// segment holding it, at most the rest of that segment.
    pub async fn read(
        &self,
        offset: i64,
        local_start: i64,
        visible_end: i64,
        max_bytes: usize,
    ) -> Result<RemoteRead, TieringError> {
        let seg = {
            let s = self.state.read();
            match s.manifest.start_offset() {
                Some(start) if offset >= start => s.manifest.segment_for(offset).cloned(),
                _ => None,
            }
        };
        match seg {
            None => Ok(RemoteRead::NotHeld),
            // A gap between bucket and local disk: continue locally.
            Some(seg) if seg.base_offset >= local_start => Ok(RemoteRead::ReadLocally),
            Some(seg) => self
                .tiering
                .read(&self.label(), &seg, offset, visible_end, max_bytes)
                .await
                .map(RemoteRead::Served),
        }
    }

    /// First record with timestamp >= `ts` in the remote segments below
    /// `local_start` (older data than local disk holds).
    pub async fn find_timestamp(
        &self,
        ts: i64,
        local_start: i64,
    ) -> Result<Option<(i64, i64)>, TieringError> {
        let m = self.manifest();
        for seg in m
            .segments
            .iter()
            .filter(|s| s.base_offset < local_start && s.max_timestamp >= ts)
        {
            if let Some(found) = self.tiering.find_timestamp(&self.label(), seg, ts).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The manifest (cheap clone).
    pub fn manifest(&self) -> Arc<PartitionManifest> {
        Arc::clone(&self.state.read().manifest)
    }

    /// Offset up to which the log is durably in the bucket (`None`: nothing
    /// uploaded, or not known yet).
    pub fn uploaded_end(&self) -> Option<i64> {
        let s = self.state.read();
        if !s.loaded {
            return None;
        }
        s.manifest.end_offset()
    }

    /// First remote offset.
    pub fn start_offset(&self) -> Option<i64> {
        self.state.read().manifest.start_offset()
    }

    /// Numbers for describe and metrics.
    pub fn stats(&self) -> RemoteStats {
        let s = self.state.read();
        let m = &s.manifest;
        RemoteStats {
            start_offset: m.start_offset().unwrap_or(-1),
            end_offset: m.end_offset().unwrap_or(-1),
            size_bytes: m.total_bytes(),
            segments: m.segments.len() as u32,
        }
    }
}

/// Default directory of the `file://` store: beside the data directory,
/// named after it with `-bucket` (`./tidelog-data` → `./tidelog-data-bucket`).
pub fn default_bucket_dir(data_dir: &std::path::Path) -> PathBuf {
    let abs = if data_dir.is_absolute() {
        data_dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(data_dir))
            .unwrap_or_else(|_| data_dir.to_path_buf())
    };
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tidelog-data".into());
    abs.with_file_name(format!("{name}-bucket"))
}
