//! The e2e workload: producers and consumers at once; every value carries
//! its send time, and latency is send → delivered by `next_record`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tidelog::{Client, Consumer, ConsumerConfig, SeekTo, TopicPartition};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::args::Settings;
use crate::consume::deal;
use crate::produce::run_producers;
use crate::progress::{Counters, Progress};
use crate::report::{histogram, record_us, Latency, Summary};
use crate::tasks::join_all;
use crate::BenchError;

/// How long e2e consumers may trail the last acknowledgement.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What the consumers share: when to stop, and how many deliveries make
/// the run complete (unknown, `u64::MAX`, until the producers finished).
struct Drain {
    counters: Arc<Counters>,
    stop: CancellationToken,
    target: AtomicU64,
    done: Notify,
}

pub(crate) async fn e2e(
    broker: &str,
    s: &Settings,
    partitions: u32,
) -> Result<Summary, BenchError> {
    let base = Instant::now();
    let counters = Arc::new(Counters::default());
    let drain = Arc::new(Drain {
        counters: Arc::clone(&counters),
        stop: CancellationToken::new(),
        target: AtomicU64::new(u64::MAX),
        done: Notify::new(),
    });
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
        consumers.push(tokio::spawn(receive(consumer, base, Arc::clone(&drain))));
    }
    let progress = Progress::start(s.mode, Arc::clone(&counters), s.record_size);
    let started = Instant::now();
    let produced = run_producers(broker, s, partitions, s.records, Some(base), &counters).await;
    let (acked, ack_hist) = match produced {
        Ok(r) => r,
        Err(e) => {
            drain.stop.cancel();
            progress.stop().await;
            return Err(e);
        }
    };
    drain.target.store(acked, Ordering::Release);
    let wait_all = async {
        loop {
            let notified = drain.done.notified();
            if counters.delivered.load(Ordering::Relaxed) >= acked {
                break;
            }
            notified.await;
        }
    };
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, wait_all).await.is_ok();
    let seconds = started.elapsed().as_secs_f64();
    drain.stop.cancel();
    let received = join_all(consumers, "consumer").await;
    progress.stop().await;
    let mut hist = histogram();
    let mut bytes = 0;
    for (h, b) in received? {
        let _ = hist.add(&h);
        bytes += b;
    }
    let delivered = counters.delivered.load(Ordering::Relaxed);
    if !drained {
        return Err(BenchError::Failed(format!(
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

/// One consumer: times each record against the send time in its first 8
/// bytes until stopped; returns (send→delivered histogram, value bytes).
async fn receive(
    mut consumer: Consumer,
    base: Instant,
    drain: Arc<Drain>,
) -> Result<(Histogram<u64>, u64), BenchError> {
    let mut hist = histogram();
    let mut bytes = 0u64;
    loop {
        let next = tokio::select! {
            r = consumer.next_record() => r,
            _ = drain.stop.cancelled() => break,
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
        let delivered = drain.counters.delivered.fetch_add(1, Ordering::Relaxed) + 1;
        if delivered >= drain.target.load(Ordering::Acquire) {
            drain.done.notify_one();
        }
    }
    Ok((hist, bytes))
}
