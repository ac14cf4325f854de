//! `tidelog produce TOPIC`: one record per stdin line.

use std::time::Duration;

use clap::Args;
use tidelog::{Compression, Producer, ProducerConfig, ProducerRecord, Retrying};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

use super::{BrokerArgs, CliError};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to write to.
    topic: String,
    /// Split each line at the first SEP into key and value.
    #[arg(long)]
    key_separator: Option<String>,
    /// Write every record to this partition (default: by key, or sticky).
    #[arg(long)]
    partition: Option<u32>,
    /// Compression: none, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Take each line's bytes as they are (no UTF-8 check): for binary or
    /// mixed-encoding input. Lines still end at a newline.
    #[arg(long)]
    binary: bool,
    /// Give up on a record not acknowledged within this many ms, retries
    /// included (Kafka's delivery.timeout.ms).
    #[arg(long, default_value_t = 120_000, value_parser = clap::value_parser!(u64).range(1..))]
    delivery_timeout_ms: u64,
}

/// One stdin line without its line ending (`\n` or `\r\n`).
fn trim_line_end(mut line: &[u8]) -> &[u8] {
    if let Some(l) = line.strip_suffix(b"\n") {
        line = l;
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
    }
    line
}

pub async fn run(args: ProduceArgs, broker: &BrokerArgs) -> Result<(), CliError> {
    let compression: Compression = args.compression.parse().map_err(CliError::Usage)?;
    if let Some(sep) = &args.key_separator {
        if sep.is_empty() {
            return Err(CliError::Usage("--key-separator must not be empty".into()));
        }
    }
    let client = broker.connect().await?;
    // Fail early on an unknown topic rather than after reading stdin.
    let partitions = client.partition_count(&args.topic).await?;
    if let Some(p) = args.partition {
        super::check_partition(&args.topic, p, partitions)?;
    }
    let delivery_timeout = Duration::from_millis(args.delivery_timeout_ms);
    let producer = client.producer_with(ProducerConfig {
        compression,
        delivery_timeout,
        ..ProducerConfig::default()
    });
    let reporter = tokio::spawn(report_retries(producer.retries(), delivery_timeout));
    let result = send_lines(&args, &producer).await;
    reporter.abort();
    let count = result?;
    eprintln!("produced {count} record(s) to {}", args.topic);
    Ok(())
}

/// Sends every stdin line; returns how many. A line that is not UTF-8
/// (without `--binary`) ends the input: what came before it is still sent,
/// then the line is reported.
async fn send_lines(args: &ProduceArgs, producer: &Producer) -> Result<u64, CliError> {
    let mut input = BufReader::new(tokio::io::stdin());
    let mut pending = Vec::new();
    let mut count: u64 = 0;
    let mut buf = Vec::new();
    let mut bad_line = None;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf).await? == 0 {
            break;
        }
        let line = trim_line_end(&buf);
        if !args.binary && std::str::from_utf8(line).is_err() {
            bad_line = Some(count + 1);
            break;
        }
        let sep = args.key_separator.as_deref().map(str::as_bytes);
        let split = sep.and_then(|sep| {
            let at = line.windows(sep.len()).position(|w| w == sep)?;
            Some((&line[..at], &line[at + sep.len()..]))
        });
        let mut record = match split {
            Some((k, v)) => ProducerRecord::new(&args.topic, v.to_vec()).key(k.to_vec()),
            None => ProducerRecord::new(&args.topic, line.to_vec()),
        };
        if let Some(p) = args.partition {
            record = record.partition(p);
        }
        pending.push(producer.enqueue(record).await?);
        count += 1;
        // Surface errors as they happen and bound memory.
        if pending.len() >= 10_000 {
            for f in pending.drain(..) {
                f.await?;
            }
        }
    }
    for f in pending {
        f.await?;
    }
    producer.flush().await?;
    match bad_line {
        Some(n) => Err(CliError::Usage(format!(
            "stdin line {n} is not valid UTF-8; the {count} line(s) before it were sent \
             to {}, the rest was not; use --binary to send lines as raw bytes",
            args.topic
        ))),
        None => Ok(count),
    }
}

/// Prints one stderr line when sends start failing and are being retried
/// (e.g. the broker's disk is full), and one when they go through again.
async fn report_retries(mut retries: watch::Receiver<Option<Retrying>>, timeout: Duration) {
    let mut shown: Option<String> = None;
    while retries.changed().await.is_ok() {
        let now = retries.borrow_and_update().clone();
        match now {
            Some(r) => {
                let reason = r.error.to_string();
                // Once per distinct reason: the back-off repeats it often.
                if shown.as_deref() != Some(reason.as_str()) {
                    eprintln!(
                        "warning: {}/{}: {reason}; retrying (giving up after {} ms)",
                        r.topic,
                        r.partition,
                        timeout.as_millis()
                    );
                    shown = Some(reason);
                }
            }
            None => {
                if shown.take().is_some() {
                    eprintln!("warning: sends go through again");
                }
            }
        }
    }
}
