//! A live partition: the log behind a mutex, the group-commit flusher, and
//! the high watermark that readers wait on.
//!
//! Appends write to the page cache under the lock and then (acks=all) wait
//! until the flusher has fsynced past their last offset. The flusher runs
//! one fsync at a time outside the lock, so every batch that arrives during
//! an fsync is covered by the next one (group commit). Readers only see data
//! below the high watermark, which is the durable end of the log: a consumer
//! never sees a record that a crash could take back.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use prometheus::{Histogram, IntCounter};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::error::BrokerError;
use crate::log::segment::OffsetRange;
use crate::log::{
    recovery_point, AppendResult, IncomingBatch, LogConfig, LogError, LogStats, PartitionLog,
    ReadOutcome, RemoteBounds, SealedSegment,
};
use crate::metrics::Metrics;
use crate::tiering::{LocalLog, RemotePartition, RemoteRead, RemoteStats};

/// When a produce is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// After fsync.
    Durable,
    /// After the write to the page cache.
    Written,
}

/// Batches appended but not necessarily durable yet.
#[derive(Debug)]
pub struct Appended {
    /// One result per batch.
    pub results: Vec<AppendResult>,
    /// Log end after the append: durable once the high watermark reaches it.
    pub end: i64,
}

/// A fetch result.
#[derive(Debug, Clone, Default)]
pub struct FetchResult {
    /// What was read.
    pub read: ReadOutcome,
    /// High watermark (durable log end).
    pub high_watermark: i64,
    /// Log start offset.
    pub log_start_offset: i64,
}

/// A partition of a topic.
#[derive(Debug)]
pub struct Partition {
    id: u32,
    /// `topic/partition`, for errors and logs.
    label: String,
    log: Mutex<PartitionLog>,
    /// Offset below which everything is fsynced and readable.
    high_watermark: watch::Sender<i64>,
    /// Set when an fsync failed; the partition refuses writes from then on.
    failed: Mutex<Option<String>>,
    dirty: Notify,
    bytes_in: IntCounter,
    records_in: IntCounter,
    bytes_out: IntCounter,
    records_out: IntCounter,
    fsync_latency: Histogram,
    /// Damaged batches found on this broker's disk.
    local_corrupt: IntCounter,
    /// Bytes the scrub read.
    scrub_bytes: IntCounter,
    /// Damaged ranges the scrub found.
    scrub_damaged: IntCounter,
    /// The remote (bucket) side, when tiering is on.
    remote: Option<Arc<RemotePartition>>,
    /// The log's directory (for the recovery point).
    dir: std::path::PathBuf,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Partition {
    /// Opens the partition's log (recovering it) and makes everything
    /// recovered durable before exposing it.
    pub fn open(
        topic: &str,
        id: u32,
        dir: &std::path::Path,
        config: LogConfig,
        metrics: &Metrics,
        remote: Option<Arc<RemotePartition>>,
        accept_data_loss: bool,
    ) -> Result<Arc<Self>, BrokerError> {
        let log = PartitionLog::open(dir, config, now_ms(), accept_data_loss)?;
        // After a process crash the page cache may hold data not yet on disk:
        // fsync it before readers can see it.
        log.sync_active()?;
        let end = log.log_end_offset();
        recovery_point::write(dir, end)?;
        let damaged = log.damaged_ranges();
        if damaged > 0 {
            metrics.local_corrupt.inc_by(damaged as u64);
        }
        let (high_watermark, _) = watch::channel(end);
        Ok(Arc::new(Partition {
            id,
            label: format!("{topic}/{id}"),
            log: Mutex::new(log),
            high_watermark,
            failed: Mutex::new(None),
            dirty: Notify::new(),
            bytes_in: metrics.bytes_in.with_label_values(&[topic]),
            records_in: metrics.records_in.with_label_values(&[topic]),
            bytes_out: metrics.bytes_out.with_label_values(&[topic]),
            records_out: metrics.records_out.with_label_values(&[topic]),
            fsync_latency: metrics.fsync_latency.clone(),
            local_corrupt: metrics.local_corrupt.clone(),
            scrub_bytes: metrics.scrub_bytes.clone(),
            scrub_damaged: metrics.scrub_damaged.clone(),
            remote,
            dir: dir.to_path_buf(),
        }))
    }

    /// Partition number.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Appends validated batches to the page cache and returns at once;
    /// the data is durable (and readable) once [`Partition::wait_durable`]
    /// for `end` returns. Requests are appended in the order they call
    /// this, which is what keeps a pipelined producer's batches in order.
    pub fn append_now(&self, batches: &[IncomingBatch]) -> Result<Appended, BrokerError> {
        let bytes: usize = batches.iter().map(|b| b.bytes.len()).sum();
        let (results, end, appended_records) = {
            let mut log = self.log.lock();
            let results = log.append(batches, now_ms())?;
            let n: u64 = results
                .iter()
                .zip(batches)
                .filter(|(r, _)| !r.duplicate)
                .map(|(_, b)| u64::from(b.header.record_count))
                .sum();
            (results, log.log_end_offset(), n)
        };
        if appended_records > 0 {
            self.bytes_in.inc_by(bytes as u64);
            self.records_in.inc_by(appended_records);
            self.dirty.notify_one();
        }
        // Duplicates may refer to data still being flushed: the end of the
        // log as it is now covers both cases.
        Ok(Appended { results, end })
    }

    /// Waits until everything below `end` is fsynced.
    pub async fn wait_durable(&self, end: i64) -> Result<(), BrokerError> {
        let mut rx = self.high_watermark.subscribe();
        loop {
            if *rx.borrow_and_update() >= end {
                return Ok(());
            }
            if let Some(why) = self.failed.lock().clone() {
                return Err(LogError::Failed(why).into());
            }
            if rx.changed().await.is_err() {
                return Err(BrokerError::ShuttingDown);
            }
        }
    }

    /// The group-commit loop: fsync whenever something was written, then
    /// raise the high watermark. Ends on shutdown after a final fsync.
    pub async fn run_flusher(self: Arc<Self>, shutdown: CancellationToken) {
        let mut recovery_point_at = Instant::now();
        loop {
            let stopping = tokio::select! {
                _ = self.dirty.notified() => false,
                _ = shutdown.cancelled() => true,
            };
            loop {
                let (file, target) = self.log.lock().sync_target();
                if target <= *self.high_watermark.borrow() {
                    break;
                }
                let started = Instant::now();
                let res = tokio::task::spawn_blocking(move || file.sync_data()).await;
                self.fsync_latency.observe(started.elapsed().as_secs_f64());
                match res {
                    Ok(Ok(())) => {
                        self.high_watermark.send_replace(target);
                        if recovery_point_at.elapsed() >= recovery_point::INTERVAL {
                            recovery_point_at = Instant::now();
                            self.write_recovery_point(target).await;
                        }
                    }
                    Ok(Err(e)) => {
                        self.fail(format!("fsync failed: {e}"));
                        break;
                    }
                    Err(e) => {
                        self.fail(format!("fsync task failed: {e}"));
                        break;
                    }
                }
            }
            if self.failed.lock().is_some() {
                return;
            }
            if stopping {
                self.write_recovery_point(self.high_watermark()).await;
                return;
            }
        }
    }

    /// Records `offset` as durable in the recovery point (off the runtime
    /// threads). A failure is logged: the point only lags, data is safe.
    async fn write_recovery_point(&self, offset: i64) {
        let dir = self.dir.clone();
        match tokio::task::spawn_blocking(move || recovery_point::write(&dir, offset)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(partition = %self.label, error = %e, "could not write the recovery point")
            }
            Err(e) => {
                tracing::warn!(partition = %self.label, error = %e, "recovery point task failed")
            }
        }
    }

    fn fail(&self, why: String) {
        tracing::error!(partition = self.id, %why, "partition failed; refusing writes until restart");
        self.log.lock().mark_failed(why.clone());
        *self.failed.lock() = Some(why);
        // Wake waiters so they see the failure.
        self.high_watermark.send_modify(|_| {});
    }

    /// Reads up to `max_bytes` at `offset`. Waits up to `max_wait` for data
    /// when none is readable yet.
    pub async fn fetch(
        &self,
        offset: i64,
        max_bytes: usize,
        max_wait: std::time::Duration,
    ) -> Result<FetchResult, BrokerError> {
        let mut rx = self.high_watermark.subscribe();
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let hw = *rx.borrow_and_update();
            let result = self.read_now(offset, max_bytes, hw).await?;
            if !result.read.bytes.is_empty() || max_wait.is_zero() {
                return Ok(result);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(BrokerError::ShuttingDown),
                Err(_) => return Ok(result),
            }
        }
    }

    async fn read_now(
        &self,
        offset: i64,
        max_bytes: usize,
        hw: i64,
    ) -> Result<FetchResult, BrokerError> {
        // Planned under the same lock as the bounds, so retention cannot
        // remove the segment in between.
        let (planned, local_start, end) = {
            let log = self.log.lock();
            let local_start = log.log_start_offset();
            let end = log.log_end_offset();
            let planned = (offset >= local_start).then(|| log.plan_read(offset, hw));
            (planned, local_start, end)
        };
        let read = if offset < local_start {
            let remote = match &self.remote {
                Some(rp) => rp.read(offset, local_start, hw, max_bytes).await?,
                None => RemoteRead::NotHeld,
            };
            match remote {
                RemoteRead::Served(read) => read,
                RemoteRead::ReadLocally => {
                    let planned = self.log.lock().plan_read(local_start, hw);
                    self.read_local(planned, local_start, hw, max_bytes).await?
                }
                RemoteRead::NotHeld => {
                    return Err(LogError::OffsetOutOfRange {
                        offset,
                        start: self.log_start_offset(),
                        end,
                    }
                    .into())
                }
            }
        } else {
            let planned = planned.unwrap_or(Ok(None));
            self.read_local(planned, offset, hw, max_bytes).await?
        };
        Ok(self.served(read, hw))
    }

    fn served(&self, read: ReadOutcome, hw: i64) -> FetchResult {
        self.bytes_out.inc_by(read.bytes.len() as u64);
        self.records_out.inc_by(read.records);
        FetchResult {
            read,
            high_watermark: hw,
            log_start_offset: self.log_start_offset(),
        }
    }

    /// Runs a local read planned under the lock. Damaged bytes a read
    /// meets are located and recorded first: a read past them is planned
    /// again (once), a read inside them goes to
    /// [`Self::read_past_local_damage`].
    async fn read_local(
        &self,
        planned: Result<Option<crate::log::ReadPlan>, LogError>,
        offset: i64,
        hw: i64,
        max_bytes: usize,
    ) -> Result<ReadOutcome, BrokerError> {
        let mut planned = planned;
        for attempt in 0..2 {
            let result = match planned {
                Ok(Some(plan)) => plan.read(offset, hw, max_bytes).await,
                Ok(None) => return Ok(ReadOutcome::default()),
                Err(e) => Err(e),
            };
            let (from, to, detail) = match result {
                Ok(read) => return Ok(read),
                Err(LogError::Missing { from, to }) => {
                    (from, to, "found when the broker started".to_string())
                }
                Err(LogError::Damaged { path, batch }) if attempt == 0 => {
                    let from = batch.offset.unwrap_or(offset).min(offset);
                    let to = self.locate_damage(from, batch.position).await?;
                    if offset >= to {
                        // The damage lies before the offset asked for.
                        planned = self.log.lock().plan_read(offset, hw);
                        continue;
                    }
                    (from, to, format!("{batch} in {}", path.display()))
                }
                Err(e) => return Err(e.into()),
            };
            return self
                .read_past_local_damage(offset, from, to, detail, hw, max_bytes)
                .await;
        }
        Err(BrokerError::Storage(format!(
            "partition {}: a read at offset {offset} kept meeting damaged data",
            self.label
        )))
    }

    /// Sealed segments for the scrub.
    pub fn scrub_targets(&self) -> Vec<crate::log::ScrubTarget> {
        self.log.lock().scrub_targets()
    }

    /// `topic/partition`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Records what the scrub found in `bytes` of a segment.
    pub fn note_scrubbed(&self, bytes: u64, damaged: Vec<(OffsetRange, Option<u64>)>) {
        self.scrub_bytes.inc_by(bytes);
        for (r, resume) in damaged {
            if self.log.lock().note_damaged(r.from, r.to, resume) {
                self.local_corrupt.inc();
                self.scrub_damaged.inc();
                let in_bucket = self
                    .remote
                    .as_ref()
                    .and_then(|rp| rp.uploaded_end())
                    .is_some_and(|end| r.to <= end);
                tracing::error!(partition = %self.label, from = r.from, to = r.to, in_bucket, "scrub found damaged batches; reads of them are served from the bucket when it holds them, else DATA_LOSS");
            }
        }
    }

    /// Finds where damage at byte `position` (expected to start at offset
    /// `from`) ends, records the range in the log, and counts it once.
    async fn locate_damage(&self, from: i64, position: u64) -> Result<i64, BrokerError> {
        let probe = self.log.lock().damage_probe(from);
        let Some(probe) = probe else {
            return Ok(from + 1);
        };
        let (to, resume) = tokio::task::spawn_blocking(move || probe.damage_end(from, position))
            .await
            .map_err(|e| BrokerError::Storage(format!("damage probe: {e}")))??;
        if self.log.lock().note_damaged(from, to, resume) {
            self.local_corrupt.inc();
            tracing::error!(partition = %self.label, from, to, "stored batches are damaged; reads of these offsets are DATA_LOSS unless the bucket holds them");
        }
        Ok(to)
    }

    /// A local read at `offset` met damaged or missing offsets
    /// `[from, to)`: served from the bucket when the bucket holds them
    /// (its copy was uploaded before the damage, and is checked on its
    /// own), otherwise `DATA_LOSS` naming the range. Never skipped, never
    /// retried.
    async fn read_past_local_damage(
        &self,
        offset: i64,
        from: i64,
        to: i64,
        detail: String,
        hw: i64,
        max_bytes: usize,
    ) -> Result<ReadOutcome, BrokerError> {
        if let Some(rp) = &self.remote {
            if let RemoteRead::Served(read) = rp.read(offset, to, hw, max_bytes).await? {
                tracing::debug!(partition = %self.label, offset, "served damaged local offsets from the bucket");
                return Ok(read);
            }
        }
        tracing::warn!(partition = %self.label, offset, from, to, "read of damaged or missing offsets");
        Err(BrokerError::MissingOffsets {
            partition: self.label.clone(),
            from: offset.max(from),
            to,
            detail,
        })
    }

    /// Damaged data met by a timestamp lookup is data loss (counted,
    /// logged, with the partition named), not a client's bad request.
    fn stored_data_error(&self, e: LogError) -> BrokerError {
        match e {
            LogError::Damaged { path, batch } => {
                self.local_corrupt.inc();
                tracing::error!(partition = %self.label, path = %path.display(), %batch, "stored batch is damaged");
                BrokerError::LocalDataLoss {
                    partition: self.label.clone(),
                    reading: None,
                    path,
                    batch,
                }
            }
            other => other.into(),
        }
    }

    /// First offset with timestamp >= `ts` and that record's timestamp;
    /// `None` when no durable record is that recent. Looks in the bucket
    /// first (older data), then on local disk.
    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, BrokerError> {
        let local_start = self.log.lock().log_start_offset();
        if let Some(rp) = &self.remote {
            if let Some(found) = rp.find_timestamp(ts, local_start).await? {
                return Ok(Some(found));
            }
        }
        let plan = self.log.lock().plan_timestamp(ts);
        let hw = self.high_watermark();
        match plan {
            Some(plan) => {
                let found = plan
                    .find_timestamp(ts)
                    .await
                    .map_err(|e| self.stored_data_error(e))?;
                Ok(found.filter(|(off, _)| *off < hw))
            }
            None => Ok(None),
        }
    }

    /// Durable log end.
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// Log start offset: the bucket's first offset when it holds older
    /// data than local disk.
    pub fn log_start_offset(&self) -> i64 {
        let local = self.log.lock().log_start_offset();
        match self.remote.as_ref().and_then(|rp| rp.start_offset()) {
            Some(remote) => remote.min(local),
            None => local,
        }
    }

    /// First offset on local disk.
    pub fn local_start_offset(&self) -> i64 {
        self.log.lock().log_start_offset()
    }

    /// The remote side, if tiering is on.
    pub fn remote(&self) -> Option<&Arc<RemotePartition>> {
        self.remote.as_ref()
    }

    /// Remote numbers (all -1/0 without tiering).
    pub fn remote_stats(&self) -> RemoteStats {
        match &self.remote {
            Some(rp) => rp.stats(),
            None => RemoteStats {
                start_offset: -1,
                end_offset: -1,
                ..RemoteStats::default()
            },
        }
    }

    /// Summary numbers.
    pub fn stats(&self) -> LogStats {
        self.log.lock().stats()
    }

    /// Replaces the log config.
    pub fn set_config(&self, config: LogConfig) {
        self.log.lock().set_config(config);
    }

    /// Applies retention; returns segments removed. With tiering, local
    /// segments go only once the bucket's manifest durably lists them.
    pub fn enforce_retention(&self) -> Result<usize, BrokerError> {
        let mut log = self.log.lock();
        let bounds = match &self.remote {
            Some(rp) => RemoteBounds {
                active: log.config().remote_storage_enable || rp.uploaded_end().is_some(),
                uploaded_end: rp.uploaded_end(),
                remote_start: rp.start_offset(),
            },
            None => RemoteBounds::default(),
        };
        Ok(log.enforce_retention(now_ms(), bounds)?)
    }
}

impl LocalLog for Partition {
    fn log_config(&self) -> LogConfig {
        self.log.lock().config().clone()
    }

    fn sealed_after(&self, after: Option<i64>) -> Vec<SealedSegment> {
        self.log.lock().sealed_after(after)
    }

    fn bytes_from(&self, offset: i64) -> u64 {
        self.log.lock().bytes_from(offset)
    }

    fn local_start_offset(&self) -> i64 {
        Partition::local_start_offset(self)
    }
}
