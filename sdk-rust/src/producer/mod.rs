//! The producer: batching by size and linger, key-hash partitioning,
//! compression, and idempotent retries.
//!
//! Each partition has a queue and a sender task. The task waits up to
//! `linger` for a batch to fill, encodes what is queued into batches of
//! `batch_bytes`, and sends them as one request on the partition's produce
//! stream. Up to `max_in_flight` requests per partition are outstanding at
//! once (pipelining: the transfer of one overlaps the broker's fsync of
//! another); while the window is full new records queue up and ride the
//! next request. The stream keeps requests in order end to end, and every
//! batch carries the producer id and per-partition sequence numbers, so a
//! retry after a lost answer is recognised by the broker and not written
//! twice.

mod accumulator;
mod delivery;
mod sender;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tidelog_proto::batch::Compression;
use tidelog_proto::limits::DEDUPE_WINDOW_BATCHES;
use tokio::sync::{Notify, Semaphore};

use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::partitioner::partition_for_key;
use accumulator::PartitionQueue;
pub use delivery::{DeliveryFuture, RecordMetadata};

/// When the broker acknowledges a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// After the data is fsynced (durable). The default.
    #[default]
    All,
    /// After the leader appended it, before fsync (faster; a crash can lose
    /// acknowledged records).
    Leader,
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// How long a partition's sender waits for a batch to fill.
    pub linger: Duration,
    /// Target size of one batch, uncompressed.
    pub batch_bytes: usize,
    /// Most bytes of batches in one request.
    pub max_request_bytes: usize,
    /// Most bytes buffered (queued or in flight) before `send` waits.
    pub buffer_bytes: usize,
    /// Compression of batches.
    pub compression: Compression,
    /// Durability of acknowledgements.
    pub acks: Acks,
    /// How long a record may take to be acknowledged, retries included.
    pub delivery_timeout: Duration,
    /// First retry back-off (doubles up to 1 s).
    pub retry_backoff: Duration,
    /// Produce requests per partition sent before the first is answered
    /// (pipelining; they travel in order on one stream). 1 means
    /// stop-and-wait. Requests carry fewer batches as this grows, so that
    /// at most 256 batches of a partition are unanswered (what the broker
    /// remembers to recognise retries).
    pub max_in_flight: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger: Duration::from_millis(5),
            batch_bytes: 256 * 1024,
            max_request_bytes: 4 * 1024 * 1024,
            buffer_bytes: 64 * 1024 * 1024,
            compression: Compression::None,
            acks: Acks::All,
            delivery_timeout: Duration::from_secs(120),
            retry_backoff: Duration::from_millis(50),
            max_in_flight: 10,
        }
    }
}

/// A record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// Topic.
    pub topic: String,
    /// Explicit partition; otherwise chosen from the key (murmur2) or, with
    /// no key, sticky per batch.
    pub partition: Option<u32>,
    /// Optional key.
    pub key: Option<Bytes>,
    /// Value (`None` is a tombstone).
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<(String, Bytes)>,
    /// Timestamp in ms; defaults to now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Pins the partition.
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp (ms since the epoch).
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }

    fn size(&self) -> usize {
        32 + self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>()
    }
}

/// A partition's sender is retrying a retriable failure (broker out of
/// disk, leader unreachable, ...): see [`Producer::retries`].
#[derive(Debug, Clone)]
pub struct Retrying {
    /// Topic of the partition.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The failure being retried.
    pub error: crate::Error,
}

struct Shared {
    /// The latest retry in progress; `None` once a send succeeds again.
    retrying: tokio::sync::watch::Sender<Option<Retrying>>,
    conn: Connection,
    config: ProducerConfig,
    producer_id: i64,
    closed: AtomicBool,
    flushing: AtomicUsize,
    /// Records queued or in flight.
    outstanding: AtomicUsize,
    idle: Notify,
    /// Bytes of records queued or in flight (`buffer_bytes` permits).
    buffer: Arc<Semaphore>,
}

impl Shared {
    /// Requests per partition in flight: `max_in_flight`, kept within what
    /// the broker remembers for recognising retries.
    fn window(&self) -> usize {
        self.config.max_in_flight.clamp(1, DEDUPE_WINDOW_BATCHES)
    }

    /// Returns a settled batch's buffer space; wakes `flush` when nothing
    /// is left outstanding.
    fn release(&self, records: usize, permits: usize) {
        self.buffer.add_permits(permits);
        if records > 0 && self.outstanding.fetch_sub(records, Ordering::AcqRel) == records {
            self.idle.notify_waiters();
        }
    }
}

type Queues = HashMap<String, HashMap<u32, Arc<PartitionQueue>>>;

struct ProducerInner {
    shared: Arc<Shared>,
    queues: Mutex<Queues>,
    sticky: Mutex<HashMap<String, (u32, usize)>>,
}

impl ProducerInner {
    fn all_queues(&self) -> Vec<Arc<PartitionQueue>> {
        match self.queues.lock() {
            Ok(q) => q.values().flat_map(|p| p.values().cloned()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for ProducerInner {
    fn drop(&mut self) {
        // Sender tasks drain what is queued, then stop.
        self.shared.closed.store(true, Ordering::Release);
        for queue in self.all_queues() {
            queue.wake.notify_one();
        }
    }
}

/// Sends records to topics. Cheap to clone; clones share queues.
///
/// ```no_run
/// # async fn demo() -> tidelog::Result<()> {
/// use tidelog::{Client, ProducerRecord};
/// let client = Client::connect("127.0.0.1:7070").await?;
/// let producer = client.producer();
/// let meta = producer
///     .send(ProducerRecord::new("orders", "hello").key("user-1").header("source", "web"))
///     .await?;
/// println!("written at {}/{}@{}", meta.topic, meta.partition, meta.offset);
/// producer.flush().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Producer {
    inner: Arc<ProducerInner>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("producer_id", &self.inner.shared.producer_id)
            .finish()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Producer {
    pub(crate) fn new(conn: Connection, config: ProducerConfig) -> Self {
        let permits = config.buffer_bytes.clamp(1, Semaphore::MAX_PERMITS);
        Producer {
            inner: Arc::new(ProducerInner {
                shared: Arc::new(Shared {
                    retrying: tokio::sync::watch::Sender::new(None),
                    conn,
                    // A random 63-bit id: no allocation round trip needed.
                    producer_id: (rand::random::<u64>() >> 1) as i64,
                    config,
                    closed: AtomicBool::new(false),
                    flushing: AtomicUsize::new(0),
                    outstanding: AtomicUsize::new(0),
                    idle: Notify::new(),
                    buffer: Arc::new(Semaphore::new(permits)),
                }),
                queues: Mutex::new(HashMap::new()),
                sticky: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Watches retries: the value is the latest retriable failure a
    /// partition is retrying (until the delivery timeout), and `None` again
    /// once a send succeeds. Lets a tool say why it is waiting instead of
    /// sitting silent until the timeout.
    pub fn retries(&self) -> tokio::sync::watch::Receiver<Option<Retrying>> {
        self.inner.shared.retrying.subscribe()
    }

    /// The idempotent producer id (a partition that exhausts its 32,768
    /// producer epochs after repeated failures continues under a new one).
    pub fn producer_id(&self) -> i64 {
        self.inner.shared.producer_id
    }

    /// Sends a record and waits for its acknowledgement.
    pub async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        self.enqueue(record).await?.await
    }

    /// Buffer permits a record of `size` bytes holds.
    fn permits_for(&self, size: usize) -> usize {
        let max = self
            .inner
            .shared
            .config
            .buffer_bytes
            .clamp(1, Semaphore::MAX_PERMITS)
            .min(u32::MAX as usize);
        size.clamp(1, max)
    }

    /// Queues a record (waiting only if the buffer is full) and returns a
    /// future for its acknowledgement. Records queued one after another
    /// from one task keep their order within a partition.
    pub async fn enqueue(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let shared = &self.inner.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let size = record.size();
        let partition = match record.partition {
            Some(p) => p,
            None => {
                let n = shared.conn.partition_count(&record.topic).await?;
                match &record.key {
                    Some(k) => partition_for_key(k, n),
                    None => self.sticky_partition(&record.topic, n, size),
                }
            }
        };
        let permits = self.permits_for(size);
        shared
            .buffer
            .acquire_many(permits as u32)
            .await
            .map_err(|_| Error::Closed)?
            // Returned in bulk when the record's batch is settled.
            .forget();
        Ok(self.push(record, partition, size, permits))
    }

    /// Queues a record without waiting when that is possible right now: the
    /// partition is known (explicit, or the topic's partition count is
    /// cached) and the buffer has room. Otherwise hands the record back, and
    /// the caller uses [`Producer::enqueue`]. For language bindings that
    /// want to avoid an async round trip per record; must run inside a
    /// Tokio runtime context.
    // Handing the record back by value (no allocation) is the point.
    #[allow(clippy::result_large_err)]
    pub fn try_enqueue(
        &self,
        record: ProducerRecord,
    ) -> std::result::Result<DeliveryFuture, ProducerRecord> {
        let shared = &self.inner.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(record);
        }
        let size = record.size();
        let partition = match record.partition {
            Some(p) => p,
            None => {
                let Some(n) = shared.conn.cached_count(&record.topic) else {
                    return Err(record);
                };
                match &record.key {
                    Some(k) => partition_for_key(k, n),
                    None => self.sticky_partition(&record.topic, n, size),
                }
            }
        };
        let permits = self.permits_for(size);
        let Ok(permit) = shared.buffer.try_acquire_many(permits as u32) else {
            return Err(record);
        };
        permit.forget();
        Ok(self.push(record, partition, size, permits))
    }

    /// Encodes a record into its partition's open batch.
    fn push(
        &self,
        record: ProducerRecord,
        partition: u32,
        size: usize,
        permits: usize,
    ) -> DeliveryFuture {
        let shared = &self.inner.shared;
        let queue = match self.queue(&record.topic, partition) {
            Ok(q) => q,
            Err(e) => {
                shared.release(0, permits);
                return DeliveryFuture::failed(Arc::from(record.topic.as_str()), partition, e);
            }
        };
        shared.outstanding.fetch_add(1, Ordering::AcqRel);
        queue.append(
            record.timestamp.unwrap_or_else(now_ms),
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
            size,
            permits,
        )
    }

    /// Kafka's sticky partitioner: keyless records stick to one partition
    /// until about a batch's worth went there.
    fn sticky_partition(&self, topic: &str, partitions: u32, size: usize) -> u32 {
        let Ok(mut sticky) = self.inner.sticky.lock() else {
            return 0;
        };
        if !sticky.contains_key(topic) {
            sticky.insert(
                topic.to_string(),
                (rand::random::<u32>() % partitions.max(1), 0),
            );
        }
        let Some(entry) = sticky.get_mut(topic) else {
            return 0;
        };
        if entry.1 >= self.inner.shared.config.batch_bytes || entry.0 >= partitions {
            entry.0 = if partitions > 1 {
                (entry.0 + 1 + rand::random::<u32>() % (partitions - 1)) % partitions
            } else {
                0
            };
            entry.1 = 0;
        }
        entry.1 += size;
        entry.0
    }

    /// The partition's queue, starting its sender on first use.
    fn queue(&self, topic: &str, partition: u32) -> Result<Arc<PartitionQueue>> {
        let mut queues = match self.inner.queues.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(q) = queues.get(topic).and_then(|p| p.get(&partition)) {
            return Ok(Arc::clone(q));
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::InvalidRequest("a producer must be used inside a Tokio runtime".into())
        })?;
        let config = &self.inner.shared.config;
        let q = Arc::new(PartitionQueue::new(
            Arc::from(topic),
            partition,
            config.compression,
            config.batch_bytes,
        ));
        queues
            .entry(topic.to_string())
            .or_default()
            .insert(partition, Arc::clone(&q));
        let sender = sender::Sender::new(Arc::clone(&self.inner.shared), Arc::clone(&q), partition);
        runtime.spawn(sender.run());
        Ok(q)
    }

    /// Sends everything queued now, skipping linger, and waits until every
    /// record sent so far is acknowledged or failed.
    pub async fn flush(&self) -> Result<()> {
        let shared = &self.inner.shared;
        // Undone on drop too, so a cancelled flush (a timeout around it)
        // does not leave every partition skipping its linger.
        let _hurry = Hurry::new(&shared.flushing);
        for q in self.inner.all_queues() {
            q.wake.notify_one();
        }
        loop {
            let idle = shared.idle.notified();
            if shared.outstanding.load(Ordering::Acquire) == 0 {
                break;
            }
            idle.await;
        }
        Ok(())
    }
}

/// Counts a flush in progress while it lives.
struct Hurry<'a>(&'a AtomicUsize);

impl<'a> Hurry<'a> {
    fn new(flushing: &'a AtomicUsize) -> Self {
        flushing.fetch_add(1, Ordering::AcqRel);
        Hurry(flushing)
    }
}

impl Drop for Hurry<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
