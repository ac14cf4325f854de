//! Reads of remote segments: ranged chunks of the `.log` object through the
//! chunk cache, with read-ahead of the next chunk for sequential readers,
//! indexes through moka, every batch CRC-checked before it is served.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tidelog_proto::batch::{decode_records, BatchHeader, HEADER_LEN};

use super::error::TieringError;
use super::manifest::RemoteSegment;
use super::Tiering;
use crate::log::index::{OffsetIndex, TimeIndex};
use crate::log::ReadOutcome;

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

    /// Bytes `[pos, pos + len)` of a remote segment; the last chunk index
    /// touched is returned for read-ahead.
    async fn read_at(
        &self,
        seg: &RemoteSegment,
        pos: u64,
        len: u64,
    ) -> Result<(Bytes, u64), TieringError> {
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
            return Ok((chunk.slice(off..off + len as usize), last));
        }
        let mut out = BytesMut::with_capacity(len as usize);
        for idx in first..=last {
            let chunk = self.chunk(seg, idx).await?;
            let cs = idx * c;
            let from = pos.max(cs) - cs;
            let to = end.min(cs + chunk.len() as u64) - cs;
            out.extend_from_slice(&chunk[from as usize..to as usize]);
        }
        Ok((out.freeze(), last))
    }

    async fn offset_index(&self, seg: &RemoteSegment) -> Result<Arc<OffsetIndex>, TieringError> {
        let key = seg.index_key();
        self.caches
            .offset_indexes
            .try_get_with(key.clone(), async {
                let bytes = if seg.index_bytes == 0 {
                    Bytes::new()
                } else {
                    self.store.get_range(&key, 0..seg.index_bytes).await?
                };
                let max_rel = u32::try_from(seg.end_offset - seg.base_offset).unwrap_or(u32::MAX);
                OffsetIndex::from_bytes(&bytes, seg.size_bytes, max_rel)
                    .map(Arc::new)
                    .ok_or_else(|| TieringError::Corrupt {
                        key: key.clone(),
                        detail: "offset index does not validate".into(),
                    })
            })
            .await
            .map_err(|e: Arc<TieringError>| self.unwrap_shared(e))
    }

    async fn time_index(&self, seg: &RemoteSegment) -> Result<Arc<TimeIndex>, TieringError> {
        let key = seg.time_index_key();
        self.caches
            .time_indexes
            .try_get_with(key.clone(), async {
                let bytes = if seg.time_index_bytes == 0 {
                    Bytes::new()
                } else {
                    self.store.get_range(&key, 0..seg.time_index_bytes).await?
                };
                let max_rel = u32::try_from(seg.end_offset - seg.base_offset).unwrap_or(u32::MAX);
                TimeIndex::from_bytes(&bytes, seg.size_bytes, max_rel)
                    .map(Arc::new)
                    .ok_or_else(|| TieringError::Corrupt {
                        key: key.clone(),
                        detail: "time index does not validate".into(),
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
                other => TieringError::NotLoaded(other.to_string()),
            },
        }
    }

    fn parse_header(seg: &RemoteSegment, bytes: &[u8]) -> Result<BatchHeader, TieringError> {
        BatchHeader::parse(bytes).map_err(|e| corrupt(seg, e.to_string()))
    }

    /// Reads whole batches of a remote segment from `offset`, like a local
    /// fetch: at least one batch, otherwise about `max_bytes`, none at or
    /// past `visible_end`. Every batch's CRC is checked.
    pub async fn read(
        self: &Arc<Self>,
        seg: &RemoteSegment,
        offset: i64,
        visible_end: i64,
        max_bytes: usize,
    ) -> Result<ReadOutcome, TieringError> {
        let result = self.read_inner(seg, offset, visible_end, max_bytes).await;
        if let Err(TieringError::Corrupt { key, detail }) = &result {
            self.metrics.remote_corrupt.inc();
            tracing::error!(%key, %detail, "remote segment is corrupt");
        }
        result
    }

    async fn read_inner(
        self: &Arc<Self>,
        seg: &RemoteSegment,
        offset: i64,
        visible_end: i64,
        max_bytes: usize,
    ) -> Result<ReadOutcome, TieringError> {
        let _permit = self
            .read_limit
            .acquire()
            .await
            .map_err(|_| TieringError::NotLoaded("remote reads are closed".into()))?;
        let index = self.offset_index(seg).await?;
        let rel = u32::try_from((offset - seg.base_offset).max(0)).unwrap_or(u32::MAX);
        let mut pos = u64::from(index.lookup(rel));
        let first = loop {
            if pos + HEADER_LEN as u64 > seg.size_bytes {
                return Ok(ReadOutcome::default());
            }
            let (hb, _) = self.read_at(seg, pos, HEADER_LEN as u64).await?;
            let h = Self::parse_header(seg, &hb)?;
            if h.next_offset() > offset {
                break h;
            }
            pos += h.total_len() as u64;
        };
        if first.base_offset >= visible_end {
            return Ok(ReadOutcome::default());
        }
        let want = (first.total_len() as u64).max((max_bytes as u64).min(seg.size_bytes - pos));
        let (buf, last_chunk) = self.read_at(seg, pos, want).await?;
        self.prefetch(seg, last_chunk + 1);
        let mut cut = 0usize;
        let mut records = 0u64;
        let mut next_offset = 0;
        while buf.len() - cut >= HEADER_LEN {
            let h = Self::parse_header(seg, &buf[cut..])?;
            if h.base_offset >= visible_end || cut + h.total_len() > buf.len() {
                break;
            }
            h.verify_crc(&buf[cut..cut + h.total_len()])
                .map_err(|e| corrupt(seg, format!("batch at offset {}: {e}", h.base_offset)))?;
            cut += h.total_len();
            records += u64::from(h.record_count);
            next_offset = h.next_offset();
        }
        Ok(ReadOutcome {
            bytes: buf.slice(..cut),
            records,
            next_offset,
        })
    }

    /// First record with timestamp >= `ts` in a remote segment.
    pub async fn find_timestamp(
        self: &Arc<Self>,
        seg: &RemoteSegment,
        ts: i64,
    ) -> Result<Option<(i64, i64)>, TieringError> {
        let _permit = self
            .read_limit
            .acquire()
            .await
            .map_err(|_| TieringError::NotLoaded("remote reads are closed".into()))?;
        let tindex = self.time_index(seg).await?;
        let mut pos = u64::from(tindex.lookup(ts));
        while pos + HEADER_LEN as u64 <= seg.size_bytes {
            let (hb, _) = self.read_at(seg, pos, HEADER_LEN as u64).await?;
            let h = Self::parse_header(seg, &hb)?;
            if h.max_timestamp >= ts {
                let (batch, _) = self.read_at(seg, pos, h.total_len() as u64).await?;
                h.verify_crc(&batch)
                    .map_err(|e| corrupt(seg, format!("batch at offset {}: {e}", h.base_offset)))?;
                let records =
                    decode_records(&h, &batch).map_err(|e| corrupt(seg, e.to_string()))?;
                if let Some(r) = records.iter().find(|r| r.timestamp >= ts) {
                    return Ok(Some((r.offset, r.timestamp)));
                }
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }
}
