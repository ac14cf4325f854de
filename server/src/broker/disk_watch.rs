//! The produce high-water mark: local log bytes measured every 200 ms, and
//! produce refused (retriable) while they exceed
//! `local_disk_high_water_bytes` (uploads to the bucket are behind).

use std::sync::Arc;
use std::time::Duration;

use super::{Broker, BrokerError};

impl Broker {
    /// `Err(DiskFull)` while local log data is above the high-water mark.
    pub fn check_disk_space(&self) -> Result<(), BrokerError> {
        let limit = self.settings.local_disk_high_water_bytes;
        let used = self.local_bytes.load(std::sync::atomic::Ordering::Acquire);
        if limit > 0 && used > limit {
            return Err(BrokerError::DiskFull { used, limit });
        }
        Ok(())
    }

    pub(super) async fn run_disk_watch(self: Arc<Self>) {
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
}
