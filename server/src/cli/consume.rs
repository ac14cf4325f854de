//! `tidelog consume TOPIC`: print records, one per line.

use std::io::Write;

use clap::{Args, ValueEnum};
use tidelog::{ConsumerRecord, GroupConsumerConfig, OffsetReset, SeekTo, TopicPartition};

use super::{parse_time, BrokerArgs, CliError};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// The value only.
    Value,
    /// key TAB value.
    Kv,
    /// One JSON object per record: topic, partition, offset, timestamp, key, value, headers.
    Json,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Start at the first offset in the log.
    #[arg(long, conflicts_with_all = ["offset", "from_time"])]
    from_beginning: bool,
    /// Start at this offset (in every partition read).
    #[arg(long, conflicts_with = "from_time")]
    offset: Option<i64>,
    /// Start at the first record at or after this time (RFC 3339, e.g. 2026-11-28T09:00:00Z).
    #[arg(long)]
    from_time: Option<String>,
    /// Read only this partition (default: all).
    #[arg(long, conflicts_with = "group")]
    partition: Option<u32>,
    /// Consume as a member of this consumer group: start at the group's
    /// committed offsets (earliest when none) and commit what was printed
    /// every 5 s while following and on exit (Ctrl-C and SIGTERM included).
    #[arg(long, conflicts_with_all = ["from_beginning", "offset", "from_time"])]
    group: Option<String>,
    /// Stop after COUNT records (default: follow until interrupted).
    #[arg(short = 'n', long = "count")]
    count: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "value")]
    format: Format,
}

fn lossy(b: &Option<bytes::Bytes>) -> Option<String> {
    b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
}

fn print(out: &mut impl Write, r: &ConsumerRecord, format: Format) -> std::io::Result<()> {
    match format {
        Format::Value => {
            out.write_all(r.value.as_deref().unwrap_or_default())?;
            out.write_all(b"\n")
        }
        Format::Kv => {
            out.write_all(r.key.as_deref().unwrap_or_default())?;
            out.write_all(b"\t")?;
            out.write_all(r.value.as_deref().unwrap_or_default())?;
            out.write_all(b"\n")
        }
        Format::Json => {
            let headers: serde_json::Map<String, serde_json::Value> = r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned().into()))
                .collect();
            let v = serde_json::json!({
                "topic": &*r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "timestamp": r.timestamp,
                "key": lossy(&r.key),
                "value": lossy(&r.value),
                "headers": headers,
            });
            writeln!(out, "{v}")
        }
    }
}

/// Prints records to stdout and counts them against `--count`.
struct Printer {
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    format: Format,
    printed: u64,
    count: Option<u64>,
}

impl Printer {
    fn new(args: &ConsumeArgs) -> Self {
        Printer {
            out: std::io::BufWriter::new(std::io::stdout().lock()),
            format: args.format,
            printed: 0,
            count: args.count,
        }
    }

    /// Prints `first` and what is already fetched (`more`), then flushes
    /// before the caller waits again: a reader sees each record as soon as
    /// it arrived. Returns whether `--count` records are printed.
    fn batch(
        &mut self,
        first: ConsumerRecord,
        mut more: impl FnMut() -> Option<ConsumerRecord>,
    ) -> std::io::Result<bool> {
        let mut record = first;
        loop {
            print(&mut self.out, &record, self.format)?;
            self.printed += 1;
            if Some(self.printed) == self.count {
                return Ok(true);
            }
            match more() {
                Some(r) => record = r,
                None => break,
            }
        }
        self.out.flush()?;
        Ok(false)
    }
}

pub async fn run(args: ConsumeArgs, broker: &BrokerArgs) -> Result<(), CliError> {
    if let Some(group) = args.group.clone() {
        return run_group(args, group, broker).await;
    }
    let start = if args.from_beginning {
        SeekTo::Beginning
    } else if let Some(o) = args.offset {
        if o < 0 {
            return Err(CliError::Usage(format!("--offset {o}: must be >= 0")));
        }
        SeekTo::Offset(o)
    } else if let Some(t) = &args.from_time {
        SeekTo::Timestamp(parse_time("--from-time", t)?)
    } else {
        SeekTo::End
    };
    let client = broker.connect().await?;
    let partitions = client.partition_count(&args.topic).await?;
    let tps: Vec<TopicPartition> = match args.partition {
        Some(p) => {
            super::check_partition(&args.topic, p, partitions)?;
            vec![TopicPartition::new(&args.topic, p)]
        }
        None => (0..partitions)
            .map(|p| TopicPartition::new(&args.topic, p))
            .collect(),
    };
    let mut consumer = client.consumer();
    consumer.assign(tps.clone());
    for tp in &tps {
        consumer.seek(tp, start).await?;
    }
    if args.count == Some(0) {
        return Ok(());
    }
    let mut printer = Printer::new(&args);
    let mut stop = std::pin::pin!(terminated());
    let result: Result<(), CliError> = async {
        loop {
            let next = tokio::select! {
                r = consumer.next_record() => r,
                _ = &mut stop => None,
            };
            let Some(record) = next else { break };
            if printer.batch(record?, || consumer.try_next_record())? {
                return Ok(());
            }
        }
        Ok(())
    }
    .await;
    // Flush what was printed, on success, error or signal alike.
    printer.out.flush()?;
    result
}

/// Completes on SIGTERM or Ctrl-C (SIGINT), so both stop cleanly.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    // No SIGTERM handler (or not unix): Ctrl-C only.
    let _ = tokio::signal::ctrl_c().await;
}

/// `--group`: a group member that commits what it printed: every
/// auto-commit interval while it runs (the SDK's default, 5 s), when
/// partitions move, and on exit, including SIGTERM and Ctrl-C.
async fn run_group(args: ConsumeArgs, group: String, broker: &BrokerArgs) -> Result<(), CliError> {
    let client = broker.connect().await?;
    let mut config = GroupConsumerConfig::new(group);
    config.auto_offset_reset = OffsetReset::Earliest;
    // The SDK commits the position after the last record it returned;
    // every returned record is printed and flushed before the next call,
    // so what it commits has been printed.
    config.auto_commit = true;
    config.client_id = "tidelog-cli".into();
    let mut consumer = client.group_consumer(config);
    consumer.subscribe(&[args.topic.as_str()]).await?;
    let mut printer = Printer::new(&args);
    let mut stop = std::pin::pin!(terminated());
    let result: Result<(), CliError> = async {
        if args.count == Some(0) {
            return Ok(());
        }
        // `next_record_until` abandons only an idle wait, never a
        // rebalance or commit half done.
        while let Some(record) = consumer.next_record_until(stop.as_mut()).await {
            if printer.batch(record?, || consumer.try_next_record())? {
                return Ok(());
            }
        }
        Ok(())
    }
    .await;
    let flushed = printer.out.flush();
    // Commits what was returned (all of it printed), then leaves the group.
    let closed = consumer.close().await;
    result?;
    flushed?;
    closed?;
    Ok(())
}
