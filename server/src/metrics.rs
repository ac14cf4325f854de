//! Prometheus metrics of the broker, registered once and shared.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Metrics of tiered storage.
#[derive(Debug, Clone)]
pub struct TieringMetrics {
    /// Sealed segments not yet in the bucket.
    pub upload_backlog_segments: IntGauge,
    /// Bytes of sealed segments not yet in the bucket.
    pub upload_backlog_bytes: IntGauge,
    /// Upload lag: offsets sealed locally but not yet in the bucket.
    pub upload_lag_offsets: IntGauge,
    /// Segments uploaded.
    pub uploaded_segments: IntCounter,
    /// Bytes uploaded (segment data).
    pub uploaded_bytes: IntCounter,
    /// Failed upload or manifest attempts.
    pub upload_errors: IntCounter,
    /// 1 while the bucket is unreachable, a partition is fenced or uploads fail.
    pub degraded: IntGauge,
    /// Bytes read from the bucket (chunks fetched, not cache hits).
    pub remote_read_bytes: IntCounter,
    /// Chunk reads served by the cache.
    pub cache_hits: IntCounter,
    /// Chunk reads that went to the bucket.
    pub cache_misses: IntCounter,
    /// Hits / (hits + misses) of the chunk cache.
    pub cache_hit_ratio: Gauge,
    /// Chunk reads served by read-ahead.
    pub prefetch_hits: IntCounter,
    /// Latency of one chunk fetch from the bucket.
    pub remote_read_latency: Histogram,
    /// Remote objects that failed a checksum (data loss).
    pub remote_corrupt: IntCounter,
    /// Objects a manifest lists, or manifests this broker wrote, found
    /// missing from the bucket (data loss).
    pub remote_missing: IntCounter,
    /// Times a partition's log start moved forward not by retention (the
    /// bucket lost the oldest data).
    pub log_start_moved: IntCounter,
    /// Segments deleted from the bucket by retention.
    pub remote_deleted_segments: IntCounter,
    /// Bytes in the bucket per topic (refreshed at scrape).
    pub remote_size: IntGaugeVec,
}

/// Metrics of the cluster's metadata quorum, as this broker sees it.
#[derive(Debug, Clone)]
pub struct ClusterMetrics {
    /// Times the quorum's leader (the controller) changed.
    pub leader_changes: IntCounter,
    /// 1 while this broker is the controller.
    pub is_controller: IntGauge,
    /// Highest metadata log index present here.
    pub last_log_index: IntGauge,
    /// Highest metadata log index applied here.
    pub applied_index: IntGauge,
    /// Registered brokers by state (alive, fenced).
    pub brokers: IntGaugeVec,
    /// Partitions placed on each broker.
    pub broker_partitions: IntGaugeVec,
}

impl ClusterMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let leader_changes = IntCounter::new(
            "cluster_leader_changes_total",
            "Times the metadata quorum's leader (the controller) changed, as seen here",
        )?;
        let is_controller = IntGauge::new(
            "cluster_is_controller",
            "1 while this broker leads the metadata quorum",
        )?;
        let last_log_index = IntGauge::new(
            "cluster_metadata_last_log_index",
            "Highest metadata log index present on this broker",
        )?;
        let applied_index = IntGauge::new(
            "cluster_metadata_applied_index",
            "Highest metadata log index applied on this broker",
        )?;
        let brokers = IntGaugeVec::new(
            Opts::new("cluster_brokers", "Registered brokers by state"),
            &["state"],
        )?;
        let broker_partitions = IntGaugeVec::new(
            Opts::new(
                "cluster_broker_partitions",
                "Partitions placed on each broker",
            ),
            &["broker"],
        )?;
        registry.register(Box::new(leader_changes.clone()))?;
        registry.register(Box::new(is_controller.clone()))?;
        registry.register(Box::new(last_log_index.clone()))?;
        registry.register(Box::new(applied_index.clone()))?;
        registry.register(Box::new(brokers.clone()))?;
        registry.register(Box::new(broker_partitions.clone()))?;
        Ok(ClusterMetrics {
            leader_changes,
            is_controller,
            last_log_index,
            applied_index,
            brokers,
            broker_partitions,
        })
    }
}

/// Every metric the broker exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Bytes of batches appended, per topic.
    pub bytes_in: IntCounterVec,
    /// Records appended, per topic.
    pub records_in: IntCounterVec,
    /// Bytes of batches served, per topic.
    pub bytes_out: IntCounterVec,
    /// Records served, per topic.
    pub records_out: IntCounterVec,
    /// Produce request latency (receipt to answer), per acks mode.
    pub produce_latency: HistogramVec,
    /// Fetch latency (excluding the long-poll wait).
    pub fetch_latency: Histogram,
    /// Latency of one group-commit fsync.
    pub fsync_latency: Histogram,
    /// Failed requests by reason.
    pub errors: IntCounterVec,
    /// Segments per topic (refreshed at scrape).
    pub segments: IntGaugeVec,
    /// Log bytes per topic (refreshed at scrape).
    pub log_size: IntGaugeVec,
    /// Damaged batches found reading this broker's own disk (the bucket's
    /// count is `tiering.remote_corrupt`).
    pub local_corrupt: IntCounter,
    /// Bytes of sealed segments the scrub read.
    pub scrub_bytes: IntCounter,
    /// Damaged ranges the scrub found.
    pub scrub_damaged: IntCounter,
    /// Completed scrub passes over every sealed segment.
    pub scrub_passes: IntCounter,
    /// Tiered storage.
    pub tiering: TieringMetrics,
    /// The cluster's metadata quorum.
    pub cluster: ClusterMetrics,
}

fn buckets() -> Vec<f64> {
    vec![
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        0.5, 1.0, 2.5,
    ]
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("tidelog".into()), None)?;
        let topic = &["topic"];
        let bytes_in = IntCounterVec::new(
            Opts::new("produce_bytes_total", "Bytes of batches appended"),
            topic,
        )?;
        let records_in = IntCounterVec::new(
            Opts::new("produce_records_total", "Records appended"),
            topic,
        )?;
        let bytes_out = IntCounterVec::new(
            Opts::new("fetch_bytes_total", "Bytes of batches served"),
            topic,
        )?;
        let records_out =
            IntCounterVec::new(Opts::new("fetch_records_total", "Records served"), topic)?;
        let produce_latency = HistogramVec::new(
            HistogramOpts::new("produce_latency_seconds", "Produce request latency")
                .buckets(buckets()),
            &["acks"],
        )?;
        let fetch_latency = Histogram::with_opts(
            HistogramOpts::new(
                "fetch_latency_seconds",
                "Fetch read latency (without long-poll wait)",
            )
            .buckets(buckets()),
        )?;
        let fsync_latency = Histogram::with_opts(
            HistogramOpts::new("fsync_latency_seconds", "Latency of one group-commit fsync")
                .buckets(buckets()),
        )?;
        let errors = IntCounterVec::new(
            Opts::new("request_errors_total", "Failed requests"),
            &["reason"],
        )?;
        let segments =
            IntGaugeVec::new(Opts::new("log_segments", "Segments on local disk"), topic)?;
        let log_size = IntGaugeVec::new(
            Opts::new("log_size_bytes", "Bytes of log on local disk"),
            topic,
        )?;
        let local_corrupt = IntCounter::new(
            "local_corrupt_total",
            "Damaged batches found reading the broker's own disk (served as DATA_LOSS)",
        )?;
        let scrub_bytes = IntCounter::new(
            "scrub_bytes_total",
            "Bytes of sealed local segments the background scrub read and checked",
        )?;
        let scrub_damaged = IntCounter::new(
            "scrub_damaged_total",
            "Damaged ranges the background scrub found in sealed local segments",
        )?;
        let scrub_passes = IntCounter::new(
            "scrub_passes_total",
            "Completed scrub passes over every sealed local segment",
        )?;
        let tiering = TieringMetrics::new(&registry)?;
        let cluster = ClusterMetrics::new(&registry)?;
        registry.register(Box::new(local_corrupt.clone()))?;
        registry.register(Box::new(scrub_bytes.clone()))?;
        registry.register(Box::new(scrub_damaged.clone()))?;
        registry.register(Box::new(scrub_passes.clone()))?;
        registry.register(Box::new(bytes_in.clone()))?;
        registry.register(Box::new(records_in.clone()))?;
        registry.register(Box::new(bytes_out.clone()))?;
        registry.register(Box::new(records_out.clone()))?;
        registry.register(Box::new(produce_latency.clone()))?;
        registry.register(Box::new(fetch_latency.clone()))?;
        registry.register(Box::new(fsync_latency.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(segments.clone()))?;
        registry.register(Box::new(log_size.clone()))?;
        Ok(Metrics {
            registry,
            bytes_in,
            records_in,
            bytes_out,
            records_out,
            produce_latency,
            fetch_latency,
            fsync_latency,
            errors,
            segments,
            log_size,
            local_corrupt,
            scrub_bytes,
            scrub_damaged,
            scrub_passes,
            tiering,
            cluster,
        })
    }

    /// Renders the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            return format!("# encoding failed: {e}\n");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl TieringMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let cache_hit_ratio = Gauge::new(
            "tiering_cache_hit_ratio",
            "Chunk cache hits / (hits + misses)",
        )?;
        registry.register(Box::new(cache_hit_ratio.clone()))?;
        let remote_read_latency = Histogram::with_opts(
            HistogramOpts::new(
                "tiering_remote_read_latency_seconds",
                "Latency of one chunk fetch from the object store",
            )
            .buckets(buckets()),
        )?;
        registry.register(Box::new(remote_read_latency.clone()))?;
        let remote_size = IntGaugeVec::new(
            Opts::new(
                "tiering_remote_size_bytes",
                "Bytes of log in the object store",
            ),
            &["topic"],
        )?;
        registry.register(Box::new(remote_size.clone()))?;
        Ok(TieringMetrics {
            upload_backlog_segments: gauge(
                "tiering_upload_backlog_segments",
                "Sealed segments not yet uploaded",
            )?,
            upload_backlog_bytes: gauge(
                "tiering_upload_backlog_bytes",
                "Bytes of sealed segments not yet uploaded",
            )?,
            upload_lag_offsets: gauge(
                "tiering_upload_lag_offsets",
                "Offsets sealed locally but not yet in the object store",
            )?,
            uploaded_segments: counter("tiering_uploaded_segments_total", "Segments uploaded")?,
            uploaded_bytes: counter("tiering_uploaded_bytes_total", "Segment bytes uploaded")?,
            upload_errors: counter(
                "tiering_upload_errors_total",
                "Failed uploads and manifest writes",
            )?,
            degraded: gauge(
                "tiering_degraded",
                "1 while uploads fail (object store unreachable or fenced)",
            )?,
            remote_read_bytes: counter(
                "tiering_remote_read_bytes_total",
                "Bytes fetched from the object store",
            )?,
            cache_hits: counter(
                "tiering_cache_hits_total",
                "Chunk reads served by the cache",
            )?,
            cache_misses: counter(
                "tiering_cache_misses_total",
                "Chunk reads that went to the object store",
            )?,
            cache_hit_ratio,
            prefetch_hits: counter(
                "tiering_prefetch_hits_total",
                "Chunk reads served by read-ahead",
            )?,
            remote_read_latency,
            remote_corrupt: counter(
                "tiering_remote_corrupt_total",
                "Remote objects that failed a checksum",
            )?,
            remote_missing: counter(
                "tiering_remote_missing_total",
                "Objects listed by a manifest (or manifests this broker wrote) found missing from the object store",
            )?,
            log_start_moved: counter(
                "tiering_log_start_moved_total",
                "Times a partition's log start moved forward not by retention (data lost from the object store)",
            )?,
            remote_deleted_segments: counter(
                "tiering_remote_deleted_segments_total",
                "Segments deleted from the object store by retention",
            )?,
            remote_size,
        })
    }

    /// Records a chunk lookup and refreshes the hit ratio.
    pub fn record_cache(&self, hit: bool) {
        if hit {
            self.cache_hits.inc();
        } else {
            self.cache_misses.inc();
        }
        let (h, m) = (self.cache_hits.get() as f64, self.cache_misses.get() as f64);
        self.cache_hit_ratio.set(h / (h + m).max(1.0));
    }
}
