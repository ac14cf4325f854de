//! The log of one partition: an ordered set of segments, the last of which
//! is active. Appends, rolls, retention, recovery and read planning live
//! here; the caller serialises access (one mutex per partition) and runs the
//! fsyncs (group commit) and the actual reads outside that lock.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tidelog_proto::batch::{stamp_batch, BatchHeader, HEADER_LEN};

use super::batch_read::ReadPlan;
use super::error::LogError;
use super::producer_state::{ProducerStateTable, SequenceCheck};
use super::recovery_point;
use super::segment::OffsetRange;
use super::segment::{OpenMode, Segment};
use super::segment_scan::{walk, DamageProbe};

/// Settings of one partition's log (the topic config, resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll the active segment when it would grow past this size.
    pub segment_bytes: u64,
    /// Roll the active segment when it is older than this (ms).
    pub segment_ms: i64,
    /// Delete sealed segments whose newest record is older than this (ms);
    /// -1 keeps them forever.
    pub retention_ms: i64,
    /// Delete the oldest sealed segments while the log is larger than this;
    /// -1 means no size limit.
    pub retention_bytes: i64,
    /// Largest batch accepted, in bytes.
    pub max_message_bytes: u32,
    /// Bytes of log between two offset-index entries.
    pub index_interval_bytes: u64,
    /// Forget idle idempotent producers after this (ms).
    pub producer_expiry_ms: i64,
    /// Upload sealed segments to the object store (`remote.storage.enable`).
    pub remote_storage_enable: bool,
    /// How long uploaded segments stay on local disk (ms); -2 means
    /// `retention_ms`, -1 forever (`local.retention.ms`).
    pub local_retention_ms: i64,
    /// How many bytes of uploaded segments stay on local disk; -2 means
    /// `retention_bytes`, -1 unlimited (`local.retention.bytes`).
    pub local_retention_bytes: i64,
}

impl LogConfig {
    /// `local.retention.ms` resolved (-2 → `retention.ms`).
    pub fn effective_local_retention_ms(&self) -> i64 {
        if self.local_retention_ms == -2 {
            self.retention_ms
        } else {
            self.local_retention_ms
        }
    }

    /// `local.retention.bytes` resolved (-2 → `retention.bytes`).
    pub fn effective_local_retention_bytes(&self) -> i64 {
        if self.local_retention_bytes == -2 {
            self.retention_bytes
        } else {
            self.local_retention_bytes
        }
    }
}

/// A sealed segment waiting for upload.
#[derive(Debug, Clone)]
pub struct SealedSegment {
    /// First offset.
    pub base_offset: i64,
    /// Offset after the last record.
    pub next_offset: i64,
    /// Bytes of data.
    pub size: u64,
    /// Largest timestamp.
    pub max_timestamp: i64,
    /// The data file.
    pub file: Arc<File>,
    /// Offset index, file format.
    pub index: Vec<u8>,
    /// Time index, file format.
    pub time_index: Vec<u8>,
}

/// What tiering knows, for local retention.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoteBounds {
    /// Tiering is on for this log: keep segments until uploaded.
    pub active: bool,
    /// Offset up to which the log is durably in the bucket.
    pub uploaded_end: Option<i64>,
    /// First offset still in the bucket (after remote retention).
    pub remote_start: Option<i64>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1024 * 1024 + 1024,
            index_interval_bytes: 4096,
            producer_expiry_ms: 7 * 24 * 3600 * 1000,
            remote_storage_enable: true,
            local_retention_ms: -2,
            local_retention_bytes: -2,
        }
    }
}

/// A sealed segment for the scrub: its bytes and where it must end.
#[derive(Debug)]
pub struct ScrubTarget {
    /// First offset.
    pub base_offset: i64,
    /// The next segment's base: where this one's offsets end.
    pub next_base: i64,
    /// Bytes of data.
    pub size: u64,
    /// The file, for a read-only walk.
    pub probe: DamageProbe,
}

impl ScrubTarget {
    /// Reads and checks every batch (read-only): damaged ranges with the
    /// byte position where intact data resumes after each.
    pub fn check(&self) -> Result<Vec<(OffsetRange, Option<u64>)>, LogError> {
        let mut resumes: Vec<(i64, u64)> = Vec::new();
        let mode = OpenMode {
            active: false,
            known_end: Some(self.next_base),
        };
        let found = walk(
            &self.probe.file,
            &self.probe.path,
            self.base_offset,
            self.size,
            mode,
            &mut |h, pos, after_damage| {
                if after_damage {
                    resumes.push((h.base_offset, pos));
                }
            },
        )?;
        Ok(found
            .damaged
            .into_iter()
            .map(|r| {
                let resume = resumes.iter().find(|(o, _)| *o == r.to).map(|(_, p)| *p);
                (r, resume)
            })
            .collect())
    }
}

/// A validated batch waiting to be appended.
#[derive(Debug)]
pub struct IncomingBatch {
    /// The bytes as received. They are written as they are except for the
    /// header, whose stamped copy is written in front of them (no copy of
    /// the records).
    pub bytes: Bytes,
    /// Its parsed header.
    pub header: BatchHeader,
}

/// Result of appending one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Offset of the batch's first record.
    pub base_offset: i64,
    /// True for a recognised retry (nothing appended).
    pub duplicate: bool,
}

/// Summary numbers of a partition.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogStats {
    /// First offset in the log.
    pub log_start_offset: i64,
    /// Next offset to be assigned.
    pub log_end_offset: i64,
    /// Bytes in all segments.
    pub size_bytes: u64,
    /// Number of segments.
    pub segments: u32,
}

/// The log of one partition.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    producers: ProducerStateTable,
    failed: Option<String>,
}

fn snapshot_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.snapshot"))
}

fn parse_stem(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, recovering from a crash: the
    /// active segment is scanned and only a torn tail past the recovery
    /// point is truncated; damaged batches anywhere are kept and reported
    /// as damaged ranges (see `segment_scan`); sealed segments are trusted
    /// if their index files check out. A log that ends below its recovery
    /// point is refused unless `accept_data_loss`, which continues at the
    /// recovery point so no offset is handed out twice.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
        accept_data_loss: bool,
    ) -> Result<Self, LogError> {
        std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
            let entry = entry.map_err(|e| LogError::io(dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = parse_stem(&name, ".log") {
                bases.push(base);
            } else if name.ends_with(".tmp") {
                // A snapshot or recovery point interrupted mid-write.
                let _ = std::fs::remove_file(entry.path());
            }
        }
        bases.sort_unstable();
        let recovery_point = recovery_point::read(dir);
        let mut segments = BTreeMap::new();
        let mut producers = ProducerStateTable::default();
        let mut expected_next: Option<i64> = None;
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            let is_last = next_base.is_none();
            if is_last {
                producers = ProducerStateTable::read_snapshot(&snapshot_path(dir, base))
                    .unwrap_or_default();
            }
            let mut on_batch = |h: &BatchHeader| {
                if is_last {
                    producers.record(h, h.base_offset, now_ms);
                }
            };
            let mode = OpenMode {
                active: is_last,
                known_end: if is_last { recovery_point } else { next_base },
            };
            let (seg, outcome) =
                Segment::open(dir, base, config.index_interval_bytes, mode, &mut on_batch)?;
            if outcome.truncated_bytes > 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    segment = base,
                    bytes = outcome.truncated_bytes,
                    "truncated a torn tail (past the recovery point: never acknowledged)"
                );
            }
            for r in seg.damaged() {
                tracing::error!(
                    dir = %dir.display(),
                    segment = base,
                    from = r.from,
                    to = r.to,
                    "damaged batches kept as they are; reads of these offsets are DATA_LOSS (or served from the bucket)"
                );
            }
            if let Some(expected) = expected_next {
                if expected != base {
                    tracing::warn!(dir = %dir.display(), expected, base, "gap between segments");
                }
            }
            expected_next = Some(seg.next_offset());
            segments.insert(base, seg);
        }
        if segments.is_empty() {
            let base = recovery_point.unwrap_or(0);
            let seg = Segment::create(dir, base, config.index_interval_bytes, now_ms)?;
            sync_dir(dir)?;
            segments.insert(base, seg);
        }
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            producers,
            failed: None,
        };
        let end = log.log_end_offset();
        match recovery_point {
            Some(rp) if rp > end && !accept_data_loss => {
                return Err(LogError::BelowRecoveryPoint {
                    dir: dir.to_path_buf(),
                    end,
                    recovery_point: rp,
                })
            }
            Some(rp) if rp > end => {
                tracing::error!(dir = %dir.display(), from = end, to = rp, "accepting the loss of offsets below the recovery point; the log continues at the recovery point and these offsets read as DATA_LOSS");
                log.roll_at(rp, now_ms)?;
            }
            _ => {}
        }
        // Never append after damaged bytes: a later scan could not tell
        // where the new batches begin.
        if !log.active().damaged().is_empty() {
            log.roll(now_ms)?;
        }
        Ok(log)
    }

    /// Creates an empty log in `dir` whose first offset will be
    /// `base_offset` (restoring a partition whose older data is in the
    /// bucket). Refuses a directory that already holds segments.
    pub fn create_at(
        dir: &Path,
        base_offset: i64,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        let has_log = std::fs::read_dir(dir)
            .map_err(|e| LogError::io(dir, e))?
            .flatten()
            .any(|e| parse_stem(&e.file_name().to_string_lossy(), ".log").is_some());
        if has_log {
            return Err(LogError::LogExists(dir.to_path_buf()));
        }
        let seg = Segment::create(dir, base_offset, config.index_interval_bytes, now_ms)?;
        seg.sync()?;
        sync_dir(dir)?;
        recovery_point::write(dir, base_offset)?;
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments: BTreeMap::from([(base_offset, seg)]),
            producers: ProducerStateTable::default(),
            failed: None,
        })
    }

    fn active(&self) -> &Segment {
        // `open` guarantees at least one segment and nothing removes the last.
        self.segments
            .values()
            .next_back()
            .expect("a partition log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a partition log always has an active segment")
    }

    /// Replaces the config (takes effect on the next append / retention).
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// The config in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.segments.keys().next().copied().unwrap_or(0)
    }

    /// Marks the log failed (after an fsync error); appends are refused.
    pub fn mark_failed(&mut self, why: String) {
        self.failed = Some(why);
    }

    /// Validates sizes and sequences of every batch first, then appends them
    /// all: a request with one bad batch appends nothing.
    pub fn append(
        &mut self,
        batches: &[IncomingBatch],
        now_ms: i64,
    ) -> Result<Vec<AppendResult>, LogError> {
        if let Some(why) = &self.failed {
            return Err(LogError::Failed(why.clone()));
        }
        for b in batches {
            if b.bytes.len() > self.config.max_message_bytes as usize {
                return Err(LogError::RecordTooLarge {
                    size: b.bytes.len(),
                    max: self.config.max_message_bytes,
                });
            }
        }
        // Dry run of the sequence checks on a copy of the producers involved.
        let mut scratch = self
            .producers
            .subset(batches.iter().map(|b| b.header.producer_id));
        let mut next = self.log_end_offset();
        let mut decisions = Vec::with_capacity(batches.len());
        for b in batches {
            let d = scratch.check(&b.header)?;
            if d == SequenceCheck::Append {
                scratch.record(&b.header, next, now_ms);
                next += i64::from(b.header.record_count);
            }
            decisions.push(d);
        }
        let mut results = Vec::with_capacity(batches.len());
        for (b, d) in batches.iter().zip(decisions) {
            match d {
                SequenceCheck::Duplicate(base_offset) => results.push(AppendResult {
                    base_offset,
                    duplicate: true,
                }),
                SequenceCheck::Append => {
                    self.maybe_roll(b.bytes.len() as u64, now_ms)?;
                    let base_offset = self.log_end_offset();
                    let mut head = [0u8; HEADER_LEN];
                    head.copy_from_slice(&b.bytes[..HEADER_LEN]);
                    stamp_batch(&mut head, base_offset, 0);
                    let mut header = b.header;
                    header.base_offset = base_offset;
                    self.active_mut()
                        .append_parts(&head, &b.bytes[HEADER_LEN..], &header)?;
                    self.producers.record(&header, base_offset, now_ms);
                    results.push(AppendResult {
                        base_offset,
                        duplicate: false,
                    });
                }
            }
        }
        Ok(results)
    }

    fn maybe_roll(&mut self, incoming: u64, now_ms: i64) -> Result<(), LogError> {
        let cfg = &self.config;
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let too_big = active.size() + incoming > cfg.segment_bytes;
        let too_old = now_ms.saturating_sub(active.created_ms()) >= cfg.segment_ms;
        if too_big || too_old {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.roll_at(self.log_end_offset(), now_ms)
    }

    /// Seals the active segment and starts a new one at `base` (past the
    /// log end only when recovery accepted a loss).
    fn roll_at(&mut self, base: i64, now_ms: i64) -> Result<(), LogError> {
        let dir = self.dir.clone();
        let old_base = self.active().base_offset();
        self.active().seal(&dir)?;
        self.producers
            .expire(now_ms, self.config.producer_expiry_ms);
        self.producers.write_snapshot(&snapshot_path(&dir, base))?;
        let seg = Segment::create(&dir, base, self.config.index_interval_bytes, now_ms)?;
        sync_dir(&dir)?;
        self.segments.insert(base, seg);
        let _ = std::fs::remove_file(snapshot_path(&dir, old_base));
        Ok(())
    }

    /// The active segment's file and the offset its data reaches, for a
    /// group-commit fsync outside the lock.
    pub fn sync_target(&self) -> (Arc<File>, i64) {
        (self.active().file(), self.log_end_offset())
    }

    /// Plans a read at `offset` bounded by `visible_end` (the offset below
    /// which data is durable). `Ok(None)`: nothing readable yet.
    pub fn plan_read(&self, offset: i64, visible_end: i64) -> Result<Option<ReadPlan>, LogError> {
        let start = self.log_start_offset();
        let end = self.log_end_offset();
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange { offset, start, end });
        }
        if offset >= visible_end {
            return Ok(None);
        }
        // The segment holding `offset`, else the first that holds anything
        // past it (an empty one left by an accepted loss holds nothing).
        let Some(seg) = self.segment_holding(offset).or_else(|| {
            self.segments
                .range(offset..)
                .map(|(_, s)| s)
                .find(|s| s.next_offset() > offset)
        }) else {
            return Ok(None);
        };
        // The next segment starts past `offset`: these offsets were lost
        // (segment data missing). Serving the next segment would skip them
        // without a word.
        if seg.base_offset() > offset {
            return Err(LogError::Missing {
                from: offset,
                to: seg.base_offset(),
            });
        }
        if let Some(r) = seg.damage_at(offset) {
            return Err(LogError::Missing {
                from: offset,
                to: r.to,
            });
        }
        Ok(Some(seg.read_plan_for(offset)))
    }

    /// Plans a scan for the first batch with `max_timestamp >= ts`; run it
    /// with [`ReadPlan::find_timestamp`] outside the lock.
    pub fn plan_timestamp(&self, ts: i64) -> Option<ReadPlan> {
        self.segments
            .values()
            .find(|s| s.max_timestamp() >= ts)
            .map(|s| s.read_plan(s.position_for_timestamp(ts)))
    }

    /// Deletes sealed segments past the retention limits. Returns how many
    /// were removed. With remote storage enabled only segments the bucket
    /// durably holds (`remote.uploaded_end`) are deleted, past the local
    /// limits or once remote retention dropped them; without it, the total
    /// limits apply to local data as before.
    pub fn enforce_retention(
        &mut self,
        now_ms: i64,
        remote: RemoteBounds,
    ) -> Result<usize, LogError> {
        let tiered = remote.active;
        let (limit_ms, limit_bytes) = if tiered {
            (
                self.config.effective_local_retention_ms(),
                self.config.effective_local_retention_bytes(),
            )
        } else {
            (self.config.retention_ms, self.config.retention_bytes)
        };
        let mut removed = 0;
        let mut total: u64 = self.segments.values().map(Segment::size).sum();
        loop {
            if self.segments.len() <= 1 {
                break;
            }
            let Some((&base, oldest)) = self.segments.iter().next() else {
                break;
            };
            if tiered {
                // Never delete what the bucket does not durably hold.
                match remote.uploaded_end {
                    Some(end) if oldest.next_offset() <= end => {}
                    _ => break,
                }
            }
            let expired = limit_ms >= 0
                && oldest.max_timestamp() >= 0
                && now_ms.saturating_sub(oldest.max_timestamp()) > limit_ms;
            let over_size = limit_bytes >= 0
                && total.saturating_sub(oldest.size()) >= limit_bytes as u64
                && total > limit_bytes as u64;
            let dropped_remotely = tiered
                && remote
                    .remote_start
                    .or(remote.uploaded_end)
                    .is_some_and(|start| oldest.next_offset() <= start);
            if !(expired || over_size || dropped_remotely) {
                break;
            }
            oldest.delete_files(&self.dir)?;
            total -= oldest.size();
            self.segments.remove(&base);
            removed += 1;
        }
        Ok(removed)
    }

    /// Sealed segments (all but the active one) ending after `after`.
    pub fn sealed_after(&self, after: Option<i64>) -> Vec<SealedSegment> {
        let n = self.segments.len();
        self.segments
            .values()
            .take(n.saturating_sub(1))
            .filter(|s| after.is_none_or(|a| s.next_offset() > a) && !s.is_empty())
            .map(|s| {
                let (index, time_index) = s.index_bytes();
                SealedSegment {
                    base_offset: s.base_offset(),
                    next_offset: s.next_offset(),
                    size: s.size(),
                    max_timestamp: s.max_timestamp(),
                    file: s.file(),
                    index,
                    time_index,
                }
            })
            .collect()
    }

    /// Bytes of local segments whose data starts at or after `offset`.
    pub fn bytes_from(&self, offset: i64) -> u64 {
        self.segments
            .values()
            .filter(|s| s.base_offset() >= offset)
            .map(Segment::size)
            .sum()
    }

    /// Summary numbers.
    pub fn stats(&self) -> LogStats {
        LogStats {
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.log_end_offset(),
            size_bytes: self.segments.values().map(Segment::size).sum(),
            segments: self.segments.len() as u32,
        }
    }

    /// The sealed segments, for the scrub to read outside the lock.
    pub fn scrub_targets(&self) -> Vec<ScrubTarget> {
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        self.segments
            .values()
            .zip(bases.iter().skip(1))
            .map(|(s, &next_base)| ScrubTarget {
                base_offset: s.base_offset(),
                next_base,
                size: s.size(),
                probe: s.damage_probe(),
            })
            .collect()
    }

    /// Damaged ranges recovery found (and reads since).
    pub fn damaged_ranges(&self) -> usize {
        self.segments.values().map(|s| s.damaged().len()).sum()
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A probe for where damage met by a read at `offset` ends (run it
    /// outside the lock, then [`PartitionLog::note_damaged`]).
    pub fn damage_probe(&self, offset: i64) -> Option<DamageProbe> {
        self.segment_holding(offset).map(Segment::damage_probe)
    }

    /// Records that a read found `[from, to)` damaged (`resume`: where the
    /// intact batch at `to` starts); true when it was not known before.
    pub fn note_damaged(&mut self, from: i64, to: i64, resume: Option<u64>) -> bool {
        self.segments
            .range_mut(..=from)
            .next_back()
            .filter(|(_, s)| s.next_offset() > from)
            .is_some_and(|(_, s)| s.note_damaged(from, to, resume))
    }

    fn segment_holding(&self, offset: i64) -> Option<&Segment> {
        self.segments
            .range(..=offset)
            .next_back()
            .map(|(_, s)| s)
            .filter(|s| s.next_offset() > offset)
    }

    /// Fsyncs the active segment (used at shutdown).
    pub fn sync_active(&self) -> Result<(), LogError> {
        self.active().sync()
    }
}

/// Fsyncs a directory so a created or renamed entry is durable.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_at_starts_an_empty_log_at_the_given_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pdir = dir.path().join("0");
        let log = PartitionLog::create_at(&pdir, 2978, LogConfig::default(), 0).expect("create");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (2978, 2978));
        drop(log);
        let log = PartitionLog::open(&pdir, LogConfig::default(), 0, false).expect("reopen");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (2978, 2978));
        assert!(
            PartitionLog::create_at(&pdir, 0, LogConfig::default(), 0).is_err(),
            "a directory with a log is refused"
        );
    }
}
