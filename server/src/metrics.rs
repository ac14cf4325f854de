//! Prometheus metrics of the broker, registered once and shared.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

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
