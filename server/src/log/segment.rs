//! One segment: a file of concatenated batches plus its sparse indexes.
//!
//! Files of a segment with base offset B (20-digit, zero-padded):
//! `B.log` (batches), `B.index`, `B.timeindex` (written when it seals).
//! Only the active (last) segment is ever appended to. Sealed segments are
//! immutable, which is what lets tiering upload them as they are.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tidelog_proto::batch::{BatchHeader, HEADER_LEN};

use super::batch_read::ReadPlan;
use super::error::LogError;
use super::index::{
    load_index_file, write_index_file, OffsetEntry, OffsetIndex, TimeEntry, TimeIndex,
};
use super::segment_scan::DamageProbe;

/// A segment file and its in-memory state.
#[derive(Debug)]
pub struct Segment {
    pub(super) base_offset: i64,
    pub(super) next_offset: i64,
    pub(super) size: u64,
    pub(super) max_timestamp: i64,
    /// Wall-clock ms when the segment was created; drives `segment.ms`.
    pub(super) created_ms: i64,
    pub(super) file: Arc<File>,
    pub(super) log_path: Arc<Path>,
    pub(super) index: OffsetIndex,
    pub(super) time_index: TimeIndex,
    pub(super) bytes_since_index: u64,
    pub(super) index_interval: u64,
    /// Offsets this segment should hold but cannot serve: damaged bytes
    /// found by a recovery scan or a read. Kept, never truncated away.
    pub(super) damaged: Vec<OffsetRange>,
}

/// A half-open range of offsets `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRange {
    /// First offset.
    pub from: i64,
    /// Offset after the last.
    pub to: i64,
}

/// How a segment is opened at start-up.
#[derive(Debug, Clone, Copy)]
pub struct OpenMode {
    /// The active (last) segment: always scanned, and a torn tail past
    /// `known_end` may be truncated.
    pub active: bool,
    /// Where this segment's offsets are known to end: the next segment's
    /// base offset for a sealed one, the recovery point (highest offset
    /// ever made durable) for the active one. Damage that hides the end
    /// is reported up to here instead of being cut off.
    pub known_end: Option<i64>,
}

/// Paths of a segment's files.
pub fn segment_paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
    let stem = format!("{base_offset:020}");
    (
        dir.join(format!("{stem}.log")),
        dir.join(format!("{stem}.index")),
        dir.join(format!("{stem}.timeindex")),
    )
}

impl Segment {
    /// Creates a new empty segment file (the caller fsyncs the directory).
    pub fn create(
        dir: &Path,
        base_offset: i64,
        index_interval: u64,
        now_ms: i64,
    ) -> Result<Self, LogError> {
        let (log_path, _, _) = segment_paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&log_path)
            .map_err(|e| LogError::io(&log_path, e))?;
        Ok(Segment {
            base_offset,
            next_offset: base_offset,
            size: 0,
            max_timestamp: -1,
            created_ms: now_ms,
            file: Arc::new(file),
            log_path: Arc::from(log_path),
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            index_interval,
            damaged: Vec::new(),
        })
    }

    /// Opens an existing segment. A sealed segment with valid index files is
    /// opened without reading its data; otherwise (the active segment, or
    /// missing or damaged indexes) every batch is read and checked (see
    /// `segment_scan`). `on_batch` sees each valid batch of a scan.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval: u64,
        mode: OpenMode,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> Result<(Self, RecoveryOutcome), LogError> {
        let (log_path, index_path, time_path) = segment_paths(dir, base_offset);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| LogError::io(&log_path, e))?;
        let meta = file.metadata().map_err(|e| LogError::io(&log_path, e))?;
        let created_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        let mut seg = Segment {
            base_offset,
            next_offset: base_offset,
            size: meta.len(),
            max_timestamp: -1,
            created_ms,
            file: Arc::new(file),
            log_path: Arc::from(log_path.as_path()),
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            index_interval,
            damaged: Vec::new(),
        };
        if !mode.active {
            if let Some(outcome) = seg.try_load_indexes(&index_path, &time_path)? {
                return Ok((seg, outcome));
            }
        }
        let outcome = seg.scan(mode, on_batch)?;
        Ok((seg, outcome))
    }

    /// Loads index files of a sealed segment and reads its last batch to
    /// learn the end offset. `None` when anything looks wrong.
    fn try_load_indexes(
        &mut self,
        index_path: &Path,
        time_path: &Path,
    ) -> Result<Option<RecoveryOutcome>, LogError> {
        // The last time-index entry is not necessarily the last batch, so the
        // end offset comes from a short scan from the last offset-index entry.
        let Some(index) = load_index_file::<OffsetIndex>(index_path, self.size) else {
            return Ok(None);
        };
        let Some(time_index) = load_index_file::<TimeIndex>(time_path, self.size) else {
            return Ok(None);
        };
        let start = index.lookup(u32::MAX);
        let mut pos = u64::from(start);
        let mut next = None;
        let mut max_timestamp = -1;
        while pos < self.size {
            let Ok(h) = self.read_header_at(pos) else {
                return Ok(None);
            };
            if pos + h.total_len() as u64 > self.size {
                return Ok(None);
            }
            next = Some(h.next_offset());
            max_timestamp = max_timestamp.max(h.max_timestamp);
            pos += h.total_len() as u64;
        }
        let Some(next) = next else { return Ok(None) };
        self.next_offset = next;
        self.max_timestamp = time_index
            .last_max()
            .map_or(max_timestamp, |m| m.max(max_timestamp));
        self.index = index;
        self.time_index = time_index;
        Ok(Some(RecoveryOutcome {
            truncated_bytes: 0,
            scanned: false,
        }))
    }

    /// Offsets of this segment known to be damaged.
    pub fn damaged(&self) -> &[OffsetRange] {
        &self.damaged
    }

    /// The damaged range holding `offset`, if any.
    pub fn damage_at(&self, offset: i64) -> Option<OffsetRange> {
        self.damaged
            .iter()
            .find(|r| r.from <= offset && offset < r.to)
            .copied()
    }

    /// Records that `[from, to)` cannot be read (damage found by a read);
    /// `resume` is the byte position of the intact batch at `to`, if any.
    /// True when the range was not known before.
    pub fn note_damaged(&mut self, from: i64, to: i64, resume: Option<u64>) -> bool {
        let to = to.min(self.next_offset);
        if from >= to || self.damage_at(from).is_some() {
            return false;
        }
        self.damaged.push(OffsetRange { from, to });
        self.damaged.sort_by_key(|r| r.from);
        // Reads past the damage must start beyond it, not hop through it.
        if let (Some(position), Ok(rel_offset)) = (resume, u32::try_from(to - self.base_offset)) {
            if let Ok(position) = u32::try_from(position) {
                self.index.insert(OffsetEntry {
                    rel_offset,
                    position,
                });
            }
        }
        true
    }

    /// A probe for where damage met by a read ends.
    pub fn damage_probe(&self) -> DamageProbe {
        DamageProbe {
            file: self.file(),
            path: Arc::clone(&self.log_path),
            size: self.size,
            next_offset: self.next_offset,
        }
    }

    pub(super) fn read_header_at(&self, pos: u64) -> Result<BatchHeader, LogError> {
        let mut buf = [0u8; HEADER_LEN];
        self.file
            .read_exact_at(&mut buf, pos)
            .map_err(|e| LogError::io(&self.log_path, e))?;
        BatchHeader::parse(&buf).map_err(LogError::Corrupt)
    }

    /// Updates indexes and counters for a batch written at `self.size`;
    /// advances `size` past it.
    pub(super) fn note_appended(&mut self, h: &BatchHeader) {
        let position = self.size as u32;
        let rel_offset = (h.base_offset - self.base_offset) as u32;
        if self.bytes_since_index >= self.index_interval || self.index.is_empty() && position > 0 {
            self.index.push(OffsetEntry {
                rel_offset,
                position,
            });
            self.bytes_since_index = 0;
        }
        if h.max_timestamp > self.max_timestamp {
            self.time_index.push(TimeEntry {
                max_timestamp: h.max_timestamp,
                rel_offset,
                position,
            });
            self.max_timestamp = h.max_timestamp;
        }
        let total = h.total_len() as u64;
        self.bytes_since_index += total;
        self.size += total;
        self.next_offset = h.next_offset();
    }

    /// Appends a stamped, validated batch at the end of the file (into the
    /// page cache; durability comes from [`Segment::sync`]).
    pub fn append(&mut self, batch: &[u8], h: &BatchHeader) -> Result<(), LogError> {
        self.append_parts(batch, &[], h)
    }

    /// Appends one batch given as its (stamped) header and the rest, so the
    /// caller need not copy the batch to stamp it.
    pub fn append_parts(
        &mut self,
        head: &[u8],
        rest: &[u8],
        h: &BatchHeader,
    ) -> Result<(), LogError> {
        let written = self
            .file
            .write_all_at(head, self.size)
            .and_then(|()| self.file.write_all_at(rest, self.size + head.len() as u64));
        if let Err(e) = written {
            // Cut off whatever part was written so the file ends on a batch.
            let _ = self.file.set_len(self.size);
            return Err(LogError::io(&self.log_path, e));
        }
        self.note_appended(h);
        Ok(())
    }

    /// Flushes the data to disk.
    pub fn sync(&self) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(|e| LogError::io(&self.log_path, e))
    }

    /// Seals the segment: fsyncs the data and writes the index files.
    pub fn seal(&self, dir: &Path) -> Result<(), LogError> {
        self.sync()?;
        let (_, index_path, time_path) = segment_paths(dir, self.base_offset);
        write_index_file(&index_path, &self.index.to_bytes())
            .map_err(|e| LogError::io(&index_path, e))?;
        write_index_file(&time_path, &self.time_index.to_bytes())
            .map_err(|e| LogError::io(&time_path, e))?;
        Ok(())
    }

    /// Deletes the segment's files.
    pub fn delete_files(&self, dir: &Path) -> Result<(), LogError> {
        let (log, index, time) = segment_paths(dir, self.base_offset);
        for p in [log, index, time] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(&p, e)),
            }
        }
        Ok(())
    }

    /// Byte position to start reading for `offset` (a batch at or before it).
    pub fn position_for_offset(&self, offset: i64) -> u64 {
        let rel = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        u64::from(self.index.lookup(rel))
    }

    /// Byte position to start scanning for timestamp `ts`.
    pub fn position_for_timestamp(&self, ts: i64) -> u64 {
        u64::from(self.time_index.lookup(ts))
    }

    /// Base offset.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    /// Offset after the last batch.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    /// Bytes of data.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Largest record timestamp, -1 when empty.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    /// Creation time in wall-clock ms.
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }
    /// True when no batch was written.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    /// The offset and time index in file format (for upload).
    pub fn index_bytes(&self) -> (Vec<u8>, Vec<u8>) {
        (self.index.to_bytes(), self.time_index.to_bytes())
    }

    /// The segment's file handle.
    pub fn file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// A read of the segment from byte `start`, to run outside the lock.
    pub fn read_plan(&self, start: u64) -> ReadPlan {
        ReadPlan {
            file: self.file(),
            path: Arc::clone(&self.log_path),
            start,
            start_offset: None,
            end: self.size,
        }
    }

    /// A read for `offset`, from the index entry at or before it (whose
    /// offset the reader then checks the batches against).
    pub fn read_plan_for(&self, offset: i64) -> ReadPlan {
        let rel = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let (rel_offset, position) = self.index.lookup_entry(rel);
        ReadPlan {
            start_offset: Some(self.base_offset + i64::from(rel_offset)),
            ..self.read_plan(u64::from(position))
        }
    }
}

/// What opening a segment found.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryOutcome {
    /// Bytes cut off a torn tail (never acknowledged data).
    pub truncated_bytes: u64,
    /// Whether the data was scanned (versus trusting index files).
    pub scanned: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidelog_proto::batch::{stamp_batch, validate_batch, BatchBuilder, Compression};

    fn batch(base: i64, n: u32, ts: i64) -> (Vec<u8>, BatchHeader) {
        let mut b = BatchBuilder::new(Compression::None, ts);
        for i in 0..n {
            b.push(ts + i64::from(i), None, Some(&[7u8; 100]), &[]);
        }
        let mut raw = b.finish(-1, -1, -1).to_vec();
        stamp_batch(&mut raw, base, 0);
        let h = validate_batch(&raw).expect("valid");
        (raw, h)
    }

    const SEALED: OpenMode = OpenMode {
        active: false,
        known_end: None,
    };

    #[test]
    fn sealed_segment_reopens_from_indexes_and_rebuilds_damaged_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(dir.path(), 0, 256, 0).expect("create");
        let mut next = 0;
        for i in 0..20 {
            let (raw, h) = batch(next, 2, 1000 + i);
            seg.append(&raw, &h).expect("append");
            next = h.next_offset();
        }
        seg.seal(dir.path()).expect("seal");
        let pos_for_30 = seg.position_for_offset(30);
        assert!(pos_for_30 > 0);
        drop(seg);
        let (seg, out) = Segment::open(dir.path(), 0, 256, SEALED, &mut |_| {}).expect("open");
        assert!(!out.scanned);
        assert_eq!(seg.next_offset(), 40);
        assert_eq!(seg.max_timestamp(), 1020);
        assert_eq!(seg.position_for_offset(30), pos_for_30);
        drop(seg);
        let (_, index, _) = segment_paths(dir.path(), 0);
        std::fs::write(&index, b"garbage").expect("damage");
        let (seg, out) = Segment::open(dir.path(), 0, 256, SEALED, &mut |_| {}).expect("open");
        assert!(out.scanned, "damaged index must force a rebuild");
        assert_eq!(seg.next_offset(), 40);
        assert_eq!(seg.position_for_offset(30), pos_for_30);
    }
}
