//! The producer. `send` queues all its messages in one native call with the
//! Rust producer's non-blocking fast path (`try_enqueue`) and falls back to
//! the async path (first use of a topic, full buffer) for the rest, keeping
//! the order of records across calls.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::oneshot;
use tokio::sync::OnceCell;

use crate::convert::{read_messages, read_packed, MetadataList, Raw};
use crate::error::{self, invalid, to_napi};
use crate::Conn;

/// Producer settings (all optional).
#[napi(object)]
#[derive(Default, Clone)]
pub struct ProducerOptions {
    /// Milliseconds a partition's sender waits for a batch to fill (default 5).
    pub linger_ms: Option<u32>,
    /// Target batch size in bytes, uncompressed (default 262144).
    pub batch_bytes: Option<u32>,
    /// Most bytes buffered before `send` waits (default 64 MiB).
    pub buffer_bytes: Option<u32>,
    /// `"none"` (default), `"lz4"` or `"zstd"`.
    pub compression: Option<String>,
    /// `-1` / `"all"`: acknowledged after fsync (default); `1` / `"leader"`:
    /// after the write, before fsync.
    #[napi(ts_type = "number | 'all' | 'leader'")]
    pub acks: Option<Either<i32, String>>,
    /// Produce requests in flight per partition (default 10).
    pub max_in_flight: Option<u32>,
    /// Milliseconds a record may take to be acknowledged, retries included
    /// (default 120000).
    pub delivery_timeout_ms: Option<u32>,
}

/// Where a record was written. Offsets and timestamps are decimal strings
/// (64-bit values, as in kafkajs). (Built in `convert.rs`.)
#[allow(dead_code)]
#[napi(object)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: u32,
    pub offset: String,
    pub timestamp: String,
}

fn producer_config(o: &ProducerOptions) -> Result<tidelog::ProducerConfig> {
    let mut c = tidelog::ProducerConfig::default();
    if let Some(ms) = o.linger_ms {
        c.linger = Duration::from_millis(u64::from(ms));
    }
    if let Some(b) = o.batch_bytes {
        c.batch_bytes = b.max(1) as usize;
    }
    if let Some(b) = o.buffer_bytes {
        c.buffer_bytes = b.max(1) as usize;
    }
    if let Some(n) = o.max_in_flight {
        c.max_in_flight = n.max(1) as usize;
    }
    if let Some(ms) = o.delivery_timeout_ms {
        c.delivery_timeout = Duration::from_millis(u64::from(ms));
    }
    if let Some(comp) = &o.compression {
        c.compression = match comp.to_ascii_lowercase().as_str() {
            "none" => tidelog::Compression::None,
            "lz4" => tidelog::Compression::Lz4,
            "zstd" => tidelog::Compression::Zstd,
            other => {
                return Err(invalid(format!(
                    "compression {other:?} is not one of none, lz4, zstd"
                )))
            }
        };
    }
    if let Some(acks) = &o.acks {
        c.acks = match acks {
            Either::A(-1) => tidelog::Acks::All,
            Either::A(1) => tidelog::Acks::Leader,
            Either::B(s) if s == "all" => tidelog::Acks::All,
            Either::B(s) if s == "leader" => tidelog::Acks::Leader,
            _ => return Err(invalid("acks must be -1 ('all') or 1 ('leader')")),
        };
    }
    Ok(c)
}

struct State {
    conn: Conn,
    config: tidelog::ProducerConfig,
    producer: OnceCell<tidelog::Producer>,
    /// Completes when the last send that took the async path has queued all
    /// its records; later sends queue after it, so order holds.
    tail: Mutex<Option<oneshot::Receiver<()>>>,
    closed: std::sync::atomic::AtomicBool,
}

impl State {
    async fn producer(&self) -> std::result::Result<tidelog::Producer, tidelog::Error> {
        self.producer
            .get_or_try_init(|| async {
                let client = self.conn.client().await?;
                Ok(client.producer_with(self.config.clone()))
            })
            .await
            .cloned()
    }

    fn tail(&self) -> MutexGuard<'_, Option<oneshot::Receiver<()>>> {
        self.tail.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sends records; see `send`.
#[napi]
pub struct Producer {
    state: Arc<State>,
}

#[napi]
impl Producer {
    pub(crate) fn create(conn: Conn, options: ProducerOptions) -> Result<Self> {
        Ok(Producer {
            state: Arc::new(State {
                conn,
                config: producer_config(&options)?,
                producer: OnceCell::new(),
                tail: Mutex::new(None),
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// Connects (optional: `send` connects on first use).
    #[napi]
    pub async fn connect(&self) -> Result<()> {
        self.state.producer().await.map_err(to_napi)?;
        Ok(())
    }

    /// Queues `messages` for `topic` and resolves, once all are
    /// acknowledged, to their metadata in order.
    #[napi(
        ts_args_type = "topic: string, messages: Array<Message>",
        ts_return_type = "Promise<Array<RecordMetadata>>"
    )]
    pub fn send<'env>(
        &self,
        env: &'env Env,
        topic: String,
        messages: Raw,
    ) -> Result<PromiseRaw<'env, MetadataList>> {
        if self.state.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(error::closed("producer"));
        }
        // SAFETY: `messages` is a value of this call on the JS thread.
        let records = unsafe { read_messages(env.raw(), &topic, messages.0) }?;
        self.enqueue_all(env, topic, records)
    }

    /// The fast path of `send` used by `index.js` for messages whose keys
    /// and values are Buffers (or null) and that have no headers: all key
    /// and value bytes concatenated in `data`, with per-message lengths
    /// (`-1` = null), partitions (`-1` = by key) and timestamps (`NaN` =
    /// now). One copy of `data`; every record is a slice of it.
    #[napi(
        ts_args_type = "topic: string, data: Buffer, keyLengths: Int32Array, valueLengths: Int32Array, partitions: Int32Array | null, timestamps: Float64Array | null",
        ts_return_type = "Promise<Array<RecordMetadata>>"
    )]
    #[allow(clippy::too_many_arguments)]
    pub fn send_packed<'env>(
        &self,
        env: &'env Env,
        topic: String,
        data: Raw,
        key_lengths: Raw,
        value_lengths: Raw,
        partitions: Raw,
        timestamps: Raw,
    ) -> Result<PromiseRaw<'env, MetadataList>> {
        if self.state.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(error::closed("producer"));
        }
        // SAFETY: arguments of this call, read on the JS thread.
        let records = unsafe {
            read_packed(
                env.raw(),
                &topic,
                data.0,
                key_lengths.0,
                value_lengths.0,
                partitions.0,
                timestamps.0,
            )
        }?;
        self.enqueue_all(env, topic, records)
    }

    fn enqueue_all<'env>(
        &self,
        env: &'env Env,
        topic: String,
        records: Vec<tidelog::ProducerRecord>,
    ) -> Result<PromiseRaw<'env, MetadataList>> {
        let state = Arc::clone(&self.state);
        let mut deliveries = Vec::with_capacity(records.len());
        let mut rest: Vec<tidelog::ProducerRecord> = Vec::new();
        let mut after: Option<oneshot::Receiver<()>> = None;
        let mut done_tx: Option<oneshot::Sender<()>> = None;
        {
            let mut tail = state.tail();
            let busy = match tail.as_mut() {
                Some(rx) => matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
                None => false,
            };
            let mut records = records.into_iter();
            if !busy {
                *tail = None;
                if let Some(p) = state.producer.get() {
                    napi::bindgen_prelude::within_runtime_if_available(|| {
                        for r in records.by_ref() {
                            match p.try_enqueue(r) {
                                Ok(d) => deliveries.push(d),
                                Err(r) => {
                                    rest.push(r);
                                    break;
                                }
                            }
                        }
                    });
                }
            }
            rest.extend(records);
            if !rest.is_empty() {
                let (tx, rx) = oneshot::channel();
                after = tail.replace(rx);
                done_tx = Some(tx);
            }
        }
        env.spawn_future(async move {
            if !rest.is_empty() {
                if let Some(prev) = after {
                    let _ = prev.await;
                }
                let queued = async {
                    let p = state.producer().await?;
                    for r in rest {
                        deliveries.push(p.enqueue(r).await?);
                    }
                    Ok::<_, tidelog::Error>(())
                }
                .await;
                drop(done_tx);
                queued.map_err(to_napi)?;
            }
            let mut out = Vec::with_capacity(deliveries.len());
            for d in deliveries {
                let m = d.await.map_err(to_napi)?;
                out.push((m.partition, m.offset, m.timestamp));
            }
            Ok(MetadataList {
                topic,
                records: out,
            })
        })
    }

    /// Sends everything queued now and waits until every record sent so far
    /// is acknowledged or failed.
    #[napi]
    pub async fn flush(&self) -> Result<()> {
        // Wait until sends on the async path have queued their records.
        loop {
            let busy = match self.state.tail().as_mut() {
                Some(rx) => matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)),
                None => false,
            };
            if !busy {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if let Some(p) = self.state.producer.get() {
            p.flush().await.map_err(to_napi)?;
        }
        Ok(())
    }

    /// Flushes, then refuses further sends.
    #[napi]
    pub async fn disconnect(&self) -> Result<()> {
        self.flush().await?;
        self.state
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }
}

/// A message to send. `key`, `value` and header values are `Buffer`s or
/// strings; `timestamp` is ms since the epoch (number, string or bigint).
// Only describes a shape for TypeScript; values are built in `convert.rs`.
#[allow(dead_code)]
#[napi(object)]
pub struct Message {
    #[napi(ts_type = "Buffer | string | null")]
    pub key: Option<String>,
    #[napi(ts_type = "Buffer | string | null")]
    pub value: Option<String>,
    #[napi(ts_type = "Record<string, Buffer | string | Array<Buffer | string>>")]
    pub headers: Option<String>,
    pub partition: Option<u32>,
    #[napi(ts_type = "number | string | bigint")]
    pub timestamp: Option<String>,
}
