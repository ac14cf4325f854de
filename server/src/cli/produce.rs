//! `tidelog produce TOPIC`: one record per stdin line.

use clap::Args;
use tidelog::{Compression, ProducerConfig, ProducerRecord};
use tokio::io::{AsyncBufReadExt, BufReader};

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
        if p >= partitions {
            return Err(CliError::Usage(format!(
                "--partition {p}: topic {} has partitions 0..{partitions}",
                args.topic
            )));
        }
    }
    let producer = client.producer_with(ProducerConfig {
        compression,
        ..ProducerConfig::default()
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut pending = Vec::new();
    let mut count: u64 = 0;
    while let Some(line) = lines.next_line().await? {
        let mut record = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => ProducerRecord::new(&args.topic, v.to_string()).key(k.to_string()),
                None => ProducerRecord::new(&args.topic, line),
            },
            None => ProducerRecord::new(&args.topic, line),
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
    eprintln!("produced {count} record(s) to {}", args.topic);
    Ok(())
}
