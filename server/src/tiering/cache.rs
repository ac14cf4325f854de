//! Caches of remote data: segment chunks in a `foyer` hybrid cache (memory
//! plus a local-disk tier), offset and time indexes in `moka`.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use foyer::{BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder};

use super::error::TieringError;
use crate::log::index::{OffsetIndex, TimeIndex};

/// Sizes of the caches.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Bytes of chunks kept in memory.
    pub memory_bytes: usize,
    /// Bytes of chunks kept on local disk (0: memory only).
    pub disk_bytes: usize,
    /// Directory of the disk tier.
    pub dir: std::path::PathBuf,
    /// Indexes kept in memory (count).
    pub index_entries: u64,
}

/// Chunk cache (foyer) and index caches (moka).
#[derive(Clone)]
pub struct RemoteCaches {
    chunks: HybridCache<String, Bytes>,
    /// Chunk keys inserted by read-ahead and not yet read: a hit on one
    /// counts as a prefetch hit.
    prefetched: moka::future::Cache<String, ()>,
    /// Offset indexes by object key.
    pub offset_indexes: moka::future::Cache<String, Arc<OffsetIndex>>,
    /// Time indexes by object key.
    pub time_indexes: moka::future::Cache<String, Arc<TimeIndex>>,
}

impl std::fmt::Debug for RemoteCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCaches").finish_non_exhaustive()
    }
}

impl RemoteCaches {
    /// Builds the caches; the disk tier lives in `settings.dir`.
    pub async fn open(settings: &CacheSettings) -> Result<Self, TieringError> {
        let builder = HybridCacheBuilder::new()
            .with_name("tidelog-remote-chunks")
            .memory(settings.memory_bytes.max(1))
            .with_weighter(|_k: &String, v: &Bytes| v.len().max(1))
            .storage();
        let chunks = if settings.disk_bytes > 0 {
            let dir: &Path = &settings.dir;
            std::fs::create_dir_all(dir).map_err(|e| TieringError::io(dir, e))?;
            let device = FsDeviceBuilder::new(dir)
                .with_capacity(settings.disk_bytes)
                .build()
                .map_err(|e| TieringError::Cache(e.to_string()))?;
            builder
                .with_engine_config(BlockEngineConfig::new(device))
                .build()
                .await
        } else {
            builder.build().await
        }
        .map_err(|e| TieringError::Cache(e.to_string()))?;
        Ok(RemoteCaches {
            chunks,
            prefetched: moka::future::Cache::new(4096),
            offset_indexes: moka::future::Cache::new(settings.index_entries),
            time_indexes: moka::future::Cache::new(settings.index_entries),
        })
    }

    /// A cached chunk, and whether it came from read-ahead.
    pub async fn get(&self, key: &str) -> Option<(Bytes, bool)> {
        match self.chunks.get(key).await {
            Ok(Some(e)) => {
                let prefetched = self.prefetched.remove(key).await.is_some();
                Some((e.value().clone(), prefetched))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(error = %e, "chunk cache read failed; reading the bucket");
                None
            }
        }
    }

    /// Whether a chunk is cached (without touching read-ahead accounting).
    pub fn contains(&self, key: &str) -> bool {
        self.chunks.contains(key)
    }

    /// Caches a chunk.
    pub async fn insert(&self, key: String, value: Bytes, from_prefetch: bool) {
        if from_prefetch {
            self.prefetched.insert(key.clone(), ()).await;
        }
        self.chunks.insert(key, value);
    }

    /// Flushes and closes the disk tier.
    pub async fn close(&self) {
        if let Err(e) = self.chunks.close().await {
            tracing::debug!(error = %e, "closing the chunk cache failed");
        }
    }
}
