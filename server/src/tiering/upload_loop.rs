//! The broker's background upload task: every `upload_interval` it walks
//! the partitions it is given, uploads their sealed segments, applies
//! remote retention at the retention interval, records the status
//! `/readyz` shows, and backs off while the store fails.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::uploader::{self, LocalLog};
use super::{RemotePartition, Tiering, TieringError, TieringStatus};

/// A partition as the upload loop sees it: its remote side and local log.
pub type UploadTarget = (Arc<RemotePartition>, Arc<dyn LocalLog>);

/// Runs upload rounds until `shutdown`. `partitions` lists the partitions
/// as they are now (topics come and go between rounds).
pub async fn run<F>(
    t: Arc<Tiering>,
    partitions: F,
    retention_interval: Duration,
    shutdown: CancellationToken,
) where
    F: Fn() -> Vec<UploadTarget> + Send + Sync,
{
    let base = t.settings.upload_interval;
    let mut delay = base;
    let mut failures = 0u32;
    // Remote retention runs at the retention interval, like local
    // retention (which deletes local copies once the manifest lists them).
    let mut last_retention = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => return,
        }
        let retention_due = last_retention.elapsed() >= retention_interval;
        if retention_due {
            last_retention = tokio::time::Instant::now();
        }
        let mut status = TieringStatus::default();
        let mut lag = 0i64;
        let mut failed = false;
        for (rp, log) in partitions() {
            let sync = tokio::select! {
                s = uploader::sync_partition(&t, &rp, log.as_ref(), retention_due) => s,
                _ = shutdown.cancelled() => return,
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
                    break;
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
