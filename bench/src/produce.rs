//! The produce workload, and the producers the other workloads reuse
//! (consume fills a short topic with them, e2e stamps send times).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hdrhistogram::Histogram;
use tidelog::{Client, Producer};
use tokio::sync::mpsc;

use crate::args::Settings;
use crate::progress::{Counters, Progress};
use crate::report::{histogram, record_us, Latency, Summary};
use crate::sends::{Pending, Quota, Sends};
use crate::tasks::{join_all, Task};
use crate::BenchError;

/// Distinct payloads cycled through (so compression sees varied data).
const PAYLOADS: usize = 64;

/// Records acknowledged, and their send→ack histogram.
pub(crate) type Acked = (u64, Histogram<u64>);

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

/// Awaits one partition's acknowledgements in send order (a partition
/// acknowledges in order, so each is timed as it arrives without the cost
/// of polling every pending record).
async fn collect_acks(
    mut rx: mpsc::UnboundedReceiver<Pending>,
    counters: Arc<Counters>,
) -> Result<Acked, BenchError> {
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
        Some(e) => Err(BenchError::Client(e)),
        None => Ok((acked, hist)),
    }
}

/// Adds up the counts and histograms of tasks that returned [`Acked`].
async fn join_acked(tasks: Vec<Task<Acked>>, what: &str) -> Result<Acked, BenchError> {
    let mut total = 0;
    let mut hist = histogram();
    for (n, h) in join_all(tasks, what).await? {
        total += n;
        let _ = hist.add(&h);
    }
    Ok((total, hist))
}

/// Sends records with one producer. Records go to the partitions in turn,
/// a batch's worth each (like the SDK's sticky partitioner), so each
/// partition's acknowledgements are awaited in order by a collector task
/// of its own.
async fn produce_task(producer: Producer, mut sends: Sends) -> Result<Acked, BenchError> {
    let mut collectors = Vec::new();
    for _ in 0..sends.partitions {
        let (tx, rx) = mpsc::unbounded_channel::<Pending>();
        sends.senders.push(tx);
        collectors.push(tokio::spawn(collect_acks(rx, Arc::clone(&sends.counters))));
    }
    let senders = if sends.quota.rate.is_some() {
        // Paced sends run on a thread of their own with sub-millisecond
        // sleeps: Tokio's timer ticks in whole milliseconds, which would add
        // up to 1 ms of the generator's own lateness to every latency.
        let producer = producer.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || sends.run_paced(&producer, &runtime))
            .await
            .map_err(|e| BenchError::Failed(format!("sender thread failed: {e}")))??
    } else {
        sends.run(&producer).await?
    };
    producer.flush().await?;
    // Closing the channels lets the collectors finish.
    drop(senders);
    join_acked(collectors, "acknowledgement").await
}

/// Runs `s.producers` producers, each on its own connection, until they
/// sent `records` in all (or for `s.duration`). With `stamp`, each value
/// starts with its send time (ns since `stamp`).
pub(crate) async fn run_producers(
    broker: &str,
    s: &Settings,
    partitions: u32,
    records: Option<u64>,
    stamp: Option<Instant>,
    counters: &Arc<Counters>,
) -> Result<Acked, BenchError> {
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
        let sends = Sends {
            topic: s.topic.clone(),
            partitions: partitions.max(1),
            batch_bytes: s.producer.batch_bytes.max(1),
            quota,
            size: payloads.first().map_or(0, Bytes::len),
            payloads: Arc::clone(&payloads),
            stamp,
            counters: Arc::clone(counters),
            senders: Vec::new(),
        };
        tasks.push(tokio::spawn(produce_task(producer, sends)));
    }
    join_acked(tasks, "producer").await
}

/// `produce`: producer throughput and send→ack latency.
pub(crate) async fn produce(
    broker: &str,
    s: &Settings,
    partitions: u32,
) -> Result<Summary, BenchError> {
    let counters = Arc::new(Counters::default());
    let progress = Progress::start(s.mode, Arc::clone(&counters), s.record_size);
    let started = Instant::now();
    let result = run_producers(broker, s, partitions, s.records, None, &counters).await;
    let seconds = started.elapsed().as_secs_f64();
    progress.stop().await;
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
