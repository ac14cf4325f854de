//! Local retention: every `retention_check_interval`, each partition drops
//! the sealed segments its limits (and, with tiering, the bucket) allow.

use std::sync::Arc;

use super::Broker;

impl Broker {
    pub(super) async fn run_retention(self: Arc<Self>) {
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
}
