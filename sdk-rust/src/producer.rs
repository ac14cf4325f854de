//! The producer: batching by size and linger, key-hash partitioning,
//! compression, and idempotent retries.
//!
//! Each partition has a queue and a sender task. The task waits up to
//! `linger` for a batch to fill, encodes what is queued into batches of
//! `batch_bytes`, and sends them in one request. Up to `max_in_flight`
//! requests per partition are outstanding at once (pipelining, so the
//! transfer of one overlaps the broker's fsync of another); while the window
//! is full new records queue up and ride the next request. Every batch
//! carries the producer id and per-partition sequence numbers, so a retry
//! after a lost answer is recognised by the broker and not written twice,
//! and a request that overtook an earlier one is refused and sent again.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidelog_proto::batch::{BatchBuilder, Compression};
use tidelog_proto::v1::{
    producer_client::ProducerClient, Acks as WireAcks, ProduceRequest, ProduceResponse,
};
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::client::{Client, MAX_MESSAGE_BYTES};
use crate::error::{Error, Result};
use crate::partitioner::partition_for_key;

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
    /// (pipelining). Default 1: with more, heavy bursts have been seen to
    /// fail with `OUT_OF_ORDER_SEQUENCE` (a known bug under investigation),
    /// so values above 1 are experimental.
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
            max_in_flight: 1,
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

/// Where a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: i64,
    /// Timestamp (ms) stored with the record.
    pub timestamp: i64,
}

/// Resolves when the broker acknowledged a record (or it failed for good).
#[derive(Debug)]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<RecordMetadata>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

struct Pending {
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(String, Bytes)>,
    size: usize,
    enqueued: Instant,
    tx: oneshot::Sender<Result<RecordMetadata>>,
    _permit: OwnedSemaphorePermit,
}

#[derive(Default)]
struct PartitionQueue {
    pending: Mutex<VecDeque<Pending>>,
    bytes: AtomicUsize,
    wake: Notify,
}

struct Shared {
    client: Client,
    config: ProducerConfig,
    producer_id: i64,
    closed: AtomicBool,
    flushing: AtomicUsize,
    /// Records queued or in flight.
    outstanding: AtomicUsize,
    idle: Notify,
}

struct ProducerInner {
    shared: Arc<Shared>,
    queues: Mutex<HashMap<(String, u32), Arc<PartitionQueue>>>,
    sticky: Mutex<HashMap<String, (u32, usize)>>,
    buffer: Arc<Semaphore>,
}

impl Drop for ProducerInner {
    fn drop(&mut self) {
        // Sender tasks drain what is queued, then stop.
        self.shared.closed.store(true, Ordering::Release);
        if let Ok(q) = self.queues.lock() {
            for queue in q.values() {
                queue.wake.notify_one();
            }
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
    pub(crate) fn new(client: Client, config: ProducerConfig) -> Self {
        let permits = config.buffer_bytes.clamp(1, Semaphore::MAX_PERMITS);
        Producer {
            inner: Arc::new(ProducerInner {
                shared: Arc::new(Shared {
                    client,
                    // A random 63-bit id: no allocation round trip needed.
                    producer_id: (rand::random::<u64>() >> 1) as i64,
                    config,
                    closed: AtomicBool::new(false),
                    flushing: AtomicUsize::new(0),
                    outstanding: AtomicUsize::new(0),
                    idle: Notify::new(),
                }),
                queues: Mutex::new(HashMap::new()),
                sticky: Mutex::new(HashMap::new()),
                buffer: Arc::new(Semaphore::new(permits)),
            }),
        }
    }

    /// The idempotent producer id.
    pub fn producer_id(&self) -> i64 {
        self.inner.shared.producer_id
    }

    /// Sends a record and waits for its acknowledgement.
    pub async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        self.enqueue(record).await?.await
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
                let n = shared.client.partition_count(&record.topic).await?;
                match &record.key {
                    Some(k) => partition_for_key(k, n),
                    None => self.sticky_partition(&record.topic, n, size),
                }
            }
        };
        let permits = size.clamp(
            1,
            shared.config.buffer_bytes.clamp(1, Semaphore::MAX_PERMITS),
        ) as u32;
        let permit = Arc::clone(&self.inner.buffer)
            .acquire_many_owned(permits)
            .await
            .map_err(|_| Error::Closed)?;
        Ok(self.push(record, partition, size, permit))
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
                let Some(n) = shared.client.cached_count(&record.topic) else {
                    return Err(record);
                };
                match &record.key {
                    Some(k) => partition_for_key(k, n),
                    None => self.sticky_partition(&record.topic, n, size),
                }
            }
        };
        let permits = size.clamp(
            1,
            shared.config.buffer_bytes.clamp(1, Semaphore::MAX_PERMITS),
        ) as u32;
        let Ok(permit) = Arc::clone(&self.inner.buffer).try_acquire_many_owned(permits) else {
            return Err(record);
        };
        Ok(self.push(record, partition, size, permit))
    }

    /// Appends a record to its partition queue.
    fn push(
        &self,
        record: ProducerRecord,
        partition: u32,
        size: usize,
        permit: OwnedSemaphorePermit,
    ) -> DeliveryFuture {
        let shared = &self.inner.shared;
        let (tx, rx) = oneshot::channel();
        let queue = self.queue(&record.topic, partition);
        shared.outstanding.fetch_add(1, Ordering::AcqRel);
        let queued = {
            // A panic elsewhere cannot leave the queue half-updated: recover.
            let mut q = queue
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            q.push_back(Pending {
                timestamp: record.timestamp.unwrap_or_else(now_ms),
                key: record.key,
                value: record.value,
                headers: record.headers,
                size,
                enqueued: Instant::now(),
                tx,
                _permit: permit,
            });
            // Updated under the queue lock so the sender's subtraction
            // never sees bytes it has not been told about.
            queue.bytes.fetch_add(size, Ordering::AcqRel) + size
        };
        if queued >= shared.config.batch_bytes || queued == size {
            queue.wake.notify_one();
        }
        DeliveryFuture { rx }
    }

    /// Kafka's sticky partitioner: keyless records stick to one partition
    /// until about a batch's worth went there.
    fn sticky_partition(&self, topic: &str, partitions: u32, size: usize) -> u32 {
        let Ok(mut sticky) = self.inner.sticky.lock() else {
            return 0;
        };
        let entry = sticky
            .entry(topic.to_string())
            .or_insert_with(|| (rand::random::<u32>() % partitions.max(1), 0));
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

    fn queue(&self, topic: &str, partition: u32) -> Arc<PartitionQueue> {
        let mut queues = match self.inner.queues.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(q) = queues.get(&(topic.to_string(), partition)) {
            return Arc::clone(q);
        }
        let q = Arc::new(PartitionQueue::default());
        queues.insert((topic.to_string(), partition), Arc::clone(&q));
        let shared = Arc::clone(&self.inner.shared);
        let task_queue = Arc::clone(&q);
        let topic = topic.to_string();
        tokio::spawn(async move { run_sender(shared, task_queue, topic, partition).await });
        q
    }

    /// Sends everything queued now, skipping linger, and waits until every
    /// record sent so far is acknowledged or failed.
    pub async fn flush(&self) -> Result<()> {
        let shared = &self.inner.shared;
        shared.flushing.fetch_add(1, Ordering::AcqRel);
        let queues: Vec<Arc<PartitionQueue>> = match self.inner.queues.lock() {
            Ok(q) => q.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        for q in &queues {
            q.wake.notify_one();
        }
        loop {
            let idle = shared.idle.notified();
            if shared.outstanding.load(Ordering::Acquire) == 0 {
                break;
            }
            idle.await;
        }
        shared.flushing.fetch_sub(1, Ordering::AcqRel);
        Ok(())
    }
}

/// A produce request on its way, with the records it carries.
struct InFlight {
    groups: Vec<Vec<Pending>>,
    batches: Vec<Bytes>,
    epoch: i16,
    first_seq: i32,
    /// Sent while earlier requests of the partition were unanswered: an
    /// out-of-order answer may only mean that it overtook them.
    overtaking: bool,
    handle: JoinHandle<Result<ProduceResponse>>,
}

/// Whether a partition's queue should be sent.
enum Ready {
    /// Nothing queued.
    Empty,
    /// A batch is full, the linger passed, or a flush or close hurries.
    Now,
    /// Not before this (the oldest record's linger deadline).
    At(Instant),
}

fn readiness(queue: &PartitionQueue, shared: &Shared) -> Ready {
    let oldest = queue
        .pending
        .lock()
        .ok()
        .and_then(|q| q.front().map(|p| p.enqueued));
    let Some(oldest) = oldest else {
        return Ready::Empty;
    };
    if queue.bytes.load(Ordering::Acquire) >= shared.config.batch_bytes
        || shared.flushing.load(Ordering::Acquire) > 0
        || shared.closed.load(Ordering::Acquire)
    {
        return Ready::Now;
    }
    let deadline = oldest + shared.config.linger;
    if Instant::now() >= deadline {
        Ready::Now
    } else {
        Ready::At(deadline)
    }
}

/// Takes up to one request's worth of records, grouped into batches of
/// about `batch_bytes`.
fn take_request(queue: &PartitionQueue, cfg: &ProducerConfig) -> Vec<Vec<Pending>> {
    let taken: Vec<Pending> = {
        let Ok(mut q) = queue.pending.lock() else {
            return Vec::new();
        };
        let mut bytes = 0;
        let mut out = Vec::new();
        while let Some(p) = q.front() {
            if !out.is_empty() && bytes + p.size > cfg.max_request_bytes {
                break;
            }
            bytes += p.size;
            if let Some(p) = q.pop_front() {
                out.push(p);
            }
        }
        queue.bytes.fetch_sub(bytes, Ordering::AcqRel);
        out
    };
    let mut groups: Vec<Vec<Pending>> = Vec::new();
    let mut iter = taken.into_iter().peekable();
    while iter.peek().is_some() {
        let mut group = Vec::new();
        let mut size = 0;
        while let Some(p) = iter.peek() {
            if !group.is_empty() && size + p.size > cfg.batch_bytes {
                break;
            }
            size += p.size;
            if let Some(p) = iter.next() {
                group.push(p);
            }
        }
        groups.push(group);
    }
    groups
}

/// Encodes batches with consecutive sequence numbers from `sequence`.
fn encode(
    groups: &[Vec<Pending>],
    cfg: &ProducerConfig,
    producer_id: i64,
    epoch: i16,
    sequence: &mut i32,
) -> Vec<Bytes> {
    groups
        .iter()
        .filter(|g| !g.is_empty())
        .map(|group| {
            let mut builder = BatchBuilder::new(cfg.compression, group[0].timestamp);
            for p in group {
                builder.push(
                    p.timestamp,
                    p.key.as_deref(),
                    p.value.as_deref(),
                    &p.headers,
                );
            }
            let batch = builder.finish(producer_id, epoch, *sequence);
            *sequence = sequence.wrapping_add(group.len() as i32);
            if *sequence < 0 {
                *sequence = 0;
            }
            batch
        })
        .collect()
}

/// What the sender waits for when it cannot act at once.
enum Event {
    Answered(Result<ProduceResponse>),
    Woken,
}

/// Per-partition sender loop. Up to `max_in_flight` requests are
/// outstanding at once; answers are handled in the order the requests were
/// sent, so records are acknowledged in order. A request that reached the
/// broker before an earlier one is refused as out of order (nothing
/// appended) and sent again, unchanged, once its predecessors succeeded.
/// After a request fails for good, no new request is sent until the ones
/// in flight are answered; those refused meanwhile are re-encoded under a
/// new producer epoch, so no record can land twice or out of order.
async fn run_sender(
    shared: Arc<Shared>,
    queue: Arc<PartitionQueue>,
    topic: String,
    partition: u32,
) {
    let client = ProducerClient::new(shared.client.channel())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let cfg = shared.config.clone();
    let max_in_flight = cfg.max_in_flight.max(1);
    let acks = match cfg.acks {
        Acks::All => WireAcks::All as i32,
        Acks::Leader => WireAcks::Leader as i32,
    };
    let dispatch = |batches: Vec<Bytes>| {
        let request = ProduceRequest {
            topic: topic.clone(),
            partition,
            acks,
            batches,
        };
        let shared = Arc::clone(&shared);
        let mut client = client.clone();
        tokio::spawn(async move { send_with_retries(&shared, &mut client, request).await })
    };
    let mut sequence: i32 = 0;
    let mut epoch: i16 = 0;
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    // Set after a failure: send nothing new until the window is empty.
    let mut draining = false;
    loop {
        if in_flight.is_empty() {
            draining = false;
        }
        let can_send = !draining && in_flight.len() < max_in_flight;
        let woken = queue.wake.notified();
        let mut deadline = None;
        if can_send {
            match readiness(&queue, &shared) {
                Ready::Now => {
                    let groups = take_request(&queue, &cfg);
                    if !groups.is_empty() {
                        let first_seq = sequence;
                        let batches =
                            encode(&groups, &cfg, shared.producer_id, epoch, &mut sequence);
                        let handle = dispatch(batches.clone());
                        in_flight.push_back(InFlight {
                            groups,
                            batches,
                            epoch,
                            first_seq,
                            overtaking: !in_flight.is_empty(),
                            handle,
                        });
                    }
                    continue;
                }
                Ready::At(d) => deadline = Some(d),
                Ready::Empty => {
                    if in_flight.is_empty() && shared.closed.load(Ordering::Acquire) {
                        return;
                    }
                }
            }
        }
        let event = match in_flight.front_mut() {
            Some(front) => tokio::select! {
                joined = &mut front.handle => Event::Answered(joined.unwrap_or_else(|e| {
                    Err(Error::Broker {
                        code: tonic::Code::Internal,
                        message: format!("produce task failed: {e}"),
                    })
                })),
                _ = woken, if can_send => Event::Woken,
                _ = sleep_until(deadline), if deadline.is_some() => Event::Woken,
            },
            None => {
                tokio::select! {
                    _ = woken => {},
                    _ = sleep_until(deadline), if deadline.is_some() => {},
                }
                Event::Woken
            }
        };
        let Event::Answered(outcome) = event else {
            continue;
        };
        let Some(done) = in_flight.pop_front() else {
            continue;
        };
        match outcome {
            Ok(resp) => {
                let records: usize = done.groups.iter().map(Vec::len).sum();
                for (group, base) in done
                    .groups
                    .into_iter()
                    .zip(resp.results.iter().map(|r| r.base_offset))
                {
                    for (i, p) in group.into_iter().enumerate() {
                        let _ = p.tx.send(Ok(RecordMetadata {
                            topic: topic.clone(),
                            partition,
                            offset: base + i as i64,
                            timestamp: p.timestamp,
                        }));
                    }
                }
                finished(&shared, records);
            }
            // Refused without appending because it overtook an earlier
            // request, or because a failure changed the epoch since it was
            // sent: every earlier request is answered now, so send again.
            Err(Error::OutOfOrderSequence(_) | Error::ProducerFenced(_))
                if done.overtaking || done.epoch != epoch =>
            {
                let (batches, first_seq) = if done.epoch == epoch {
                    (done.batches, done.first_seq)
                } else {
                    let first = sequence;
                    let b = encode(&done.groups, &cfg, shared.producer_id, epoch, &mut sequence);
                    (b, first)
                };
                let handle = dispatch(batches.clone());
                in_flight.push_front(InFlight {
                    groups: done.groups,
                    batches,
                    epoch,
                    first_seq,
                    overtaking: false,
                    handle,
                });
            }
            Err(e) => {
                match &e {
                    // Nothing of the request was appended and nothing else
                    // is in flight: reuse the numbers.
                    Error::RecordTooLarge(_)
                    | Error::CorruptBatch(_)
                    | Error::InvalidRequest(_)
                        if in_flight.is_empty() && done.epoch == epoch =>
                    {
                        sequence = done.first_seq;
                    }
                    // Unknown outcome or sequence trouble: start a new epoch so
                    // the broker resets its expectations for this producer.
                    _ => {
                        epoch = epoch.wrapping_add(1).max(0);
                        sequence = 0;
                        draining = true;
                    }
                }
                let records: usize = done.groups.iter().map(Vec::len).sum();
                for group in done.groups {
                    for p in group {
                        let _ = p.tx.send(Err(e.clone()));
                    }
                }
                finished(&shared, records);
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Counts records as answered; wakes `flush` when none are left.
fn finished(shared: &Shared, records: usize) {
    if records > 0 && shared.outstanding.fetch_sub(records, Ordering::AcqRel) == records {
        shared.idle.notify_waiters();
    }
}

async fn send_with_retries(
    shared: &Shared,
    client: &mut ProducerClient<tonic::transport::Channel>,
    request: ProduceRequest,
) -> Result<ProduceResponse> {
    let cfg = &shared.config;
    let deadline = Instant::now() + cfg.delivery_timeout;
    let mut backoff = cfg.retry_backoff;
    loop {
        let result = shared.client.call(client.produce(request.clone())).await;
        match result {
            Ok(resp) if resp.results.len() == request.batches.len() => return Ok(resp),
            Ok(resp) => {
                return Err(Error::Broker {
                    code: tonic::Code::Internal,
                    message: format!(
                        "broker answered {} results for {} batches",
                        resp.results.len(),
                        request.batches.len()
                    ),
                })
            }
            Err(e) if e.is_retriable() && Instant::now() + backoff < deadline => {
                tracing::debug!(error = %e, topic = %request.topic, partition = request.partition, "retrying produce");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}
