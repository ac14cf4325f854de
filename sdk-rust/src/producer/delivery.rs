//! Acknowledgement futures. The records of one batch share one
//! [`BatchOutcome`] (one allocation per batch, not per record), and each
//! record's [`DeliveryFuture`] reads its offset from it by position.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};

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

/// The outcome of one batch, shared by the futures of its records.
#[derive(Debug)]
pub(crate) struct BatchOutcome {
    topic: Arc<str>,
    partition: u32,
    /// Base offset of the batch, or why it failed.
    result: OnceLock<Result<i64>>,
    wakers: Mutex<Vec<Waker>>,
}

impl BatchOutcome {
    pub(crate) fn new(topic: Arc<str>, partition: u32) -> Arc<Self> {
        Arc::new(BatchOutcome {
            topic,
            partition,
            result: OnceLock::new(),
            wakers: Mutex::new(Vec::new()),
        })
    }

    /// Settles the batch (the first outcome wins) and wakes its waiters.
    pub(crate) fn complete(&self, result: Result<i64>) {
        let _ = self.result.set(result);
        // Taken after the result is set: a poll that registered before this
        // point is woken, one after it sees the result.
        let wakers = match self.wakers.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for w in wakers {
            w.wake();
        }
    }

    fn metadata(&self, index: u32, timestamp: i64) -> Option<Result<RecordMetadata>> {
        self.result.get().map(|r| match r {
            Ok(base) => Ok(RecordMetadata {
                topic: self.topic.to_string(),
                partition: self.partition,
                offset: base + i64::from(index),
                timestamp,
            }),
            Err(e) => Err(e.clone()),
        })
    }
}

/// The producer's handle on a batch's outcome. Should the batch be dropped
/// without being settled (its sender task ended early), its records fail
/// with [`Error::Closed`] instead of waiting forever.
#[derive(Debug)]
pub(crate) struct OutcomeGuard(Arc<BatchOutcome>);

impl OutcomeGuard {
    pub(crate) fn new(topic: Arc<str>, partition: u32) -> Self {
        OutcomeGuard(BatchOutcome::new(topic, partition))
    }

    /// A reference for a record's future.
    pub(crate) fn share(&self) -> Arc<BatchOutcome> {
        Arc::clone(&self.0)
    }
}

impl std::ops::Deref for OutcomeGuard {
    type Target = BatchOutcome;
    fn deref(&self) -> &BatchOutcome {
        &self.0
    }
}

impl Drop for OutcomeGuard {
    fn drop(&mut self) {
        // A no-op when the batch was settled: the first outcome wins.
        self.0.complete(Err(Error::Closed));
    }
}

/// Resolves when the broker acknowledged a record (or it failed for good).
#[derive(Debug)]
pub struct DeliveryFuture {
    batch: Arc<BatchOutcome>,
    index: u32,
    timestamp: i64,
    /// Our slot in the batch's waker list once registered.
    slot: Option<usize>,
}

impl DeliveryFuture {
    pub(crate) fn new(batch: Arc<BatchOutcome>, index: u32, timestamp: i64) -> Self {
        DeliveryFuture {
            batch,
            index,
            timestamp,
            slot: None,
        }
    }

    /// A future that has already failed.
    pub(crate) fn failed(topic: Arc<str>, partition: u32, e: Error) -> Self {
        let batch = BatchOutcome::new(topic, partition);
        batch.complete(Err(e));
        DeliveryFuture::new(batch, 0, 0)
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(done) = this.batch.metadata(this.index, this.timestamp) {
            return Poll::Ready(done);
        }
        let mut wakers = match this.batch.wakers.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Checked again under the lock: `complete` sets the result before
        // taking the wakers, so it cannot slip between check and register.
        if let Some(done) = this.batch.metadata(this.index, this.timestamp) {
            return Poll::Ready(done);
        }
        match this.slot {
            Some(i) if i < wakers.len() => {
                if !wakers[i].will_wake(cx.waker()) {
                    wakers[i] = cx.waker().clone();
                }
            }
            _ => {
                this.slot = Some(wakers.len());
                wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn records_of_a_batch_get_consecutive_offsets() {
        let batch = BatchOutcome::new(Arc::from("t"), 3);
        let mut first = DeliveryFuture::new(Arc::clone(&batch), 0, 10);
        let second = DeliveryFuture::new(Arc::clone(&batch), 1, 11);
        assert!((&mut first).now_or_never().is_none());
        let waiter = tokio::spawn(second);
        batch.complete(Ok(100));
        let a = first.await.expect("first");
        let b = waiter.await.expect("join").expect("second");
        assert_eq!((a.offset, b.offset), (100, 101));
        assert_eq!((a.topic.as_str(), a.partition, b.timestamp), ("t", 3, 11));
    }

    #[tokio::test]
    async fn an_unsettled_batch_fails_its_records_when_dropped() {
        let guard = OutcomeGuard::new(Arc::from("t"), 0);
        let f = DeliveryFuture::new(guard.share(), 0, 0);
        drop(guard);
        assert!(matches!(f.await, Err(Error::Closed)));
        let guard = OutcomeGuard::new(Arc::from("t"), 0);
        let f = DeliveryFuture::new(guard.share(), 2, 0);
        guard.complete(Ok(40));
        drop(guard);
        assert_eq!(f.await.expect("settled before the drop").offset, 42);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_record() {
        let batch = BatchOutcome::new(Arc::from("t"), 0);
        let f = DeliveryFuture::new(Arc::clone(&batch), 5, 0);
        batch.complete(Err(Error::Closed));
        batch.complete(Ok(1)); // too late: the first outcome stays
        assert!(matches!(f.await, Err(Error::Closed)));
    }
}
