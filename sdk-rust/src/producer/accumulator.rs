//! Per-partition queues of record batches. `send` encodes a record straight
//! into its partition's open batch (the only copy the client makes of it);
//! a batch closes when it is full, and the sender takes closed batches (and,
//! after the linger, the open one) to put them on the wire.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tidelog_proto::batch::{BatchBuilder, Compression};
use tokio::sync::Notify;

use super::delivery::{DeliveryFuture, OutcomeGuard};

/// A batch being filled.
struct OpenBatch {
    builder: BatchBuilder,
    outcome: OutcomeGuard,
    /// Sum of its records' sizes.
    bytes: usize,
    /// Buffer permits its records hold (returned when it is settled).
    permits: usize,
    created: Instant,
}

/// A batch ready to be sent: encoded except for the producer fields, which
/// the sender stamps when it assigns sequence numbers.
pub(crate) struct ReadyBatch {
    pub(crate) builder: BatchBuilder,
    pub(crate) outcome: OutcomeGuard,
    pub(crate) records: u32,
    pub(crate) bytes: usize,
    pub(crate) permits: usize,
    pub(crate) created: Instant,
}

#[derive(Default)]
struct QueueState {
    open: Option<OpenBatch>,
    closed: VecDeque<ReadyBatch>,
    /// Size of the last batch closed, to size the next one's buffer.
    last_batch_bytes: usize,
}

/// One partition's queue.
pub(crate) struct PartitionQueue {
    topic: Arc<str>,
    partition: u32,
    compression: Compression,
    /// Size (sum of record sizes) at which a batch closes.
    batch_bytes: usize,
    state: Mutex<QueueState>,
    /// Woken when a batch closes or the first record of a batch arrives.
    pub(crate) wake: Notify,
}

/// Whether a partition's queue should be sent.
pub(crate) enum Ready {
    /// Nothing queued.
    Empty,
    /// A batch is full, the linger passed, or a flush or close hurries.
    Now,
    /// Not before this (the open batch's linger deadline).
    At(Instant),
}

impl PartitionQueue {
    pub(crate) fn new(
        topic: Arc<str>,
        partition: u32,
        compression: Compression,
        batch_bytes: usize,
    ) -> Self {
        PartitionQueue {
            topic,
            partition,
            compression,
            batch_bytes,
            state: Mutex::new(QueueState::default()),
            wake: Notify::new(),
        }
    }

    pub(crate) fn topic(&self) -> &Arc<str> {
        &self.topic
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Nothing leaves the state half-updated on a panic: recover.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Encodes a record into the open batch (closing it first when the
    /// record would overflow it) and returns the record's future.
    pub(crate) fn append(
        &self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(String, Bytes)],
        size: usize,
        permits: usize,
    ) -> DeliveryFuture {
        let (compression, batch_bytes) = (self.compression, self.batch_bytes);
        let mut state = self.lock();
        let mut wake = false;
        let full = state
            .open
            .as_ref()
            .is_some_and(|o| !o.builder.is_empty() && o.bytes + size > batch_bytes);
        if full {
            close(&mut state);
            wake = true;
        }
        let open = match &mut state.open {
            Some(open) => open,
            None => {
                wake = true;
                // Sized like the last batch: full batches under load, small
                // ones when records trickle in.
                let capacity = state.last_batch_bytes.max(size).min(batch_bytes) + 64;
                state.open.insert(OpenBatch {
                    builder: BatchBuilder::with_capacity(compression, timestamp, capacity),
                    outcome: OutcomeGuard::new(Arc::clone(&self.topic), self.partition),
                    bytes: 0,
                    permits: 0,
                    created: Instant::now(),
                })
            }
        };
        let index = open.builder.len();
        open.builder.push(timestamp, key, value, headers);
        open.bytes += size;
        open.permits += permits;
        let future = DeliveryFuture::new(open.outcome.share(), index, timestamp);
        if open.bytes >= batch_bytes {
            close(&mut state);
            wake = true;
        }
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        future
    }

    /// Whether to send now. `hurry` (flush, close) sends the open batch too.
    pub(crate) fn readiness(&self, hurry: bool, linger: std::time::Duration) -> Ready {
        let state = self.lock();
        if !state.closed.is_empty() {
            return Ready::Now;
        }
        let Some(open) = &state.open else {
            return Ready::Empty;
        };
        let deadline = open.created + linger;
        if hurry || Instant::now() >= deadline {
            Ready::Now
        } else {
            Ready::At(deadline)
        }
    }

    /// Takes up to `max_bytes` and `max_batches` of batches (at least one),
    /// oldest first; the open batch too when nothing closed is left and
    /// `with_open`.
    pub(crate) fn take(
        &self,
        max_bytes: usize,
        max_batches: usize,
        with_open: bool,
    ) -> Vec<ReadyBatch> {
        let mut state = self.lock();
        if state.closed.is_empty() && with_open {
            close(&mut state);
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some(b) = state.closed.front() {
            if !out.is_empty() && (bytes + b.bytes > max_bytes || out.len() >= max_batches) {
                break;
            }
            bytes += b.bytes;
            if let Some(b) = state.closed.pop_front() {
                out.push(b);
            }
        }
        out
    }

    /// Creation time of the oldest queued batch.
    pub(crate) fn oldest(&self) -> Option<Instant> {
        let state = self.lock();
        match state.closed.front() {
            Some(b) => Some(b.created),
            None => state.open.as_ref().map(|o| o.created),
        }
    }
}

/// Moves the open batch (if any) to the closed list.
fn close(state: &mut QueueState) {
    if let Some(open) = state.open.take() {
        let records = open.builder.len();
        state.last_batch_bytes = open.bytes;
        state.closed.push_back(ReadyBatch {
            builder: open.builder,
            outcome: open.outcome,
            records,
            bytes: open.bytes,
            permits: open.permits,
            created: open.created,
        });
    }
}
