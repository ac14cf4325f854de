//! One producer's send loop: which record goes next, to which partition,
//! and when (as fast as the producer takes them, or paced at a rate).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tidelog::{DeliveryFuture, Producer, ProducerRecord};
use tokio::sync::mpsc;

use crate::progress::Counters;
use crate::BenchError;

/// How early a paced record may go out with the ones before it.
const PACING_SLACK: Duration = Duration::from_micros(200);

/// What one producer task should send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quota {
    pub records: Option<u64>,
    pub deadline: Option<Instant>,
    /// Records/s for this producer.
    pub rate: Option<f64>,
}

/// A sent record's send time and acknowledgement, on its way to the
/// partition's collector.
pub(crate) type Pending = (Instant, DeliveryFuture);

/// One sender per partition, to that partition's collector.
pub(crate) type AckSenders = Vec<mpsc::UnboundedSender<Pending>>;

/// What one producer sends, and where its acknowledgements go.
pub(crate) struct Sends {
    pub topic: String,
    pub partitions: u32,
    pub batch_bytes: usize,
    pub quota: Quota,
    pub size: usize,
    pub payloads: Arc<Vec<Bytes>>,
    /// With a base instant, each value starts with its send time (ns since
    /// the base) for e2e latency.
    pub stamp: Option<Instant>,
    pub counters: Arc<Counters>,
    pub senders: AckSenders,
}

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
    pub(crate) async fn run(self, producer: &Producer) -> Result<AckSenders, BenchError> {
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
    pub(crate) fn run_paced(
        self,
        producer: &Producer,
        runtime: &tokio::runtime::Handle,
    ) -> Result<AckSenders, BenchError> {
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
