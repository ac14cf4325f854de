//! The consumer: a group member (with `groupId`) or a standalone consumer of
//! every partition of its topics, both `tidelog::UnifiedConsumer`. Records
//! reach JavaScript in batches of one native call each; this module only
//! translates options, values and errors.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::{Mutex, MutexGuard, Notify};

use crate::convert::{Batches, PackedBatches, PartitionRecords};
use crate::error::{self, invalid, to_napi};
use crate::Conn;

/// Consumer settings (all optional).
#[napi(object)]
#[derive(Default, Clone)]
pub struct ConsumerOptions {
    /// The consumer group to join. Without it the consumer reads every
    /// partition of the subscribed topics on its own and cannot commit.
    pub group_id: Option<String>,
    /// Milliseconds without heartbeat before the group drops the member
    /// (default 10000).
    pub session_timeout: Option<u32>,
    /// Commit consumed positions periodically and on rebalance/disconnect
    /// (default true).
    pub auto_commit: Option<bool>,
    /// Milliseconds between auto-commits (default 5000).
    pub auto_commit_interval: Option<u32>,
    /// Bytes per fetch response per partition (default 1 MiB).
    pub max_bytes_per_partition: Option<u32>,
}

/// A partition of a topic.
#[napi(object)]
#[derive(Clone)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

/// A partition with an offset (a decimal string).
#[napi(object)]
#[derive(Clone)]
pub struct TopicPartitionOffset {
    pub topic: String,
    pub partition: u32,
    pub offset: String,
}

/// Where `seek` moves a partition (or every assigned partition of the topic
/// when `partition` is omitted): exactly one of `offset` (decimal string),
/// `timestamp` (ms since the epoch: the first record at or after it) or
/// `to` (`"beginning"` / `"end"`).
#[napi(object)]
pub struct SeekTarget {
    pub topic: String,
    pub partition: Option<u32>,
    pub offset: Option<String>,
    pub timestamp: Option<f64>,
    pub to: Option<String>,
}

/// A consumed record. `key`/`value` are `Buffer`s (`null` when absent);
/// `offset` and `timestamp` are decimal strings.
// Only describes a shape for TypeScript; values are built in `convert.rs`.
#[allow(dead_code)]
#[napi(object)]
pub struct KafkaMessage {
    #[napi(ts_type = "Buffer | null")]
    pub key: String,
    #[napi(ts_type = "Buffer | null")]
    pub value: String,
    #[napi(ts_type = "Record<string, Buffer>")]
    pub headers: String,
    pub offset: String,
    pub timestamp: String,
}

/// Records of one partition, in offset order.
// Only describes a shape for TypeScript; values are built in `convert.rs`.
#[allow(dead_code)]
#[napi(object)]
pub struct PartitionBatch {
    pub topic: String,
    pub partition: u32,
    pub messages: Vec<KafkaMessage>,
}

/// One partition's records in columns (see `nextBatchPacked`).
#[allow(dead_code)]
#[napi(object)]
pub struct PackedBatch {
    pub topic: String,
    pub partition: u32,
    #[napi(ts_type = "Buffer")]
    pub data: String,
    #[napi(ts_type = "Int32Array")]
    pub key_lengths: String,
    #[napi(ts_type = "Int32Array")]
    pub value_lengths: String,
    #[napi(ts_type = "Float64Array | Array<string>")]
    pub offsets: String,
    #[napi(ts_type = "Float64Array | Array<string>")]
    pub timestamps: String,
    #[napi(ts_type = "Array<Record<string, Buffer> | null> | null")]
    pub headers: String,
}

/// A change of the partitions owned by this group member.
#[napi(object)]
pub struct RebalanceEvent {
    /// `"assigned"`, `"revoked"` or `"lost"`.
    #[napi(ts_type = "'assigned' | 'revoked' | 'lost'")]
    pub r#type: String,
    pub partitions: Vec<TopicPartition>,
}

struct Shared {
    conn: Conn,
    options: ConsumerOptions,
    /// Made by the first `subscribe` (which knows where to start).
    inner: Mutex<Option<tidelog::UnifiedConsumer>>,
    /// Calls waiting for `inner` while a `nextBatch` may be waiting for
    /// records; the wait gives way to them.
    interrupts: AtomicUsize,
    wake: Notify,
    closed: AtomicBool,
}

impl Shared {
    /// Locks the consumer, interrupting a `nextBatch` that waits for records.
    async fn lock_now(&self) -> MutexGuard<'_, Option<tidelog::UnifiedConsumer>> {
        self.interrupts.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_waiters();
        let guard = self.inner.lock().await;
        self.interrupts.fetch_sub(1, Ordering::AcqRel);
        guard
    }

    /// Completes when another call wants the consumer.
    async fn interrupted(&self) {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.interrupts.load(Ordering::Acquire) > 0 {
                return;
            }
            notified.await;
        }
    }
}

fn not_subscribed() -> napi::Error {
    napi::Error::new(
        Status::GenericFailure,
        "[NOT_SUBSCRIBED] call subscribe() first".to_string(),
    )
}

fn tps_js(tps: Vec<tidelog::TopicPartition>) -> Vec<TopicPartition> {
    tps.into_iter()
        .map(|tp| TopicPartition {
            topic: tp.topic,
            partition: tp.partition,
        })
        .collect()
}

/// The consumer if it is a group member, else `refusal` as an argument
/// error (JavaScript's contract for these calls).
fn group_member<'a>(
    consumer: Option<&'a mut tidelog::UnifiedConsumer>,
    refusal: &str,
) -> Result<&'a mut tidelog::UnifiedConsumer> {
    match consumer {
        Some(c) if c.is_group() => Ok(c),
        Some(_) => Err(invalid(refusal)),
        None => Err(not_subscribed()),
    }
}

fn parse_offset(s: &str) -> Result<i64> {
    s.trim()
        .parse::<i64>()
        .map_err(|_| invalid(format!("offset {s:?} is not an integer")))
}

/// Reads records; see `nextBatch`, `seek`, `commitOffsets`.
#[napi]
pub struct Consumer {
    shared: Arc<Shared>,
}

#[napi]
impl Consumer {
    pub(crate) fn create(conn: Conn, options: ConsumerOptions) -> Result<Self> {
        if let Some(g) = &options.group_id {
            if g.is_empty() {
                return Err(invalid("groupId must not be empty"));
            }
        }
        Ok(Consumer {
            shared: Arc::new(Shared {
                conn,
                options,
                inner: Mutex::new(None),
                interrupts: AtomicUsize::new(0),
                wake: Notify::new(),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The consumer group, if any.
    #[napi(getter)]
    pub fn group_id(&self) -> Option<String> {
        self.shared.options.group_id.clone()
    }

    /// Subscribes to topics (a group member joins the group). Without a
    /// committed offset, reading starts at the log start when
    /// `fromBeginning`, else at the log end. Later calls replace a group's
    /// subscription, or add topics to a standalone consumer.
    #[napi]
    pub async fn subscribe(&self, topics: Vec<String>, from_beginning: Option<bool>) -> Result<()> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(error::closed("consumer"));
        }
        if topics.is_empty() {
            return Err(invalid("subscribe needs at least one topic"));
        }
        let reset = if from_beginning.unwrap_or(false) {
            tidelog::OffsetReset::Earliest
        } else {
            tidelog::OffsetReset::Latest
        };
        let client = self.shared.conn.client().await.map_err(to_napi)?;
        let mut guard = self.shared.lock_now().await;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        match guard.as_mut() {
            Some(consumer) => consumer.subscribe(&names).await.map_err(to_napi)?,
            None => {
                // Kept only once subscribed, so a failed first subscribe
                // leaves the consumer unsubscribed.
                let mut consumer = client.unified_consumer(self.mode(reset));
                consumer.subscribe(&names).await.map_err(to_napi)?;
                *guard = Some(consumer);
            }
        }
        Ok(())
    }

    /// Up to `maxRecords` records, grouped by partition in the order read.
    /// Returns what is already fetched at once; waits only when nothing is,
    /// for at most `maxWaitMs` (default: until records arrive or another
    /// call on this consumer needs it), then resolves to `[]`.
    #[napi(ts_return_type = "Promise<Array<PartitionBatch>>")]
    pub async fn next_batch(&self, max_records: u32, max_wait_ms: Option<u32>) -> Result<Batches> {
        Ok(Batches(self.fetch(max_records, max_wait_ms).await?))
    }

    /// `nextBatch` in columns, for `index.js`: per partition, all keys and
    /// values in one Buffer with their lengths (`-1` = null), offsets and
    /// timestamps as Float64Arrays (string arrays beyond 2^53), headers
    /// `null` when no record has any.
    #[napi(ts_return_type = "Promise<Array<PackedBatch>>")]
    pub async fn next_batch_packed(
        &self,
        max_records: u32,
        max_wait_ms: Option<u32>,
    ) -> Result<PackedBatches> {
        Ok(PackedBatches(self.fetch(max_records, max_wait_ms).await?))
    }
}

impl Consumer {
    /// The consumer's settings, starting unpositioned partitions at `reset`.
    fn mode(&self, reset: tidelog::OffsetReset) -> tidelog::ConsumerMode {
        let o = &self.shared.options;
        let max_bytes = o.max_bytes_per_partition.map(|b| b.max(1024));
        match &o.group_id {
            Some(group_id) => {
                let mut config = tidelog::GroupConsumerConfig::new(group_id.clone());
                config.auto_offset_reset = reset;
                config.client_id = self.shared.conn.client_id().to_string();
                if let Some(ms) = o.session_timeout {
                    config.session_timeout = Duration::from_millis(u64::from(ms));
                }
                if let Some(a) = o.auto_commit {
                    config.auto_commit = a;
                }
                if let Some(ms) = o.auto_commit_interval {
                    config.auto_commit_interval = Duration::from_millis(u64::from(ms));
                }
                if let Some(b) = max_bytes {
                    config.max_bytes = b;
                }
                tidelog::ConsumerMode::Subscribe(config)
            }
            None => {
                let mut config = tidelog::ConsumerConfig {
                    auto_offset_reset: reset,
                    ..Default::default()
                };
                if let Some(b) = max_bytes {
                    config.max_bytes = b;
                }
                tidelog::ConsumerMode::Assign(config)
            }
        }
    }

    async fn fetch(
        &self,
        max_records: u32,
        max_wait_ms: Option<u32>,
    ) -> Result<Vec<PartitionRecords>> {
        let shared = &self.shared;
        let mut guard = shared.inner.lock().await;
        if shared.closed.load(Ordering::Acquire) || shared.interrupts.load(Ordering::Acquire) > 0 {
            return Ok(Vec::new());
        }
        let Some(consumer) = guard.as_mut() else {
            return Err(not_subscribed());
        };
        let stop = async {
            match max_wait_ms {
                Some(ms) => {
                    tokio::select! {
                        _ = shared.interrupted() => {}
                        _ = tokio::time::sleep(Duration::from_millis(u64::from(ms))) => {}
                    }
                }
                None => shared.interrupted().await,
            }
        };
        let records = consumer
            .next_records_until(max_records as usize, stop)
            .await
            .map_err(to_napi)?;
        let mut out: Vec<PartitionRecords> = Vec::new();
        for r in records {
            match out.last_mut() {
                Some(b) if b.partition == r.partition && *b.topic == *r.topic => b.records.push(r),
                _ => out.push(PartitionRecords {
                    topic: Arc::clone(&r.topic),
                    partition: r.partition,
                    records: vec![r],
                }),
            }
        }
        Ok(out)
    }
}

#[napi]
impl Consumer {
    /// Moves positions; resolves to the new offset of each partition moved.
    #[napi]
    pub async fn seek(&self, target: SeekTarget) -> Result<Vec<TopicPartitionOffset>> {
        let to = match (&target.offset, target.timestamp, target.to.as_deref()) {
            (Some(o), None, None) => tidelog::SeekTo::Offset(parse_offset(o)?),
            (None, Some(ts), None) => tidelog::SeekTo::Timestamp(ts as i64),
            (None, None, Some("beginning" | "earliest")) => tidelog::SeekTo::Beginning,
            (None, None, Some("end" | "latest")) => tidelog::SeekTo::End,
            _ => {
                return Err(invalid(
                    "seek needs exactly one of offset, timestamp or to: 'beginning' | 'end'",
                ))
            }
        };
        let mut guard = self.shared.lock_now().await;
        let Some(consumer) = guard.as_mut() else {
            return Err(not_subscribed());
        };
        let tps: Vec<tidelog::TopicPartition> = match target.partition {
            Some(p) => vec![tidelog::TopicPartition::new(target.topic.clone(), p)],
            None => consumer
                .assignment()
                .into_iter()
                .filter(|tp| tp.topic == target.topic)
                .collect(),
        };
        let mut out = Vec::with_capacity(tps.len());
        for tp in tps {
            let offset = consumer.seek(&tp, to).await.map_err(to_napi)?;
            out.push(TopicPartitionOffset {
                topic: tp.topic,
                partition: tp.partition,
                offset: offset.to_string(),
            });
        }
        Ok(out)
    }

    /// Reads again, from `offset` of `topic`/`partition`, what the last
    /// `nextBatch` handed out from that record on (a handler failed or the
    /// loop stopped before it): every later partition of that batch moves
    /// back to its first record too.
    #[napi]
    pub async fn redeliver_from(
        &self,
        topic: String,
        partition: u32,
        offset: String,
    ) -> Result<()> {
        let offset = parse_offset(&offset)?;
        let mut guard = self.shared.lock_now().await;
        let Some(consumer) = guard.as_mut() else {
            return Err(not_subscribed());
        };
        consumer
            .redeliver_from(&topic, partition, offset)
            .await
            .map_err(to_napi)
    }

    /// Commits offsets (each the next offset to read) for the group, or,
    /// without arguments, the current position of every owned partition.
    #[napi]
    pub async fn commit_offsets(&self, offsets: Option<Vec<TopicPartitionOffset>>) -> Result<()> {
        let mut guard = self.shared.lock_now().await;
        let consumer = group_member(
            guard.as_mut(),
            "commitOffsets needs a consumer group: create the consumer with a groupId",
        )?;
        match offsets {
            None => consumer.commit().await.map_err(to_napi),
            Some(list) => {
                let mut parsed = Vec::with_capacity(list.len());
                for o in list {
                    parsed.push((
                        tidelog::TopicPartition::new(o.topic, o.partition),
                        parse_offset(&o.offset)?,
                    ));
                }
                consumer.commit_offsets(&parsed).await.map_err(to_napi)
            }
        }
    }

    /// Partitions read now.
    #[napi]
    pub async fn assignment(&self) -> Result<Vec<TopicPartition>> {
        let guard = self.shared.lock_now().await;
        Ok(guard
            .as_ref()
            .map(|i| tps_js(i.assignment()))
            .unwrap_or_default())
    }

    /// Next offset to read of each assigned partition (once positioned).
    #[napi]
    pub async fn positions(&self) -> Result<Vec<TopicPartitionOffset>> {
        let guard = self.shared.lock_now().await;
        let Some(consumer) = guard.as_ref() else {
            return Ok(Vec::new());
        };
        Ok(consumer
            .assignment()
            .into_iter()
            .filter_map(|tp| {
                consumer.position(&tp).map(|o| TopicPartitionOffset {
                    topic: tp.topic,
                    partition: tp.partition,
                    offset: o.to_string(),
                })
            })
            .collect())
    }

    /// Records not yet read per owned partition (log end minus position);
    /// group members only.
    #[napi]
    pub async fn lag(&self) -> Result<Vec<TopicPartitionOffset>> {
        let mut guard = self.shared.lock_now().await;
        let consumer = group_member(guard.as_mut(), "lag needs a consumer group")?;
        Ok(consumer
            .lag()
            .await
            .map_err(to_napi)?
            .into_iter()
            .map(|(tp, lag)| TopicPartitionOffset {
                topic: tp.topic,
                partition: tp.partition,
                offset: lag.to_string(),
            })
            .collect())
    }

    /// Rebalance events since the last call (group members only).
    #[napi]
    pub async fn take_events(&self) -> Result<Vec<RebalanceEvent>> {
        let mut guard = self.shared.lock_now().await;
        let Some(consumer) = guard.as_mut() else {
            return Ok(Vec::new());
        };
        Ok(consumer
            .take_events()
            .into_iter()
            .map(|e| {
                let (t, tps) = match e {
                    tidelog::RebalanceEvent::Assigned(t) => ("assigned", t),
                    tidelog::RebalanceEvent::Revoked(t) => ("revoked", t),
                    tidelog::RebalanceEvent::Lost(t) => ("lost", t),
                };
                RebalanceEvent {
                    r#type: t.into(),
                    partitions: tps_js(tps),
                }
            })
            .collect())
    }

    /// Makes a waiting `nextBatch` resolve (to `[]`) now.
    #[napi]
    pub async fn wakeup(&self) -> Result<()> {
        drop(self.shared.lock_now().await);
        Ok(())
    }

    /// Leaves the group (committing first with auto-commit) and stops.
    #[napi]
    pub async fn disconnect(&self) -> Result<()> {
        self.shared.closed.store(true, Ordering::Release);
        let consumer = self.shared.lock_now().await.take();
        match consumer {
            Some(mut c) => c.close().await.map_err(to_napi),
            None => Ok(()),
        }
    }
}
