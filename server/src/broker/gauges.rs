//! Per-topic gauges, refreshed when `/metrics` is scraped.

use super::Broker;

impl Broker {
    /// Refreshes the per-topic gauges (called at scrape time).
    pub fn refresh_gauges(&self) {
        for t in self.topics() {
            let (mut segs, mut size) = (0i64, 0i64);
            for p in t.partitions() {
                let s = p.stats();
                segs += i64::from(s.segments);
                size += s.size_bytes as i64;
            }
            let name = t.name();
            self.metrics.segments.with_label_values(&[&name]).set(segs);
            self.metrics.log_size.with_label_values(&[&name]).set(size);
            if self.tiering.is_some() {
                let remote: u64 = t
                    .partitions()
                    .iter()
                    .map(|p| p.remote_stats().size_bytes)
                    .sum();
                self.metrics
                    .tiering
                    .remote_size
                    .with_label_values(&[&name])
                    .set(remote as i64);
            }
        }
    }
}
