//! Idempotent-producer bookkeeping for one partition.
//!
//! For each producer id the partition remembers its epoch and its last
//! [`MAX_REMEMBERED`] batches (sequence range and base offset): enough for
//! a retry of any request in a pipelined client's window (the SDK keeps at
//! most that many batches of a partition unanswered). A retried
//! batch is recognised and answered with its original offsets; a sequence
//! gap or an old epoch is refused. The table is snapshotted to a file when a
//! segment rolls and rebuilt on start-up from that snapshot plus the active
//! segment, so idempotence survives a broker restart.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tidelog_proto::batch::{BatchError, BatchHeader};

use super::error::LogError;

/// Batches remembered per producer. Kafka keeps 5 (one batch per request,
/// 5 requests in flight); a Tidelog request carries several batches.
pub const MAX_REMEMBERED: usize = tidelog_proto::limits::DEDUPE_WINDOW_BATCHES;

/// A remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    /// First sequence number.
    pub first_seq: i32,
    /// Last sequence number.
    pub last_seq: i32,
    /// Offset assigned to its first record.
    pub base_offset: i64,
}

/// State of one producer id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    /// Latest epoch.
    pub epoch: i16,
    /// Most recent batches, oldest first.
    pub batches: VecDeque<BatchMeta>,
    /// Wall-clock ms of the last write, for expiry.
    pub last_write_ms: i64,
}

/// Outcome of checking a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New data: append it.
    Append,
    /// A retry of a batch already in the log at this base offset.
    Duplicate(i64),
}

/// All producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateTable {
    /// Decides what to do with a batch, without changing state.
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck, LogError> {
        if h.producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        // Produce validation refuses these; an untracked idempotent batch
        // would be appended again on every retry.
        if h.base_sequence < 0 || h.producer_epoch < 0 {
            return Err(LogError::Corrupt(BatchError::InvalidHeader(
                "an idempotent batch needs producer_epoch >= 0 and base_sequence >= 0",
            )));
        }
        // A producer (or a new epoch of one) starts its sequence at 0. A
        // later first batch is a request that overtook the first one (a
        // pipelining client) or comes from a producer whose state expired:
        // refuse it, nothing is appended, and the client sends it again.
        let first = |h: &BatchHeader| {
            if h.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(LogError::OutOfOrderSequence {
                    producer_id: h.producer_id,
                    expected: 0,
                    got: h.base_sequence,
                })
            }
        };
        let Some(entry) = self.producers.get(&h.producer_id) else {
            return first(h);
        };
        if h.producer_epoch < entry.epoch {
            return Err(LogError::ProducerFenced {
                producer_id: h.producer_id,
                current: entry.epoch,
                got: h.producer_epoch,
            });
        }
        if h.producer_epoch > entry.epoch {
            return first(h);
        }
        let last_seq = h.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate(dup.base_offset));
        }
        let expected = entry.batches.back().map_or(0, |b| {
            if b.last_seq == i32::MAX {
                0
            } else {
                b.last_seq + 1
            }
        });
        if h.base_sequence == expected {
            Ok(SequenceCheck::Append)
        } else if is_behind(h.base_sequence, expected) {
            // Already written, but older than the batches remembered: a
            // retry that arrived very late. Not a loss, and its original
            // offsets are no longer known.
            Err(LogError::DuplicateSequence {
                producer_id: h.producer_id,
                got: h.base_sequence,
                expected,
            })
        } else {
            Err(LogError::OutOfOrderSequence {
                producer_id: h.producer_id,
                expected,
                got: h.base_sequence,
            })
        }
    }

    /// Records an appended batch.
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64, now_ms: i64) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::new(),
                last_write_ms: now_ms,
            });
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset,
        });
        while entry.batches.len() > MAX_REMEMBERED {
            entry.batches.pop_front();
        }
        entry.last_write_ms = now_ms;
    }

    /// The entries for the given producer ids (for a dry run).
    pub fn subset(&self, ids: impl Iterator<Item = i64>) -> Self {
        let producers = ids
            .filter_map(|id| self.producers.get(&id).map(|e| (id, e.clone())))
            .collect();
        ProducerStateTable { producers }
    }

    /// Forgets producers idle for longer than `expiry_ms`.
    pub fn expire(&mut self, now_ms: i64, expiry_ms: i64) {
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_write_ms) <= expiry_ms);
    }

    /// True when no producer is tracked.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Writes a snapshot file atomically (temp file, fsync, rename).
    pub fn write_snapshot(&self, path: &Path) -> Result<(), LogError> {
        let tmp = path.with_extension("snapshot.tmp");
        let bytes =
            serde_json::to_vec(self).map_err(|e| LogError::io(path, std::io::Error::other(e)))?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(|e| LogError::io(&tmp, e))?;
            f.write_all(&bytes).map_err(|e| LogError::io(&tmp, e))?;
            f.sync_all().map_err(|e| LogError::io(&tmp, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| LogError::io(path, e))
    }

    /// Reads a snapshot file; a missing or unreadable one yields `None`
    /// (idempotence then covers only what the active segment shows).
    pub fn read_snapshot(path: &Path) -> Option<Self> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// True when `seq` lies before `expected` in the wrapping sequence space
/// (0..=i32::MAX), i.e. within the half of it just behind `expected`.
fn is_behind(seq: i32, expected: i32) -> bool {
    const SPACE: i64 = i32::MAX as i64 + 1;
    let distance = (i64::from(expected) - i64::from(seq)).rem_euclid(SPACE);
    distance > 0 && distance <= SPACE / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidelog_proto::batch::{validate_batch, BatchBuilder, Compression};

    fn header(pid: i64, epoch: i16, seq: i32, n: u32) -> BatchHeader {
        let mut b = BatchBuilder::new(Compression::None, 0);
        for _ in 0..n {
            b.push(0, None, Some(b"v"), &[]);
        }
        validate_batch(&b.finish(pid, epoch, seq)).expect("valid")
    }

    #[test]
    fn duplicates_gaps_and_fencing() {
        let mut t = ProducerStateTable::default();
        let a = header(7, 0, 0, 3);
        assert_eq!(t.check(&a).expect("ok"), SequenceCheck::Append);
        t.record(&a, 100, 0);
        assert_eq!(t.check(&a).expect("ok"), SequenceCheck::Duplicate(100));
        let b = header(7, 0, 3, 2);
        assert_eq!(t.check(&b).expect("ok"), SequenceCheck::Append);
        t.record(&b, 103, 0);
        let gap = header(7, 0, 9, 1);
        assert!(matches!(
            t.check(&gap),
            Err(LogError::OutOfOrderSequence { expected: 5, .. })
        ));
        assert!(matches!(
            t.check(&header(8, 0, 5, 1)),
            Err(LogError::OutOfOrderSequence { expected: 0, .. })
        ));
        assert!(matches!(
            t.check(&header(7, 1, 4, 1)),
            Err(LogError::OutOfOrderSequence { expected: 0, .. })
        ));
        let newer = header(7, 1, 0, 1);
        assert_eq!(t.check(&newer).expect("ok"), SequenceCheck::Append);
        t.record(&newer, 105, 0);
        assert!(matches!(t.check(&a), Err(LogError::ProducerFenced { .. })));
    }

    #[test]
    fn remembers_last_batches_and_snapshots() {
        let mut t = ProducerStateTable::default();
        let n = MAX_REMEMBERED as i32 + 2;
        for i in 0..n {
            t.record(&header(1, 0, i, 1), i64::from(i) * 10, 0);
        }
        assert_eq!(
            t.check(&header(1, 0, 2, 1)).expect("ok"),
            SequenceCheck::Duplicate(20)
        );
        assert!(
            matches!(
                t.check(&header(1, 0, 1, 1)),
                Err(LogError::DuplicateSequence {
                    got: 1,
                    expected,
                    ..
                }) if expected == n
            ),
            "too old to dedupe, but not a loss"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.snapshot");
        t.write_snapshot(&p).expect("write");
        assert_eq!(ProducerStateTable::read_snapshot(&p), Some(t.clone()));
        t.expire(10_000, 5_000);
        assert!(t.is_empty());
    }
}

#[cfg(test)]
mod sequence_space_tests {
    use super::*;

    #[test]
    fn behind_means_the_half_of_the_space_before_expected() {
        assert!(is_behind(0, 1));
        assert!(!is_behind(1, 1));
        assert!(!is_behind(2, 1), "ahead is a gap, not a duplicate");
        // Across the wrap: expected 3 after i32::MAX.
        assert!(is_behind(i32::MAX, 3));
        assert!(!is_behind(4, 3));
    }

    #[test]
    fn an_idempotent_batch_without_a_sequence_is_refused() {
        let t = ProducerStateTable::default();
        let mut b =
            tidelog_proto::batch::BatchBuilder::new(tidelog_proto::batch::Compression::None, 0);
        b.push(0, None, Some(b"v"), &[]);
        let h = tidelog_proto::batch::validate_batch(&b.finish(5, 0, -1)).expect("header");
        assert!(matches!(t.check(&h), Err(LogError::Corrupt(_))));
    }
}
