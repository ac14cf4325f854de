//! `tidelog bench produce|consume|e2e|catchup`: measures the data path
//! through the Rust SDK, i.e. what users get.
//!
//! - `produce`: producers send records as fast as allowed (or at `--rate`);
//!   latency is send → acknowledgement.
//! - `consume`: makes sure the topic holds `--records` records (producing
//!   the shortfall first), then times one or more fresh consumers reading
//!   them from the first offset.
//! - `e2e`: producers and consumers at once; every value carries its send
//!   time, latency is send → delivered by `Consumer::next_record`.
//! - `catchup`: a fresh client reads the whole topic from the beginning.
//!   Reading from tiered storage (segments in the bucket only) waits for
//!   tiered storage; today this reads local segments.
//!
//! MB/s is 10^6 bytes of record value (payload) per second. A progress line
//! goes to stderr once per second; the summary goes to stdout, and with
//! `--json` the last stdout line is one JSON object.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use clap::{Args, Parser, ValueEnum};
use hdrhistogram::Histogram;
use tidelog::{
    Acks, Client, Compression, ConsumerConfig, DeliveryFuture, NewTopic, OffsetSpec, Producer,
    ProducerConfig, ProducerRecord, SeekTo, TopicPartition,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BrokerArgs, CliError};

/// Records produced or read when neither `--records` nor `--duration` is given.
const DEFAULT_RECORDS: u64 = 1_000_000;
/// Distinct payloads cycled through (so compression sees varied data).
const PAYLOADS: usize = 64;
/// Largest latency the histograms hold, in microseconds (10 minutes).
const MAX_LATENCY_US: u64 = 600_000_000;
/// How long e2e consumers may trail the last acknowledgement.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

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
    fn name(self) -> &'static str {
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

/// `tidelog bench` as its own command line (see `main`).
#[derive(Debug, Parser)]
#[command(
    name = "tidelog bench",
    about = "Measure produce/consume throughput and latency through the Rust SDK"
)]
struct BenchCli {
    #[command(flatten)]
    args: BenchArgs,
}

/// Flags of `tidelog bench`.
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
    partitions: u32,
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
    json: bool,
    #[command(flatten)]
    broker: BrokerArgs,
}

/// Entry point for `tidelog bench ...` (argv[1] is `bench`).
pub fn main() -> ExitCode {
    let cli = BenchCli::parse_from(std::env::args_os().skip(1));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
struct Settings {
    mode: Mode,
    topic: String,
    record_size: usize,
    records: Option<u64>,
    duration: Option<Duration>,
    producers: u32,
    consumers: u32,
    producer: ProducerConfig,
    rate: Option<f64>,
}

fn settings(args: &BenchArgs) -> Result<Settings, CliError> {
    let usage = |m: String| Err(CliError::Usage(m));
    if args.partitions == 0 {
        return usage("--partitions must be at least 1".into());
    }
    if args.producers == 0 || args.consumers == 0 {
        return usage("--producers and --consumers must be at least 1".into());
    }
    if args.record_size == 0 {
        return usage("--record-size must be at least 1".into());
    }
    if args.mode == Mode::E2e && args.record_size < 8 {
        return usage("e2e embeds an 8-byte send time in each value: --record-size >= 8".into());
    }
    if args.records == Some(0) {
        return usage("--records must be at least 1".into());
    }
    let duration = match args.duration {
        Some(d) if !(d.is_finite() && d > 0.0) => {
            return usage(format!(
                "--duration {d}: must be a positive number of seconds"
            ))
        }
        Some(d) => Some(Duration::from_secs_f64(d)),
        None => None,
    };
    if duration.is_some() && matches!(args.mode, Mode::Consume | Mode::Catchup) {
        return usage(format!(
            "--duration applies to produce and e2e; {} reads --records records",
            args.mode.name()
        ));
    }
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            return usage(format!("--rate {r}: must be a positive records/s"));
        }
    }
    let compression: Compression = args.compression.parse().map_err(CliError::Usage)?;
    let mut producer = ProducerConfig {
        compression,
        acks: match args.acks {
            AcksArg::All => Acks::All,
            AcksArg::Leader => Acks::Leader,
        },
        ..ProducerConfig::default()
    };
    if let Some(ms) = args.linger_ms {
        producer.linger = Duration::from_millis(ms);
    }
    if let Some(n) = args.max_in_flight {
        if n == 0 {
            return usage("--max-in-flight must be at least 1".into());
        }
        producer.max_in_flight = n;
    }
    if let Some(b) = args.batch_bytes {
        if b == 0 {
            return usage("--batch-bytes must be at least 1".into());
        }
        producer.batch_bytes = b;
        producer.max_request_bytes = producer.max_request_bytes.max(b);
    }
    let records = match (args.records, duration, args.mode) {
        (Some(n), _, _) => Some(n),
        (None, Some(_), _) => None,
        // catchup reads whatever the topic holds
        (None, None, Mode::Catchup) => None,
        (None, None, _) => Some(DEFAULT_RECORDS),
    };
    Ok(Settings {
        mode: args.mode,
        topic: args.topic.clone(),
        record_size: args.record_size,
        records,
        duration,
        producers: args.producers,
        consumers: args.consumers,
        producer,
        rate: args.rate,
    })
}

/// Latency percentiles in ms.
#[derive(Debug, Clone, Copy)]
struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Latency {
    fn from_histogram(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Latency {
            p50: ms(h.value_at_quantile(0.5)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        })
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
struct Summary {
    mode: Mode,
    records: u64,
    bytes: u64,
    seconds: f64,
    latency: Option<Latency>,
    /// Send→ack latency during an e2e run (printed, not in the JSON).
    ack_latency: Option<Latency>,
}

impl Summary {
    fn records_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.records as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn mb_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / 1e6 / self.seconds
        } else {
            0.0
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        let latency = match self.latency {
            Some(l) => serde_json::json!({
                "p50": round(l.p50),
                "p99": round(l.p99),
                "p999": round(l.p999),
                "max": round(l.max),
            }),
            None => serde_json::json!({"p50": null, "p99": null, "p999": null, "max": null}),
        };
        serde_json::json!({
            "mode": self.mode.name(),
            "records": self.records,
            "bytes": self.bytes,
            "seconds": round(self.seconds),
            "records_per_sec": round(self.records_per_sec()),
            "mb_per_sec": round(self.mb_per_sec()),
            "latency_ms": latency,
        })
    }

    fn human(&self) -> String {
        let mut s = format!(
            "{}: {} records, {:.1} MB in {:.3} s: {:.0} records/s, {:.1} MB/s",
            self.mode.name(),
            self.records,
            self.bytes as f64 / 1e6,
            self.seconds,
            self.records_per_sec(),
            self.mb_per_sec()
        );
        let what = match self.mode {
            Mode::E2e => "send→delivered",
            _ => "send→ack",
        };
        if let Some(l) = self.latency {
            s.push_str(&format!(
                "\n  latency {what} ms: p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
                l.p50, l.p99, l.p999, l.max
            ));
        }
        if let Some(l) = self.ack_latency {
            s.push_str(&format!(
                "\n  latency send→ack ms:       p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
                l.p50, l.p99, l.p999, l.max
            ));
        }
        s
    }
}

/// Counters shared with the progress reporter.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
}

async fn run(args: BenchArgs) -> Result<(), CliError> {
    let s = settings(&args)?;
    let client = Client::connect(args.broker.broker.clone()).await?;
    let partitions = ensure_topic(&client, &s.topic, args.partitions, s.mode).await?;
    let summary = match s.mode {
        Mode::Produce => produce(&args.broker.broker, &s, partitions).await?,
        Mode::E2e => e2e(&args.broker.broker, &s, partitions).await?,
        Mode::Consume | Mode::Catchup => {
            consume(&client, &args.broker.broker, &s, partitions).await?
        }
    };
    println!("{}", summary.human());
    if args.json {
        println!("{}", summary.to_json());
    }
    Ok(())
}

/// Creates the topic if missing; returns its partition count. For
/// `catchup` the topic keeps nothing but the active segment locally, so the
/// data is read back from the bucket.
async fn ensure_topic(
    client: &Client,
    topic: &str,
    partitions: u32,
    mode: Mode,
) -> Result<u32, CliError> {
    let mut new = NewTopic::new(topic, partitions);
    if matches!(mode, Mode::Catchup) {
        new = new
            .config("segment.bytes", CATCHUP_SEGMENT_BYTES.to_string())
            .config("local.retention.bytes", "0")
            .config("remote.storage.enable", "true");
    }
    match client.admin().create_topic(new).await {
        Ok(_) => {
            client.invalidate_metadata(topic);
            Ok(partitions)
        }
        Err(tidelog::Error::TopicAlreadyExists(_)) => {
            let n = client.partition_count(topic).await?;
            if n != partitions {
                eprintln!("note: topic {topic} exists with {n} partition(s); using those");
            }
            Ok(n)
        }
        Err(e) => Err(e.into()),
    }
}

/// Payloads of `size` bytes: random lowercase letters (compressible about
/// as well as text, so codecs get realistic work).
fn payloads(size: usize) -> Vec<Bytes> {
    // xorshift64: no need for a cryptographic generator here.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..PAYLOADS)
        .map(|_| {
            let v: Vec<u8> = (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b'a' + (x % 26) as u8
                })
                .collect();
            Bytes::from(v)
        })
        .collect()
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 10 min at 3 significant digits; these bounds are valid.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

fn record_us(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).clamp(1, MAX_LATENCY_US));
}

/// Prints a progress line on stderr every second until cancelled.
fn spawn_progress(
    mode: Mode,
    counters: Arc<Counters>,
    record_size: usize,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let tty = std::io::stderr().is_terminal();
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last = 0u64;
        let mut printed = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => break,
            }
            let (sent, acked, delivered) = (
                counters.sent.load(Ordering::Relaxed),
                counters.acked.load(Ordering::Relaxed),
                counters.delivered.load(Ordering::Relaxed),
            );
            let main = match mode {
                Mode::Produce => acked,
                _ => delivered,
            };
            let rate = main.saturating_sub(last);
            last = main;
            let line = format!(
                "[{:>5.0}s] {}: {:>9} rec/s {:>8.1} MB/s | sent {} acked {} delivered {}",
                started.elapsed().as_secs_f64(),
                mode.name(),
                rate,
                rate as f64 * record_size as f64 / 1e6,
                sent,
                acked,
                delivered
            );
            if tty {
                eprint!("\r{line}\x1b[K");
            } else {
                eprintln!("{line}");
            }
            printed = true;
        }
        if tty && printed {
            eprintln!();
        }
    })
}

/// A running producer task: (records acknowledged, send→ack histogram).
type ProducerTask = tokio::task::JoinHandle<Result<(u64, Histogram<u64>), CliError>>;

/// What one producer task should send.
#[derive(Debug, Clone, Copy)]
struct Quota {
    records: Option<u64>,
    deadline: Option<Instant>,
    /// Records/s for this producer.
    rate: Option<f64>,
}

/// Awaits one partition's acknowledgements in send order (a partition
/// acknowledges in order, so each is timed as it arrives without the cost
/// of polling every pending record); returns (acknowledged, histogram).
async fn collect_acks(
    mut rx: mpsc::UnboundedReceiver<(Instant, DeliveryFuture)>,
    counters: Arc<Counters>,
) -> Result<(u64, Histogram<u64>), CliError> {
    let mut hist = histogram();
    let mut acked = 0u64;
    let mut first_error: Option<tidelog::Error> = None;
    while let Some((sent, fut)) = rx.recv().await {
        match fut.await {
            Ok(_) => {
                record_us(&mut hist, sent.elapsed());
                acked += 1;
                counters.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
        }
    }
    match first_error {
        Some(e) => Err(CliError::Client(e)),
        None => Ok((acked, hist)),
    }
}

/// How early a paced record may go out with the ones before it.
const PACING_SLACK: Duration = Duration::from_micros(200);

/// What one producer sends, and where its acknowledgements go.
struct Sends {
    topic: String,
    partitions: u32,
    batch_bytes: usize,
    quota: Quota,
    size: usize,
    payloads: Arc<Vec<Bytes>>,
    stamp: Option<Instant>,
    counters: Arc<Counters>,
    senders: AckSenders,
}

type AckSenders = Vec<mpsc::UnboundedSender<(Instant, DeliveryFuture)>>;

impl Sends {
    /// Whether record `n` is past the quota.
    fn done(&self, n: u64) -> bool {
        self.quota.records.is_some_and(|max| n >= max)
            || self.quota.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Record `n`, sent (or scheduled) at `sent_at`, and its partition:
    /// the partitions in turn, a batch's worth each.
    fn record(&self, n: u64, sent_at: Instant) -> (u32, ProducerRecord) {
        let payload = &self.payloads[(n as usize) % self.payloads.len()];
        let value = match self.stamp {
            Some(base) => {
                let mut v = BytesMut::with_capacity(self.size);
                v.put_u64_le(sent_at.saturating_duration_since(base).as_nanos() as u64);
                v.put_slice(&payload[8..]);
                v.freeze()
            }
            None => payload.clone(),
        };
        let p =
            ((n * self.size as u64) / self.batch_bytes as u64 % u64::from(self.partitions)) as u32;
        (
            p,
            ProducerRecord::new(self.topic.as_str(), value).partition(p),
        )
    }

    /// Hands an acknowledgement to its partition's collector; false when
    /// the collector stopped (on an error).
    fn track(&self, p: u32, sent_at: Instant, fut: DeliveryFuture) -> bool {
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        self.senders[p as usize].send((sent_at, fut)).is_ok()
    }

    /// As fast as the producer takes them.
    async fn run(self, producer: &Producer) -> Result<AckSenders, CliError> {
        let mut n = 0;
        while !self.done(n) {
            let now = Instant::now();
            let (p, record) = self.record(n, now);
            let fut = producer.enqueue(record).await?;
            if !self.track(p, now, fut) {
                break;
            }
            n += 1;
        }
        Ok(self.senders)
    }

    /// At `quota.rate` records/s. Latency counts from each record's
    /// scheduled send time, so a sender that falls behind does not hide the
    /// wait (coordinated omission).
    fn run_paced(
        self,
        producer: &Producer,
        runtime: &tokio::runtime::Handle,
    ) -> Result<AckSenders, CliError> {
        let rate = self.quota.rate.unwrap_or(f64::MAX);
        let started = Instant::now();
        let mut n = 0;
        while !self.done(n) {
            let due = started + Duration::from_secs_f64(n as f64 / rate);
            let mut now = Instant::now();
            // Sleeping per record would cost a wake-up every 20 µs at
            // 50 MB/s: records due within PACING_SLACK go out together.
            if due > now + PACING_SLACK {
                std::thread::sleep(due - now);
                now = Instant::now();
            }
            // Early records count from when they were really sent.
            let sent_at = due.max(now);
            let (p, record) = self.record(n, sent_at);
            let fut = match producer.try_enqueue(record) {
                Ok(f) => f,
                Err(record) => runtime.block_on(producer.enqueue(record))?,
            };
            if !self.track(p, sent_at, fut) {
                break;
            }
            n += 1;
        }
        Ok(self.senders)
    }
}

/// Sends records; returns (records acknowledged, send→ack histogram).
/// With `stamp`, each value starts with the send time (ns since `base`).
/// Records go to the partitions in turn, a batch's worth each (like the
/// SDK's sticky partitioner), so each partition's acknowledgements are
/// awaited in order by a collector task of its own.
#[allow(clippy::too_many_arguments)]
async fn produce_task(
    producer: Producer,
    topic: String,
    partitions: u32,
    batch_bytes: usize,
    quota: Quota,
    payloads: Arc<Vec<Bytes>>,
    stamp: Option<Instant>,
    counters: Arc<Counters>,
) -> Result<(u64, Histogram<u64>), CliError> {
    let mut senders = Vec::new();
    let mut collectors = Vec::new();
    for _ in 0..partitions.max(1) {
        let (tx, rx) = mpsc::unbounded_channel::<(Instant, DeliveryFuture)>();
        senders.push(tx);
        collectors.push(tokio::spawn(collect_acks(rx, Arc::clone(&counters))));
    }
    let sends = Sends {
        topic,
        partitions: partitions.max(1),
        batch_bytes: batch_bytes.max(1),
        quota,
        size: payloads.first().map_or(0, Bytes::len),
        payloads,
        stamp,
        counters,
        senders,
    };
    let senders = if quota.rate.is_some() {
        // Paced sends run on a thread of their own with sub-millisecond
        // sleeps: Tokio's timer ticks in whole milliseconds, which would add
        // up to 1 ms of the generator's own lateness to every latency.
        let producer = producer.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || sends.run_paced(&producer, &runtime))
            .await
            .map_err(|e| CliError::Usage(format!("sender thread failed: {e}")))??
    } else {
        sends.run(&producer).await?
    };
    producer.flush().await?;
    drop(senders);
    join_counts(collectors, "acknowledgement").await
}

/// Starts `s.producers` producers, each on its own connection.
async fn run_producers(
    broker: &str,
    s: &Settings,
    partitions: u32,
    records: Option<u64>,
    stamp: Option<Instant>,
    counters: &Arc<Counters>,
) -> Result<Vec<ProducerTask>, CliError> {
    let payloads = Arc::new(payloads(s.record_size));
    let deadline = s.duration.map(|d| Instant::now() + d);
    let p = u64::from(s.producers);
    let mut tasks = Vec::new();
    for i in 0..p {
        let client = Client::connect(broker.to_string()).await?;
        let producer = client.producer_with(s.producer.clone());
        let quota = Quota {
            records: records.map(|n| n / p + u64::from(i < n % p)),
            deadline,
            rate: s.rate.map(|r| r / p as f64),
        };
        if quota.records == Some(0) {
            continue;
        }
        tasks.push(tokio::spawn(produce_task(
            producer,
            s.topic.clone(),
            partitions,
            s.producer.batch_bytes,
            quota,
            Arc::clone(&payloads),
            stamp,
            Arc::clone(counters),
        )));
    }
    Ok(tasks)
}

/// Awaits every task, adding up their counts and histograms; the first
/// error wins once all have finished.
async fn join_counts(
    tasks: Vec<ProducerTask>,
    what: &str,
) -> Result<(u64, Histogram<u64>), CliError> {
    let mut total = 0;
    let mut hist = histogram();
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok((n, h))) => {
                total += n;
                let _ = hist.add(&h);
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(CliError::Usage(format!("{what} task failed: {e}")));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok((total, hist)),
    }
}

async fn produce(broker: &str, s: &Settings, partitions: u32) -> Result<Summary, CliError> {
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let progress = spawn_progress(s.mode, Arc::clone(&counters), s.record_size, stop.clone());
    let started = Instant::now();
    let tasks = run_producers(broker, s, partitions, s.records, None, &counters).await?;
    let result = join_counts(tasks, "producer").await;
    let seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = progress.await;
    let (records, hist) = result?;
    Ok(Summary {
        mode: s.mode,
        records,
        bytes: records * s.record_size as u64,
        seconds,
        latency: Latency::from_histogram(&hist),
        ack_latency: None,
    })
}

/// Deals partitions out to `consumers` consumers.
fn deal(partitions: u32, consumers: u32) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); consumers.min(partitions) as usize];
    for p in 0..partitions {
        let n = out.len();
        out[p as usize % n].push(p);
    }
    out
}

async fn e2e(broker: &str, s: &Settings, partitions: u32) -> Result<Summary, CliError> {
    let base = Instant::now();
    let counters = Arc::new(Counters::default());
    let stop_consumers = CancellationToken::new();
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let done = Arc::new(tokio::sync::Notify::new());
    // Consumers first, positioned at the log end.
    let mut consumers = Vec::new();
    for parts in deal(partitions, s.consumers) {
        let c = Client::connect(broker.to_string()).await?;
        let mut consumer = c.consumer_with(ConsumerConfig::default());
        let tps: Vec<TopicPartition> = parts
            .iter()
            .map(|p| TopicPartition::new(s.topic.as_str(), *p))
            .collect();
        consumer.assign(tps.clone());
        for tp in &tps {
            consumer.seek(tp, SeekTo::End).await?;
        }
        let counters = Arc::clone(&counters);
        let stop = stop_consumers.clone();
        let target = Arc::clone(&target);
        let done = Arc::clone(&done);
        consumers.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut bytes = 0u64;
            loop {
                let next = tokio::select! {
                    r = consumer.next_record() => r,
                    _ = stop.cancelled() => break,
                };
                let Some(record) = next else { break };
                let record = record?;
                let now = base.elapsed();
                if let Some(v) = record.value.as_deref() {
                    if let Some(stamp) = v.get(..8) {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(stamp);
                        let sent = Duration::from_nanos(u64::from_le_bytes(b));
                        record_us(&mut hist, now.saturating_sub(sent));
                    }
                    bytes += v.len() as u64;
                }
                let delivered = counters.delivered.fetch_add(1, Ordering::Relaxed) + 1;
                if delivered >= target.load(Ordering::Acquire) {
                    done.notify_one();
                }
            }
            Ok::<_, CliError>((hist, bytes))
        }));
    }
    let stop = CancellationToken::new();
    let progress = spawn_progress(s.mode, Arc::clone(&counters), s.record_size, stop.clone());
    let started = Instant::now();
    let produced = async {
        let tasks = run_producers(broker, s, partitions, s.records, Some(base), &counters).await?;
        join_counts(tasks, "producer").await
    }
    .await;
    let (acked, ack_hist) = match produced {
        Ok(r) => r,
        Err(e) => {
            stop_consumers.cancel();
            stop.cancel();
            return Err(e);
        }
    };
    target.store(acked, Ordering::Release);
    let wait_all = async {
        loop {
            let notified = done.notified();
            if counters.delivered.load(Ordering::Relaxed) >= acked {
                break;
            }
            notified.await;
        }
    };
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, wait_all).await.is_ok();
    let seconds = started.elapsed().as_secs_f64();
    stop_consumers.cancel();
    let mut hist = histogram();
    let mut bytes = 0;
    for c in consumers {
        let (h, b) = c
            .await
            .map_err(|e| CliError::Usage(format!("consumer task failed: {e}")))??;
        let _ = hist.add(&h);
        bytes += b;
    }
    stop.cancel();
    let _ = progress.await;
    let delivered = counters.delivered.load(Ordering::Relaxed);
    if !drained {
        return Err(CliError::Usage(format!(
            "consumers received {delivered} of {acked} acknowledged records within {DRAIN_TIMEOUT:?}"
        )));
    }
    Ok(Summary {
        mode: s.mode,
        records: delivered,
        bytes,
        seconds,
        latency: Latency::from_histogram(&hist),
        ack_latency: Latency::from_histogram(&ack_hist),
    })
}

/// First and end offsets of each partition.
async fn offsets(
    client: &Client,
    topic: &str,
    partitions: u32,
) -> Result<Vec<(i64, i64)>, CliError> {
    let admin = client.admin();
    let mut out = Vec::with_capacity(partitions as usize);
    for p in 0..partitions {
        let (start, _) = admin.list_offsets(topic, p, OffsetSpec::Earliest).await?;
        let (end, _) = admin.list_offsets(topic, p, OffsetSpec::Latest).await?;
        out.push((start, end.max(start)));
    }
    Ok(out)
}

/// Segment size of topics the catchup mode creates.
const CATCHUP_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// Waits until every sealed segment of the topic has left local disk for
/// the bucket (at most two minutes), reporting how much of the topic is
/// remote-only.
async fn wait_for_bucket(client: &Client, topic: &str) -> Result<(), CliError> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let d = client.admin().describe_topic(topic).await?;
        let total: i64 = d
            .partitions
            .iter()
            .map(|p| p.log_end_offset - p.log_start_offset)
            .sum();
        let remote_only: i64 = d
            .partitions
            .iter()
            .map(|p| (p.local_start_offset.min(p.log_end_offset) - p.log_start_offset).max(0))
            .sum();
        let settled = d.partitions.iter().all(|p| p.segments <= 1);
        if settled || Instant::now() >= deadline {
            eprintln!(
                "{topic}: {remote_only} of {total} record(s) are in the bucket only{}",
                if settled {
                    ""
                } else {
                    " (uploads still running after 120 s)"
                }
            );
            return Ok(());
        }
        eprintln!("waiting for uploads: {remote_only} of {total} record(s) in the bucket only");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Consume and catchup: make sure enough records exist, then time fresh
/// consumers reading them from the first offset.
async fn consume(
    client: &Client,
    broker: &str,
    s: &Settings,
    partitions: u32,
) -> Result<Summary, CliError> {
    let mut ranges = offsets(client, &s.topic, partitions).await?;
    let available: u64 = ranges.iter().map(|(a, b)| (b - a) as u64).sum();
    let wanted = match (s.mode, s.records) {
        (_, Some(n)) => n,
        (Mode::Catchup, None) if available > 0 => available,
        _ => DEFAULT_RECORDS,
    };
    if available < wanted {
        let missing = wanted - available;
        eprintln!(
            "{} holds {available} record(s); producing {missing} more first",
            s.topic
        );
        let counters = Arc::new(Counters::default());
        let prep = Settings {
            mode: Mode::Produce,
            duration: None,
            rate: None,
            ..s.clone()
        };
        let stop = CancellationToken::new();
        let progress = spawn_progress(
            Mode::Produce,
            Arc::clone(&counters),
            s.record_size,
            stop.clone(),
        );
        let tasks = run_producers(broker, &prep, partitions, Some(missing), None, &counters).await;
        let joined = match tasks {
            Ok(t) => join_counts(t, "producer").await,
            Err(e) => Err(e),
        };
        stop.cancel();
        let _ = progress.await;
        joined?;
        ranges = offsets(client, &s.topic, partitions).await?;
    }
    if matches!(s.mode, Mode::Catchup) {
        wait_for_bucket(client, &s.topic).await?;
    }
    // Read `wanted` records: whole partitions in order, the last one cut.
    let mut left = wanted;
    let mut targets: HashMap<u32, (i64, i64)> = HashMap::new();
    for (p, (start, end)) in ranges.iter().enumerate() {
        let take = ((end - start) as u64).min(left);
        left -= take;
        if take > 0 {
            targets.insert(p as u32, (*start, start + take as i64));
        }
    }
    let counters = Arc::new(Counters::default());
    let stop = CancellationToken::new();
    let progress = spawn_progress(s.mode, Arc::clone(&counters), s.record_size, stop.clone());
    let started = Instant::now();
    let mut tasks = Vec::new();
    let assigned: Vec<u32> = {
        let mut v: Vec<u32> = targets.keys().copied().collect();
        v.sort_unstable();
        v
    };
    for part in deal(assigned.len() as u32, s.consumers) {
        let mine: HashMap<u32, (i64, i64)> = part
            .iter()
            .filter_map(|i| {
                let p = assigned[*i as usize];
                targets.get(&p).map(|r| (p, *r))
            })
            .collect();
        let c = Client::connect(broker.to_string()).await?;
        let topic = s.topic.clone();
        let counters = Arc::clone(&counters);
        tasks.push(tokio::spawn(async move {
            read_ranges(&c, &topic, mine, &counters).await
        }));
    }
    let mut records = 0;
    let mut bytes = 0;
    let mut failure = None;
    for t in tasks {
        match t.await {
            Ok(Ok((r, b))) => {
                records += r;
                bytes += b;
            }
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => {
                failure = failure.or(Some(CliError::Usage(format!("consumer task failed: {e}"))))
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = progress.await;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Summary {
        mode: s.mode,
        records,
        bytes,
        seconds,
        latency: None,
        ack_latency: None,
    })
}

/// Reads each partition from its start to its end offset with one
/// consumer; returns (records, value bytes).
async fn read_ranges(
    client: &Client,
    topic: &str,
    ranges: HashMap<u32, (i64, i64)>,
    counters: &Counters,
) -> Result<(u64, u64), CliError> {
    let mut consumer = client.consumer_with(ConsumerConfig::default());
    let tps: Vec<TopicPartition> = ranges
        .keys()
        .map(|p| TopicPartition::new(topic, *p))
        .collect();
    consumer.assign(tps.clone());
    let mut open = 0usize;
    for tp in &tps {
        if let Some((start, end)) = ranges.get(&tp.partition) {
            consumer.seek(tp, SeekTo::Offset(*start)).await?;
            if end > start {
                open += 1;
            }
        }
    }
    let mut records = 0u64;
    let mut bytes = 0u64;
    let mut finished: HashMap<u32, bool> = HashMap::new();
    while open > 0 {
        let Some(record) = consumer.next_record().await else {
            break;
        };
        let record = record?;
        let Some(&(_, end)) = ranges.get(&record.partition) else {
            continue;
        };
        if record.offset >= end {
            continue;
        }
        records += 1;
        bytes += record.value.as_ref().map_or(0, |v| v.len() as u64);
        counters.delivered.fetch_add(1, Ordering::Relaxed);
        if record.offset + 1 == end && !finished.contains_key(&record.partition) {
            finished.insert(record.partition, true);
            open -= 1;
        }
    }
    Ok((records, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deal_spreads_partitions() {
        assert_eq!(deal(5, 2), vec![vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(deal(1, 3), vec![vec![0]]);
    }

    #[test]
    fn json_has_the_documented_fields() {
        let s = Summary {
            mode: Mode::Produce,
            records: 10,
            bytes: 10_000,
            seconds: 2.0,
            latency: Some(Latency {
                p50: 1.0,
                p99: 2.0,
                p999: 3.0,
                max: 4.0,
            }),
            ack_latency: None,
        };
        let v = s.to_json();
        assert_eq!(v["mode"], "produce");
        assert_eq!(v["records_per_sec"], 5.0);
        assert_eq!(v["mb_per_sec"], 0.005);
        assert_eq!(v["latency_ms"]["p999"], 3.0);
    }

    #[test]
    fn histogram_records_microseconds() {
        let mut h = histogram();
        record_us(&mut h, Duration::from_millis(2));
        let l = Latency::from_histogram(&h).map(|l| l.p50);
        assert!(l.is_some_and(|ms| (ms - 2.0).abs() < 0.01));
    }
}
