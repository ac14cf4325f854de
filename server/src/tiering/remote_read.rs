//! Reads of remote segments: ranged chunks of the `.log` object through the
//! chunk cache, with read-ahead of the next chunk for sequential readers,
//! and indexes through moka. Which batches to serve, and their CRC checks,
//! are the log's batch reader (`log::batch_read`), the same as for local
//! segments: this module only supplies the bytes.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::error::TieringError;
use super::manifest::RemoteSegment;
use super::Tiering;
use crate::log::batch_read::{self, DamagedBatch, ReadOutcome, SegmentBytes};
use crate::log::index::IndexFile;

fn corrupt(seg: &RemoteSegment, detail: String) -> TieringError {
    TieringError::Corrupt {
        key: seg.log_key(),
        detail,
    }
}

impl Tiering {
    fn chunk_key(seg: &RemoteSegment, idx: u64) -> String {
        format!("{}#{idx}", seg.log_key())
    }

    fn chunk_range(&self, seg: &RemoteSegment, idx: u64) -> std::ops::Range<u64> {
        let c = self.settings.chunk_bytes.max(4096);
        let start = idx * c;
        start..(start + c).min(seg.size_bytes)
    }

    async fn fetch_chunk(&self, seg: &RemoteSegment, idx: u64) -> Result<Bytes, TieringError> {
        let range = self.chunk_range(seg, idx);
        let started = Instant::now();
        let bytes = self.store.get_range(&seg.log_key(), range.clone()).await?;
        self.metrics
            .remote_read_latency
            .observe(started.elapsed().as_secs_f64());
        self.metrics.remote_read_bytes.inc_by(bytes.len() as u64);
        if bytes.len() as u64 != range.end - range.start {
            self.metrics.remote_corrupt.inc();
            return Err(corrupt(
                seg,
                format!(
                    "ranged read of {range:?} returned {} bytes; the object is shorter than the manifest says",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    /// One chunk, from the cache or the bucket.
    async fn chunk(&self, seg: &RemoteSegment, idx: u64) -> Result<Bytes, TieringError> {
        let key = Self::chunk_key(seg, idx);
        if let Some((bytes, prefetched)) = self.caches.get(&key).await {
            self.metrics.record_cache(true);
            if prefetched {
                self.metrics.prefetch_hits.inc();
            }
            return Ok(bytes);
        }
        self.metrics.record_cache(false);
        let bytes = self.fetch_chunk(seg, idx).await?;
        self.caches.insert(key, bytes.clone(), false).await;
        Ok(bytes)
    }

    /// Starts loading chunk `idx` into the cache in the background.
    fn prefetch(self: &Arc<Self>, seg: &RemoteSegment, idx: u64) {
        if idx * self.settings.chunk_bytes.max(4096) >= seg.size_bytes {
            return;
        }
        let key = Self::chunk_key(seg, idx);
        if self.caches.contains(&key) {
            return;
        }
        let this = Arc::clone(self);
        let seg = seg.clone();
        tokio::spawn(async move {
            let Ok(_permit) = this.read_limit.acquire().await else {
                return;
            };
            if let Ok(bytes) = this.fetch_chunk(&seg, idx).await {
                this.caches.insert(key, bytes, true).await;
            }
        });
    }

    /// Bytes `[pos, pos + len)` of a remote segment.
    async fn read_at(
        &self,
        seg: &RemoteSegment,
        pos: u64,
        len: u64,
    ) -> Result<Bytes, TieringError> {
        let end = pos + len;
        if end > seg.size_bytes {
            return Err(corrupt(
                seg,
                format!(
                    "a batch reaches byte {end} but the segment has {} bytes",
                    seg.size_bytes
                ),
            ));
        }
        let c = self.settings.chunk_bytes.max(4096);
        let (first, last) = (pos / c, (end.max(pos + 1) - 1) / c);
        if first == last {
            let chunk = self.chunk(seg, first).await?;
            let off = (pos - first * c) as usize;
            return Ok(chunk.slice(off..off + len as usize));
        }
        let mut out = BytesMut::with_capacity(len as usize);
        for idx in first..=last {
            let chunk = self.chunk(seg, idx).await?;
            let cs = idx * c;
            let from = pos.max(cs) - cs;
            let to = end.min(cs + chunk.len() as u64) - cs;
            out.extend_from_slice(&chunk[from as usize..to as usize]);
        }
        Ok(out.freeze())
    }

    /// An index object of a segment, through `cache`.
    async fn index<I>(
        &self,
        cache: &moka::future::Cache<String, Arc<I>>,
        key: String,
        len: u64,
        seg: &RemoteSegment,
    ) -> Result<Arc<I>, TieringError>
    where
        I: IndexFile + Send + Sync + 'static,
    {
        cache
            .try_get_with(key.clone(), async {
                let bytes = if len == 0 {
                    Bytes::new()
                } else {
                    self.store.get_range(&key, 0..len).await?
                };
                let max_rel = u32::try_from(seg.end_offset - seg.base_offset).unwrap_or(u32::MAX);
                I::parse(&bytes, seg.size_bytes, max_rel)
                    .map(Arc::new)
                    .ok_or_else(|| TieringError::Corrupt {
                        key: key.clone(),
                        detail: format!("{} does not validate", I::KIND),
                    })
            })
            .await
            .map_err(|e: Arc<TieringError>| self.unwrap_shared(e))
    }

    fn unwrap_shared(&self, e: Arc<TieringError>) -> TieringError {
        match Arc::try_unwrap(e) {
            Ok(e) => e,
            Err(e) => match &*e {
                TieringError::Corrupt { key, detail } => TieringError::Corrupt {
                    key: key.clone(),
                    detail: detail.clone(),
                },
                // A missing object must stay a missing object (data loss),
                // not become a retriable "not loaded".
                shared @ TieringError::Store { op, key, .. } if shared.is_not_found() => {
                    TieringError::Store {
                        op,
                        key: key.clone(),
                        source: object_store::Error::NotFound {
                            path: key.clone(),
                            source: "object not found".into(),
                        },
                    }
                }
                other => TieringError::NotLoaded(other.to_string()),
            },
        }
    }

    /// Runs a remote read of `seg` (of `partition`) under a permit of the
    /// read semaphore; corruption and missing objects on its way out are
    /// counted and logged. The store saying "not found" for an object the
    /// manifest lists is data loss, not an outage: retrying cannot bring
    /// the object back.
    async fn guarded<T>(
        &self,
        partition: &str,
        seg: &RemoteSegment,
        read: impl std::future::Future<Output = Result<T, TieringError>>,
    ) -> Result<T, TieringError> {
        let _permit = self
            .read_limit
            .acquire()
            .await
            .map_err(|_| TieringError::NotLoaded("remote reads are closed".into()))?;
        let result = read.await.map_err(|e| match e {
            TieringError::Store { key, .. } if e.is_not_found() => TieringError::Missing {
                partition: partition.to_string(),
                key,
                from: seg.base_offset,
                to: seg.end_offset,
            },
            e => e,
        });
        match &result {
            Err(TieringError::Corrupt { key, detail }) => {
                self.metrics.remote_corrupt.inc();
                tracing::error!(%partition, %key, %detail, "remote segment is corrupt");
            }
            Err(e @ TieringError::Missing { key, .. }) => {
                self.metrics.remote_missing.inc();
                tracing::error!(%partition, %key, error = %e, "an object the manifest lists is missing from the bucket");
            }
            _ => {}
        }
        result
    }

    /// Reads whole batches of a remote segment from `offset`, like a local
    /// fetch (see `log::batch_read`).
    pub(super) async fn read(
        self: &Arc<Self>,
        partition: &str,
        seg: &RemoteSegment,
        offset: i64,
        visible_end: i64,
        max_bytes: usize,
    ) -> Result<ReadOutcome, TieringError> {
        self.guarded(partition, seg, async {
            let caches = &self.caches.offset_indexes;
            let index = self.index(caches, seg.index_key(), seg.index_bytes, seg);
            let rel = u32::try_from((offset - seg.base_offset).max(0)).unwrap_or(u32::MAX);
            let start = u64::from(index.await?.lookup(rel));
            let bytes = RemoteBytes { tiering: self, seg };
            batch_read::read_batches(&bytes, start, None, offset, visible_end, max_bytes).await
        })
        .await
    }

    /// First record with timestamp >= `ts` in a remote segment.
    pub(super) async fn find_timestamp(
        self: &Arc<Self>,
        partition: &str,
        seg: &RemoteSegment,
        ts: i64,
    ) -> Result<Option<(i64, i64)>, TieringError> {
        self.guarded(partition, seg, async {
            let caches = &self.caches.time_indexes;
            let index = self.index(caches, seg.time_index_key(), seg.time_index_bytes, seg);
            let start = u64::from(index.await?.lookup(ts));
            let bytes = RemoteBytes { tiering: self, seg };
            batch_read::find_timestamp(&bytes, start, ts).await
        })
        .await
    }
}

/// A remote segment's bytes, for the log's batch reader.
struct RemoteBytes<'a> {
    tiering: &'a Arc<Tiering>,
    seg: &'a RemoteSegment,
}

impl SegmentBytes for RemoteBytes<'_> {
    type Error = TieringError;

    fn size(&self) -> u64 {
        self.seg.size_bytes
    }

    async fn read_at(&self, pos: u64, len: u64) -> Result<Bytes, TieringError> {
        self.tiering.read_at(self.seg, pos, len).await
    }

    fn damaged(&self, batch: DamagedBatch) -> TieringError {
        corrupt(self.seg, batch.to_string())
    }

    fn read_ahead(&self, end: u64) {
        let c = self.tiering.settings.chunk_bytes.max(4096);
        self.tiering.prefetch(self.seg, end.div_ceil(c));
    }
}
