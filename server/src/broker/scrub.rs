//! The scrub: reads every sealed local segment in the background at a
//! bounded rate (`scrub_bytes_per_sec`), checks every batch as recovery
//! does, and records damage it finds so reads of it are served from the
//! bucket (which holds an intact copy of every uploaded segment) or are
//! `DATA_LOSS` naming the range — before a consumer is the one to find it.
//! Counted in `tidelog_scrub_*`; a pass over everything is followed by a
//! pause of `scrub_interval`.

use std::sync::Arc;
use std::time::Duration;

use super::Broker;

impl Broker {
    pub(super) async fn run_scrub(self: Arc<Self>) {
        let rate = self.settings.scrub_bytes_per_sec;
        if rate == 0 {
            return;
        }
        loop {
            for t in self.topics() {
                for p in t.partitions() {
                    for target in p.scrub_targets() {
                        if self.shutdown.is_cancelled() || t.cancel_token().is_cancelled() {
                            break;
                        }
                        let size = target.size;
                        let checked = tokio::task::spawn_blocking(move || target.check()).await;
                        match checked {
                            Ok(Ok(damaged)) => p.note_scrubbed(size, damaged),
                            Ok(Err(e)) => {
                                tracing::warn!(partition = %p.label(), error = %e, "scrub could not read a segment")
                            }
                            Err(e) => tracing::warn!(error = %e, "scrub task failed"),
                        }
                        // Stay under the configured rate.
                        let pause = Duration::from_secs_f64(size as f64 / rate as f64);
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = self.shutdown.cancelled() => return,
                        }
                    }
                }
            }
            self.metrics.scrub_passes.inc();
            tokio::select! {
                _ = tokio::time::sleep(self.settings.scrub_interval) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }
}
