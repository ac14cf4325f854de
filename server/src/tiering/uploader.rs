//! Upload of sealed segments and remote retention, one partition at a time.
//!
//! Order of an upload: the `.index` and `.timeindex` objects, then the
//! `.log` object (multipart when large), then the manifest with a
//! conditional put. Only the manifest makes a segment visible, so a crash
//! or error half-way leaves at most orphan objects under a deterministic
//! key that the retry overwrites with the same bytes. Remote retention
//! writes the shortened manifest first and deletes objects after.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use tidelog_proto::batch::{BatchHeader, HEADER_LEN};

use super::checkpoint::{self, RemoteCheckpoint};
use super::error::TieringError;
use super::manifest::{segment_stem, PartitionManifest, RemoteSegment};
use super::{RemotePartition, RemoteState, Tiering};
use crate::log::{LogConfig, SealedSegment};

/// Outcome of one partition's upload round.
#[derive(Debug, Default)]
pub(super) struct PartitionSync {
    /// Sealed segments still waiting.
    pub backlog_segments: u64,
    /// Their bytes.
    pub backlog_bytes: u64,
    /// Offsets sealed locally but not in the bucket.
    pub lag_offsets: i64,
    /// Segments uploaded in this round.
    pub uploaded: u64,
    /// Why the round stopped early.
    pub error: Option<TieringError>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Reads a partition's manifest from the bucket into its state, and
/// compares it with what this broker knew before (its checkpoint): a
/// manifest this broker wrote that is gone, or a log start that moved
/// forward without retention, is data lost from the bucket (logged as an
/// error and counted, never silent).
pub(super) async fn load_manifest(
    t: &Tiering,
    rp: &RemotePartition,
    local_start: i64,
) -> Result<(), TieringError> {
    let key = rp.manifest_key();
    let before = checkpoint::read(&rp.dir).await;
    let state = match t.store.get(&key).await? {
        Some((bytes, version)) => {
            let m = PartitionManifest::decode(&key, &bytes)?;
            RemoteState {
                loaded: true,
                manifest: Arc::new(m),
                version: Some(version),
                fenced: None,
            }
        }
        None => {
            if let Some(cp) = before.filter(|cp| cp.had_manifest) {
                report_lost_manifest(t, rp, cp.start_offset, cp.end_offset);
            }
            empty_state(t, rp)
        }
    };
    let now_start = state
        .manifest
        .start_offset()
        .map_or(local_start, |s| s.min(local_start));
    if let Some((old, new)) =
        checkpoint::unexpected_start_move(before.and_then(|cp| cp.start_offset), now_start)
    {
        report_start_move(t, rp, old, new);
    }
    let cp = if state.version.is_some() {
        RemoteCheckpoint::of(&state.manifest)
    } else {
        RemoteCheckpoint::default()
    };
    rp.set_state(state);
    save_checkpoint(rp, cp).await;
    Ok(())
}

/// A loaded state with an empty manifest not yet in the bucket.
fn empty_state(t: &Tiering, rp: &RemotePartition) -> RemoteState {
    RemoteState {
        loaded: true,
        manifest: Arc::new(PartitionManifest::new(
            &rp.topic,
            rp.incarnation,
            rp.partition,
            t.writer,
        )),
        version: None,
        fenced: None,
    }
}

/// The checkpoint is advisory (only loss detection reads it): failing to
/// write it must not stop uploads.
async fn save_checkpoint(rp: &RemotePartition, cp: RemoteCheckpoint) {
    if let Err(e) = checkpoint::write(&rp.dir, cp).await {
        tracing::warn!(partition = %rp.label(), error = %e, "could not record the remote state checkpoint");
    }
}

/// Logs and counts a manifest this broker wrote that the bucket no longer
/// has; returns the error to report.
fn report_lost_manifest(
    t: &Tiering,
    rp: &RemotePartition,
    start: Option<i64>,
    end: Option<i64>,
) -> TieringError {
    let lost = match (start, end) {
        (Some(s), Some(e)) => format!("{s}..{e}"),
        (None, Some(e)) => format!("below {e}"),
        _ => "(none)".to_string(),
    };
    let e = TieringError::BucketLost {
        partition: rp.label(),
        key: rp.manifest_key(),
        url: t.store.url().to_string(),
        lost,
    };
    t.metrics.remote_missing.inc();
    tracing::error!(partition = %rp.label(), error = %e, "the manifest is missing from the bucket");
    e
}

/// Logs and counts a log start that moved forward not by retention.
fn report_start_move(t: &Tiering, rp: &RemotePartition, old: i64, new: i64) {
    t.metrics.log_start_moved.inc();
    tracing::error!(
        partition = %rp.label(),
        old_start = old,
        new_start = new,
        "the log start moved from {old} to {new}, not by retention: the bucket lost offsets {old}..{new} (they can no longer be read)"
    );
}

/// Why a conditional manifest write lost, as the fencing message says it:
/// who wrote the manifest that is there now.
fn other_writer(t: &Tiering, key: &str, bytes: &[u8]) -> String {
    let url = t.store.url();
    match PartitionManifest::decode(key, bytes) {
        Ok(m) if m.writer.broker_id != t.writer.broker_id => format!(
            "it was last written by broker {} (this is broker {}): another broker or cluster uses the same bucket prefix {url}",
            m.writer.broker_id, t.writer.broker_id
        ),
        Ok(m) => format!(
            "it was last written by another process with this broker's id {} (started at {} ms; this one at {} ms): a second broker with the same id, or a restored copy, uses the same bucket prefix {url}",
            m.writer.broker_id, m.writer.epoch, t.writer.epoch
        ),
        Err(e) => format!("it no longer decodes as a manifest ({e}): something else writes under the bucket prefix {url}"),
    }
}

/// CRC32C of a file's first `size` bytes and the first batch's timestamp.
async fn checksum(file: Arc<std::fs::File>, size: u64) -> Result<(u32, i64), std::io::Error> {
    tokio::task::spawn_blocking(move || {
        let mut crc = 0u32;
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = 0u64;
        while pos < size {
            let n = ((size - pos) as usize).min(buf.len());
            file.read_exact_at(&mut buf[..n], pos)?;
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            pos += n as u64;
        }
        let mut hb = [0u8; HEADER_LEN];
        let first_ts = if size >= HEADER_LEN as u64 {
            file.read_exact_at(&mut hb, 0)?;
            BatchHeader::parse(&hb).map_or(-1, |h| h.first_timestamp)
        } else {
            -1
        };
        Ok((crc, first_ts))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Uploads one segment's objects; returns its manifest entry.
async fn upload_segment(
    t: &Tiering,
    rp: &RemotePartition,
    seg: &SealedSegment,
) -> Result<RemoteSegment, TieringError> {
    let (crc, first_timestamp) = checksum(Arc::clone(&seg.file), seg.size)
        .await
        .map_err(|e| TieringError::io(std::path::Path::new(&rp.label()), e))?;
    let key = segment_stem(
        &rp.topic,
        rp.incarnation,
        rp.partition,
        seg.base_offset,
        seg.next_offset,
        crc,
    );
    let entry = RemoteSegment {
        base_offset: seg.base_offset,
        end_offset: seg.next_offset,
        first_timestamp,
        max_timestamp: seg.max_timestamp,
        size_bytes: seg.size,
        crc32c: crc,
        index_bytes: seg.index.len() as u64,
        time_index_bytes: seg.time_index.len() as u64,
        key,
        writer_epoch: t.writer.epoch,
        uploaded_ms: now_ms(),
    };
    t.store
        .put(&entry.index_key(), Bytes::from(seg.index.clone()))
        .await?;
    t.store
        .put(&entry.time_index_key(), Bytes::from(seg.time_index.clone()))
        .await?;
    t.store
        .put_file(&entry.log_key(), Arc::clone(&seg.file), seg.size)
        .await?;
    Ok(entry)
}

/// Writes `next` as the partition's manifest, conditional on the version
/// last seen. When the write loses, the bucket is asked why: the manifest
/// is gone (the bucket lost the partition's data: start over from the
/// local segments) or another writer changed it (fenced).
async fn commit(
    t: &Tiering,
    rp: &RemotePartition,
    state: &RemoteState,
    mut next: PartitionManifest,
    local_start: i64,
) -> Result<RemoteState, TieringError> {
    next.writer = t.writer;
    next.updated_ms = now_ms();
    let key = rp.manifest_key();
    // Recorded before the write: a start moved by this broker's retention
    // is then never mistaken for loss, even if the broker dies right after.
    save_checkpoint(
        rp,
        RemoteCheckpoint {
            had_manifest: state.version.is_some(),
            ..RemoteCheckpoint::of(&next)
        },
    )
    .await;
    let err = match t
        .store
        .put_conditional(&key, Bytes::from(next.encode()), state.version.as_ref())
        .await
    {
        Ok(version) => {
            let s = RemoteState {
                loaded: true,
                manifest: Arc::new(next),
                version: Some(version),
                fenced: None,
            };
            rp.set_state(s.clone());
            if state.version.is_none() {
                save_checkpoint(rp, RemoteCheckpoint::of(&s.manifest)).await;
            }
            return Ok(s);
        }
        // S3 answers a conditional update of a deleted object with 404 or
        // 412, depending on the server.
        Err(e) if matches!(e, TieringError::Fenced { .. }) || e.is_not_found() => e,
        Err(e) => return Err(e),
    };
    let e = match t.store.get(&key).await? {
        None if state.version.is_some() => {
            let e = report_lost_manifest(
                t,
                rp,
                state.manifest.start_offset(),
                state.manifest.end_offset(),
            );
            if let Some(old) = state.manifest.start_offset() {
                if local_start > old {
                    report_start_move(t, rp, old, local_start);
                }
            }
            // Uploads start again from the local segments under a fresh
            // manifest; local retention keeps them until they are listed.
            rp.set_state(empty_state(t, rp));
            save_checkpoint(rp, RemoteCheckpoint::default()).await;
            return Err(e);
        }
        Some((bytes, _)) => TieringError::Fenced {
            key: key.clone(),
            detail: other_writer(t, &key, &bytes),
        },
        None => err,
    };
    let mut s = state.clone();
    s.fenced = Some(e.to_string());
    rp.set_state(s);
    tracing::error!(partition = %rp.label(), error = %e, "manifest write fenced; uploads of this partition stop");
    Err(e)
}

/// What a partition offers the uploader.
pub trait LocalLog: Send + Sync {
    /// Its config.
    fn log_config(&self) -> LogConfig;
    /// Sealed segments ending after `after`.
    fn sealed_after(&self, after: Option<i64>) -> Vec<SealedSegment>;
    /// Local bytes from `offset` on.
    fn bytes_from(&self, offset: i64) -> u64;
    /// First offset on local disk.
    fn local_start_offset(&self) -> i64;
}

/// One upload round of a partition: load the manifest if needed, upload
/// pending sealed segments oldest first, then apply remote retention.
pub(super) async fn sync_partition(
    t: &Tiering,
    rp: &RemotePartition,
    log: &dyn LocalLog,
    retention: bool,
) -> PartitionSync {
    let _round = rp.upload_lock.lock().await;
    let cfg = log.log_config();
    let mut out = PartitionSync::default();
    if !rp.state().loaded {
        if let Err(e) = load_manifest(t, rp, log.local_start_offset()).await {
            let pending = log.sealed_after(None);
            out.backlog_segments = pending.len() as u64;
            out.backlog_bytes = pending.iter().map(|s| s.size).sum();
            out.error = Some(e);
            return out;
        }
    }
    let mut state = rp.state();
    let pending = if cfg.remote_storage_enable {
        log.sealed_after(state.manifest.end_offset())
    } else {
        Vec::new()
    };
    out.backlog_segments = pending.len() as u64;
    out.backlog_bytes = pending.iter().map(|s| s.size).sum();
    out.lag_offsets = match (pending.last(), state.manifest.end_offset()) {
        (Some(last), Some(end)) => last.next_offset - end,
        (Some(last), None) => last.next_offset - pending[0].base_offset,
        _ => 0,
    };
    if let Some(why) = &state.fenced {
        out.error = Some(TieringError::Fenced {
            key: rp.manifest_key(),
            detail: why.clone(),
        });
        return out;
    }
    for seg in &pending {
        let entry = match upload_segment(t, rp, seg).await {
            Ok(e) => e,
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        };
        let mut next = (*state.manifest).clone();
        if let Err(detail) = next.push(entry) {
            // The bucket holds offsets this log also has, written by someone
            // else: this broker's log diverged from the bucket.
            let e = TieringError::Fenced {
                key: rp.manifest_key(),
                detail: format!("the local log diverges from the bucket: {detail}"),
            };
            let mut s = state.clone();
            s.fenced = Some(e.to_string());
            rp.set_state(s);
            tracing::error!(partition = %rp.label(), error = %e, "uploads of this partition stop");
            out.error = Some(e);
            return out;
        }
        state = match commit(t, rp, &state, next, log.local_start_offset()).await {
            Ok(s) => s,
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        };
        t.metrics.uploaded_segments.inc();
        t.metrics.uploaded_bytes.inc_by(seg.size);
        out.uploaded += 1;
        out.backlog_segments -= 1;
        out.backlog_bytes -= seg.size;
        out.lag_offsets = (out.lag_offsets - (seg.next_offset - seg.base_offset)).max(0);
        tracing::debug!(partition = %rp.label(), base = seg.base_offset, end = seg.next_offset, "uploaded segment");
    }
    if retention {
        if let Err(e) = remote_retention(t, rp, &state, &cfg, log).await {
            out.error = Some(e);
            return out;
        }
        if let Err(e) = sweep_orphans(t, rp).await {
            out.error = Some(e);
        }
    }
    out
}

/// Drops expired segments from the manifest (written first), then deletes
/// their objects.
async fn remote_retention(
    t: &Tiering,
    rp: &RemotePartition,
    state: &RemoteState,
    cfg: &LogConfig,
    log: &dyn LocalLog,
) -> Result<(), TieringError> {
    let m = &state.manifest;
    let Some(end) = m.end_offset() else {
        return Ok(());
    };
    let now = now_ms();
    let mut total = m.total_bytes() + log.bytes_from(end);
    let mut drop = 0;
    for s in &m.segments {
        let expired = cfg.retention_ms >= 0
            && s.max_timestamp >= 0
            && now.saturating_sub(s.max_timestamp) > cfg.retention_ms;
        let over = cfg.retention_bytes >= 0
            && total > cfg.retention_bytes as u64
            && total.saturating_sub(s.size_bytes) >= cfg.retention_bytes as u64;
        if !(expired || over) {
            break;
        }
        total -= s.size_bytes;
        drop += 1;
    }
    if drop == 0 {
        return Ok(());
    }
    let mut next = (**m).clone();
    let removed: Vec<RemoteSegment> = next.segments.drain(..drop).collect();
    commit(t, rp, state, next, log.local_start_offset()).await?;
    for s in &removed {
        for key in [s.log_key(), s.index_key(), s.time_index_key()] {
            if let Err(e) = t.store.delete(&key).await {
                tracing::warn!(%key, error = %e, "could not delete an expired remote object; it is an orphan now");
            }
        }
        t.metrics.remote_deleted_segments.inc();
    }
    tracing::info!(partition = %rp.label(), segments = removed.len(), "remote retention removed segments");
    Ok(())
}

/// Deletes segment objects the manifest does not list and that are older
/// than `orphan_min_age` (uploads that died before their manifest write,
/// deletes that failed after remote retention). The age guard leaves alone
/// an upload another process may have in flight.
async fn sweep_orphans(t: &Tiering, rp: &RemotePartition) -> Result<(), TieringError> {
    let state = rp.state();
    if !state.loaded || state.fenced.is_some() {
        return Ok(());
    }
    let prefix = format!(
        "{}/segments/",
        super::manifest::partition_prefix(&rp.topic, rp.incarnation, rp.partition)
    );
    let listed: std::collections::HashSet<&str> = state
        .manifest
        .segments
        .iter()
        .map(|s| s.key.as_str())
        .collect();
    let cutoff = now_ms() - t.settings.orphan_min_age.as_millis() as i64;
    let mut removed = 0;
    for (key, modified) in t.store.list(&prefix).await? {
        let stem = key
            .strip_suffix(".log")
            .or_else(|| key.strip_suffix(".index"))
            .or_else(|| key.strip_suffix(".timeindex"))
            .unwrap_or(&key);
        if listed.contains(stem) || modified > cutoff {
            continue;
        }
        t.store.delete(&key).await?;
        removed += 1;
    }
    if removed > 0 {
        tracing::info!(partition = %rp.label(), objects = removed, "removed orphan objects from the bucket");
    }
    Ok(())
}

/// Deletes every object of a topic incarnation (after the topic was deleted).
pub(super) async fn delete_topic_objects(
    t: &Tiering,
    topic: &str,
    incarnation: i64,
) -> Result<usize, TieringError> {
    let prefix = format!("topics/{topic}/{incarnation}/");
    let keys = t.store.list(&prefix).await?;
    for (key, _) in &keys {
        t.store.delete(key).await?;
    }
    Ok(keys.len())
}
