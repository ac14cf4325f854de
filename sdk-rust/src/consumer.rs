//! The consumer with manual assignment: assign partitions, seek, and read
//! records as an async stream.
//!
//! Each assigned partition has a fetch task holding a server-push
//! subscription; it decodes batches off the caller's task and hands whole
//! batches of records over a bounded channel (the bound is the read-ahead).
//! A seek bumps the partition's generation and restarts its task, so
//! records fetched before the seek are dropped, never delivered.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use tidelog_proto::batch::{decode_records, split_batches};
use tidelog_proto::v1::SubscribeRequest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::connection::{consumer, Connection};
use crate::error::{Error, Result};
use crate::types::OffsetSpec;
pub use crate::types::TopicPartition;

/// Where an unpositioned partition starts (Kafka's `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// From the first offset in the log.
    Earliest,
    /// From the log end: only new records (Kafka's default).
    #[default]
    Latest,
    /// Fail with `OffsetOutOfRange`.
    None,
}

/// Where to move a partition's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// The first offset in the log.
    Beginning,
    /// The log end.
    End,
    /// An exact offset.
    Offset(i64),
    /// The first record with timestamp >= this (ms since the epoch).
    Timestamp(i64),
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Start of a partition that has no position yet, or whose position
    /// fell out of the log.
    pub auto_offset_reset: OffsetReset,
    /// Bytes per pushed message from the broker.
    pub max_bytes: u32,
    /// Pushed messages buffered across all partitions (read-ahead).
    pub buffer_messages: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Latest,
            max_bytes: 1024 * 1024,
            buffer_messages: 16,
        }
    }
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: i64,
    /// Timestamp (ms since the epoch).
    pub timestamp: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Value (`None` for a tombstone).
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<(String, Bytes)>,
}

enum Fetched {
    Records {
        tp: TopicPartition,
        generation: u64,
        records: Vec<ConsumerRecord>,
        high_watermark: i64,
    },
    Failed {
        tp: TopicPartition,
        generation: u64,
        error: Error,
    },
}

struct PartitionState {
    /// Next offset to hand to the caller; `None` until positioned.
    position: Option<i64>,
    /// Next offset to buffer from the fetch task (ahead of `position`).
    fetched: i64,
    generation: u64,
    task: Option<JoinHandle<()>>,
    high_watermark: i64,
}

impl Drop for PartitionState {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Reads records from assigned partitions.
///
/// ```no_run
/// # async fn demo() -> tidelog::Result<()> {
/// use futures::StreamExt;
/// use tidelog::{Client, SeekTo, TopicPartition};
/// let client = Client::connect("127.0.0.1:7070").await?;
/// let mut consumer = client.consumer();
/// let tp = TopicPartition::new("orders", 0);
/// consumer.assign([tp.clone()]);
/// consumer.seek(&tp, SeekTo::Beginning).await?;
/// let mut records = consumer.stream();
/// while let Some(record) = records.next().await {
///     let record = record?;
///     println!("{} {:?}", record.offset, record.value);
/// }
/// # Ok(()) }
/// ```
pub struct Consumer {
    conn: Connection,
    config: ConsumerConfig,
    partitions: HashMap<TopicPartition, PartitionState>,
    tx: mpsc::Sender<Fetched>,
    rx: mpsc::Receiver<Fetched>,
    ready: VecDeque<ReadyBatch>,
    next_generation: u64,
    /// A fetch failure seen by `try_next_record`, reported by `next_record`.
    pending_failure: Option<Fetched>,
}

/// Fetched records of one partition not yet returned to the caller.
struct ReadyBatch {
    tp: TopicPartition,
    records: VecDeque<ConsumerRecord>,
    /// One past the last record handed out from this batch; applied to the
    /// partition's position when the batch is used up (one map lookup per
    /// batch instead of per record).
    delivered: Option<i64>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("assignment", &self.assignment())
            .finish()
    }
}

impl Consumer {
    pub(crate) fn new(conn: Connection, config: ConsumerConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.buffer_messages.max(1));
        Consumer {
            conn,
            config,
            partitions: HashMap::new(),
            tx,
            rx,
            ready: VecDeque::new(),
            next_generation: 1,
            pending_failure: None,
        }
    }

    /// Replaces the assignment. Partitions that stay keep their position.
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        let wanted: Vec<TopicPartition> = partitions.into_iter().collect();
        self.partitions.retain(|tp, _| wanted.contains(tp));
        for tp in wanted {
            self.partitions.entry(tp).or_insert(PartitionState {
                position: None,
                fetched: 0,
                generation: 0,
                task: None,
                high_watermark: -1,
            });
        }
        let partitions = &self.partitions;
        self.ready.retain(|b| partitions.contains_key(&b.tp));
    }

    /// Assigns every partition of the topics.
    pub async fn assign_topics(&mut self, topics: &[&str]) -> Result<()> {
        let mut tps = self.assignment();
        for t in topics {
            let n = self.conn.partition_count(t).await?;
            tps.extend((0..n).map(|p| TopicPartition::new(*t, p)));
        }
        tps.sort();
        tps.dedup();
        self.assign(tps);
        Ok(())
    }

    /// The assigned partitions, sorted.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        let mut v: Vec<_> = self.partitions.keys().cloned().collect();
        v.sort();
        v
    }

    /// Offset of the next record [`Consumer::next_record`] returns for a
    /// partition (last returned + 1), once positioned. This is what a
    /// consumer commits.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        let state = self.partitions.get(tp)?;
        self.ready
            .front()
            .filter(|b| b.tp == *tp)
            .and_then(|b| b.delivered)
            .or(state.position)
    }

    /// Latest high watermark seen for a partition (-1 before any fetch).
    pub fn high_watermark(&self, tp: &TopicPartition) -> i64 {
        self.partitions.get(tp).map_or(-1, |s| s.high_watermark)
    }

    /// Moves a partition's position.
    pub async fn seek(&mut self, tp: &TopicPartition, to: SeekTo) -> Result<i64> {
        if !self.partitions.contains_key(tp) {
            return Err(Error::InvalidRequest(format!(
                "{}/{} is not assigned to this consumer; assign it first",
                tp.topic, tp.partition
            )));
        }
        let offset = match to {
            SeekTo::Offset(o) if o < 0 => {
                return Err(Error::InvalidRequest(format!("offset {o} is negative")))
            }
            SeekTo::Offset(o) => o,
            SeekTo::Beginning => self.lookup(tp, OffsetSpec::Earliest).await?,
            SeekTo::End => self.lookup(tp, OffsetSpec::Latest).await?,
            SeekTo::Timestamp(ts) => self.lookup(tp, OffsetSpec::Timestamp(ts)).await?,
        };
        self.set_position(tp, offset);
        Ok(offset)
    }

    async fn lookup(&self, tp: &TopicPartition, spec: OffsetSpec) -> Result<i64> {
        Ok(self
            .conn
            .list_offsets(&tp.topic, tp.partition, spec)
            .await?
            .0)
    }

    fn set_position(&mut self, tp: &TopicPartition, offset: i64) {
        let generation = self.next_generation;
        self.next_generation += 1;
        if let Some(state) = self.partitions.get_mut(tp) {
            if let Some(t) = state.task.take() {
                t.abort();
            }
            state.position = Some(offset);
            state.fetched = offset;
            state.generation = generation;
        }
        self.ready.retain(|b| b.tp != *tp);
    }

    /// Starts fetch tasks for partitions that have none, positioning new
    /// partitions by `auto_offset_reset`.
    async fn ensure_fetching(&mut self) -> Result<()> {
        let unpositioned: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, s)| s.position.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in unpositioned {
            let spec = match self.config.auto_offset_reset {
                OffsetReset::Earliest => OffsetSpec::Earliest,
                OffsetReset::Latest => OffsetSpec::Latest,
                OffsetReset::None => {
                    return Err(Error::OffsetOutOfRange(format!(
                        "{}/{} has no position and auto_offset_reset is None; seek first",
                        tp.topic, tp.partition
                    )))
                }
            };
            let offset = self.lookup(&tp, spec).await?;
            self.set_position(&tp, offset);
        }
        for (tp, state) in self.partitions.iter_mut() {
            if state.task.is_none() {
                let Some(position) = state.position else {
                    continue;
                };
                let fetcher = Fetcher {
                    conn: self.conn.clone(),
                    tp: tp.clone(),
                    topic: Arc::from(tp.topic.as_str()),
                    generation: state.generation,
                    max_bytes: self.config.max_bytes,
                    tx: self.tx.clone(),
                };
                state.task = Some(tokio::spawn(fetcher.run(position)));
            }
        }
        Ok(())
    }

    /// The next record if one is already fetched, without waiting. For
    /// language bindings that drain buffered records without an async round
    /// trip per record; fall back to [`Consumer::next_record`] on `None`.
    pub fn try_next_record(&mut self) -> Option<ConsumerRecord> {
        loop {
            if let Some(r) = self.pop_ready() {
                return Some(r);
            }
            match self.rx.try_recv() {
                Ok(fetched) => {
                    if let Err(fetched) = self.absorb(fetched) {
                        // An error: leave it for next_record to report.
                        self.pending_failure = Some(fetched);
                        return None;
                    }
                }
                Err(_) => return None,
            }
        }
    }

    fn pop_ready(&mut self) -> Option<ConsumerRecord> {
        while let Some(batch) = self.ready.front_mut() {
            if let Some(r) = batch.records.pop_front() {
                batch.delivered = Some(r.offset + 1);
                return Some(r);
            }
            if let Some(done) = self.ready.pop_front() {
                if let (Some(state), Some(p)) = (self.partitions.get_mut(&done.tp), done.delivered)
                {
                    state.position = Some(p);
                }
            }
        }
        None
    }

    /// Buffers fetched records; hands failures back.
    fn absorb(&mut self, fetched: Fetched) -> std::result::Result<(), Fetched> {
        match fetched {
            Fetched::Records {
                tp,
                generation,
                records,
                high_watermark,
            } => {
                let Some(state) = self.partitions.get_mut(&tp) else {
                    return Ok(());
                };
                if state.generation != generation {
                    return Ok(());
                }
                state.high_watermark = high_watermark;
                let from = state.fetched;
                let records: VecDeque<ConsumerRecord> =
                    records.into_iter().filter(|r| r.offset >= from).collect();
                if let Some(last) = records.back() {
                    state.fetched = last.offset + 1;
                    self.ready.push_back(ReadyBatch {
                        tp,
                        records,
                        delivered: None,
                    });
                }
                Ok(())
            }
            failed @ Fetched::Failed { .. } => Err(failed),
        }
    }

    /// The next record, waiting for one. `None` only when nothing is
    /// assigned.
    pub async fn next_record(&mut self) -> Option<Result<ConsumerRecord>> {
        loop {
            if let Some(r) = self.pop_ready() {
                return Some(Ok(r));
            }
            if self.partitions.is_empty() {
                return None;
            }
            let fetched = match self.pending_failure.take() {
                Some(f) => f,
                None => {
                    if let Err(e) = self.ensure_fetching().await {
                        return Some(Err(e));
                    }
                    self.rx.recv().await?
                }
            };
            let Err(Fetched::Failed {
                tp,
                generation,
                error,
            }) = self.absorb(fetched)
            else {
                continue;
            };
            let Some(state) = self.partitions.get_mut(&tp) else {
                continue;
            };
            if state.generation != generation {
                continue;
            }
            state.task = None;
            if matches!(error, Error::OffsetOutOfRange(_))
                && self.config.auto_offset_reset != OffsetReset::None
            {
                // The position fell out of the log (retention): reset.
                state.position = None;
                continue;
            }
            return Some(Err(error));
        }
    }

    /// Records as an async stream (borrowing the consumer).
    pub fn stream(&mut self) -> BoxStream<'_, Result<ConsumerRecord>> {
        futures::stream::unfold(
            self,
            |c| async move { c.next_record().await.map(|r| (r, c)) },
        )
        .boxed()
    }
}

/// One partition's fetch task.
struct Fetcher {
    conn: Connection,
    tp: TopicPartition,
    topic: Arc<str>,
    generation: u64,
    max_bytes: u32,
    tx: mpsc::Sender<Fetched>,
}

impl Fetcher {
    async fn run(self, start: i64) {
        let mut offset = start;
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.subscribe(&mut offset).await {
                Ok(()) => return, // receiver gone
                Err(e) if e.is_retriable() => {
                    tracing::debug!(error = %e, topic = %self.tp.topic, partition = self.tp.partition, "resubscribing");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(error) => {
                    let _ = self
                        .tx
                        .send(Fetched::Failed {
                            tp: self.tp.clone(),
                            generation: self.generation,
                            error,
                        })
                        .await;
                    return;
                }
            }
        }
    }

    /// Streams from `offset`, advancing it; `Ok` when the consumer is gone.
    async fn subscribe(&self, offset: &mut i64) -> Result<()> {
        let (topic, partition) = (self.tp.topic.as_str(), self.tp.partition);
        // The leader as the metadata names it now: after a failure the
        // retry lands on whichever broker took the partition over.
        let route = self.conn.leader(topic, partition).await?;
        let request = SubscribeRequest {
            topic: topic.to_string(),
            partition,
            offset: *offset,
            max_bytes: self.max_bytes,
        };
        let mut stream = self
            .conn
            .on_route(
                topic,
                partition,
                &route,
                consumer(route.channel.clone()).subscribe(request),
            )
            .await?;
        while let Some(msg) = stream.next().await {
            let msg = msg.map_err(|status| {
                self.conn
                    .partition_failed(topic, partition, &route.address, status)
            })?;
            let mut records = Vec::new();
            // A batch that fails its CRC (as Kafka's `check.crcs`) or does
            // not decode stops the partition there: the records before it
            // are delivered, then the error names its range.
            let mut unreadable = None;
            // Offset after the last batch read whole.
            let mut read_to = *offset;
            for item in split_batches(msg.records) {
                let (header, batch) = match item {
                    Ok(b) => b,
                    Err(source) => {
                        // Not even a header to go by: name where it starts.
                        unreadable = Some(Error::UnreadableBatch {
                            topic: self.tp.topic.clone(),
                            partition: self.tp.partition,
                            first_offset: read_to,
                            next_offset: read_to,
                            source,
                        });
                        break;
                    }
                };
                let decoded = header
                    .verify_crc(&batch)
                    .and_then(|()| decode_records(&header, &batch));
                let decoded = match decoded {
                    Ok(d) => d,
                    Err(source) => {
                        unreadable = Some(Error::UnreadableBatch {
                            topic: self.tp.topic.clone(),
                            partition: self.tp.partition,
                            first_offset: header.base_offset.max(*offset),
                            next_offset: header.next_offset(),
                            source,
                        });
                        break;
                    }
                };
                read_to = read_to.max(header.next_offset());
                for r in decoded {
                    if r.offset >= *offset {
                        records.push(ConsumerRecord {
                            topic: Arc::clone(&self.topic),
                            partition: self.tp.partition,
                            offset: r.offset,
                            timestamp: r.timestamp,
                            key: r.key,
                            value: r.value,
                            headers: r.headers,
                        });
                    }
                }
            }
            if unreadable.is_none() && msg.next_offset > *offset {
                *offset = msg.next_offset;
            } else {
                *offset = read_to;
            }
            let sent = self
                .tx
                .send(Fetched::Records {
                    tp: self.tp.clone(),
                    generation: self.generation,
                    records,
                    high_watermark: msg.high_watermark,
                })
                .await;
            if sent.is_err() {
                return Ok(());
            }
            if let Some(e) = unreadable {
                return Err(e);
            }
        }
        // Possibly a broker on its way out: route the next try afresh.
        self.conn.forget_leaders(topic);
        Err(Error::Unavailable(
            "subscription ended by the broker".into(),
        ))
    }
}
