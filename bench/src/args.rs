//! The flags of `tidelog bench` and the settings they validate into.

use std::time::Duration;

use clap::{Args, ValueEnum};
use tidelog::{Acks, Compression, ProducerConfig};

use crate::BenchError;

/// Records produced or read when neither `--records` nor `--duration` is given.
pub(crate) const DEFAULT_RECORDS: u64 = 1_000_000;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Producer throughput and send→ack latency.
    Produce,
    /// Consumer throughput on hot data (produces it first if missing).
    Consume,
    /// Send→delivered latency with producers and consumers running together.
    E2e,
    /// A cold client reads the whole topic from the beginning.
    Catchup,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Produce => "produce",
            Mode::Consume => "consume",
            Mode::E2e => "e2e",
            Mode::Catchup => "catchup",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AcksArg {
    /// Acknowledged after fsync (the default).
    All,
    /// Acknowledged after the write, before fsync.
    Leader,
}

/// Flags of `tidelog bench` (the broker address is the command's global
/// `--broker`).
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum)]
    mode: Mode,
    /// Topic (created if missing).
    #[arg(long, default_value = "tidelog-bench")]
    topic: String,
    /// Partitions when creating the topic.
    #[arg(long, default_value_t = 1)]
    pub(crate) partitions: u32,
    /// Value size of each record in bytes.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Records to produce / read in all [default: 1000000].
    #[arg(long, conflicts_with = "duration")]
    records: Option<u64>,
    /// Produce for this many seconds instead of a record count.
    #[arg(long)]
    duration: Option<f64>,
    /// Producers, each with its own connection.
    #[arg(long, default_value_t = 1)]
    producers: u32,
    /// Consumers, each with its own connection; partitions are dealt out.
    #[arg(long, default_value_t = 1)]
    consumers: u32,
    /// Producer linger in ms [default: the SDK's].
    #[arg(long)]
    linger_ms: Option<u64>,
    /// Produce requests in flight per partition [default: the SDK's].
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Producer batch size in bytes [default: the SDK's].
    #[arg(long)]
    batch_bytes: Option<usize>,
    /// Acknowledgement mode.
    #[arg(long, value_enum, default_value = "all")]
    acks: AcksArg,
    /// Compression: none, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Total send rate in records/s (default: as fast as possible).
    #[arg(long)]
    rate: Option<f64>,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub mode: Mode,
    pub topic: String,
    pub record_size: usize,
    pub records: Option<u64>,
    pub duration: Option<Duration>,
    pub producers: u32,
    pub consumers: u32,
    pub producer: ProducerConfig,
    pub rate: Option<f64>,
}

impl BenchArgs {
    /// Checks the flags against each other; errors name the flag.
    pub(crate) fn settings(&self) -> Result<Settings, BenchError> {
        let usage = |m: String| Err(BenchError::Usage(m));
        if self.partitions == 0 {
            return usage("--partitions must be at least 1".into());
        }
        if self.producers == 0 || self.consumers == 0 {
            return usage("--producers and --consumers must be at least 1".into());
        }
        if self.record_size == 0 {
            return usage("--record-size must be at least 1".into());
        }
        if self.mode == Mode::E2e && self.record_size < 8 {
            return usage(
                "e2e embeds an 8-byte send time in each value: --record-size >= 8".into(),
            );
        }
        if self.records == Some(0) {
            return usage("--records must be at least 1".into());
        }
        let duration = match self.duration {
            Some(d) if !(d.is_finite() && d > 0.0) => {
                return usage(format!(
                    "--duration {d}: must be a positive number of seconds"
                ))
            }
            Some(d) => Some(Duration::from_secs_f64(d)),
            None => None,
        };
        if duration.is_some() && matches!(self.mode, Mode::Consume | Mode::Catchup) {
            return usage(format!(
                "--duration applies to produce and e2e; {} reads --records records",
                self.mode.name()
            ));
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return usage(format!("--rate {r}: must be a positive records/s"));
            }
        }
        let compression: Compression = self.compression.parse().map_err(BenchError::Usage)?;
        let mut producer = ProducerConfig {
            compression,
            acks: match self.acks {
                AcksArg::All => Acks::All,
                AcksArg::Leader => Acks::Leader,
            },
            ..ProducerConfig::default()
        };
        if let Some(ms) = self.linger_ms {
            producer.linger = Duration::from_millis(ms);
        }
        if let Some(n) = self.max_in_flight {
            if n == 0 {
                return usage("--max-in-flight must be at least 1".into());
            }
            producer.max_in_flight = n;
        }
        if let Some(b) = self.batch_bytes {
            if b == 0 {
                return usage("--batch-bytes must be at least 1".into());
            }
            producer.batch_bytes = b;
            producer.max_request_bytes = producer.max_request_bytes.max(b);
        }
        let records = match (self.records, duration, self.mode) {
            (Some(n), _, _) => Some(n),
            (None, Some(_), _) => None,
            // catchup reads whatever the topic holds
            (None, None, Mode::Catchup) => None,
            (None, None, _) => Some(DEFAULT_RECORDS),
        };
        Ok(Settings {
            mode: self.mode,
            topic: self.topic.clone(),
            record_size: self.record_size,
            records,
            duration,
            producers: self.producers,
            consumers: self.consumers,
            producer,
            rate: self.rate,
        })
    }
}
