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

/// Bytes read at a time while scanning a segment.
const SCAN_CHUNK: usize = 1 << 20;

/// A segment file and its in-memory state.
#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    next_offset: i64,
    size: u64,
    max_timestamp: i64,
    /// Wall-clock ms when the segment was created; drives `segment.ms`.
    created_ms: i64,
    file: Arc<File>,
    log_path: Arc<Path>,
    index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index: u64,
    index_interval: u64,
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
        })
    }

    /// Opens an existing segment. A sealed segment with valid index files is
    /// opened without reading its data; otherwise (`scan_all`, or missing or
    /// damaged indexes) every batch is read, checked by CRC, and the file is
    /// truncated after the last valid batch. `on_batch` sees each valid batch
    /// of a scan.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval: u64,
        scan_all: bool,
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
        };
        if !scan_all {
            if let Some(outcome) = seg.try_load_indexes(&index_path, &time_path)? {
                return Ok((seg, outcome));
            }
        }
        let outcome = seg.scan_and_truncate(on_batch)?;
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

    fn read_header_at(&self, pos: u64) -> Result<BatchHeader, LogError> {
        let mut buf = [0u8; HEADER_LEN];
        self.file
            .read_exact_at(&mut buf, pos)
            .map_err(|e| LogError::io(&self.log_path, e))?;
        BatchHeader::parse(&buf).map_err(LogError::Corrupt)
    }

    /// Reads every batch, verifies it and rebuilds the indexes; truncates
    /// the file after the last valid batch.
    fn scan_and_truncate(
        &mut self,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> Result<RecoveryOutcome, LogError> {
        let file_len = self.size;
        self.index = OffsetIndex::default();
        self.time_index = TimeIndex::default();
        self.bytes_since_index = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        let mut pos: u64 = 0;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            if pos + HEADER_LEN as u64 > file_len {
                break;
            }
            let mut hb = [0u8; HEADER_LEN];
            if self.file.read_exact_at(&mut hb, pos).is_err() {
                break;
            }
            let Ok(h) = BatchHeader::parse(&hb) else {
                break;
            };
            let total = h.total_len() as u64;
            // A length running past the file is a torn write: stop there.
            if pos + total > file_len || h.base_offset != self.next_offset {
                break;
            }
            buf.resize(total as usize, 0);
            if self.file.read_exact_at(&mut buf, pos).is_err() {
                break;
            }
            if h.verify_crc(&buf).is_err() {
                break;
            }
            self.size = pos;
            self.note_appended(&h);
            on_batch(&h);
            pos += total;
            if buf.capacity() > SCAN_CHUNK * 4 {
                buf = Vec::new();
            }
        }
        let truncated = file_len - pos;
        if truncated > 0 {
            self.file
                .set_len(pos)
                .map_err(|e| LogError::io(&self.log_path, e))?;
            self.file
                .sync_all()
                .map_err(|e| LogError::io(&self.log_path, e))?;
        }
        self.size = pos;
        Ok(RecoveryOutcome {
            truncated_bytes: truncated,
            scanned: true,
        })
    }

    /// Updates indexes and counters for a batch written at `self.size`;
    /// advances `size` past it.
    fn note_appended(&mut self, h: &BatchHeader) {
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
            end: self.size,
        }
    }
}

/// What opening a segment found.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryOutcome {
    /// Bytes cut off a torn or corrupt tail.
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

    #[test]
    fn torn_tail_is_truncated_and_valid_batches_survive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(dir.path(), 0, 256, 0).expect("create");
        let mut next = 0;
        let mut sizes = vec![];
        for i in 0..10 {
            let (raw, h) = batch(next, 3, 1000 + i);
            seg.append(&raw, &h).expect("append");
            next = h.next_offset();
            sizes.push(seg.size());
        }
        let full = seg.size();
        drop(seg);
        // Tear the last batch in half.
        let (log, _, _) = segment_paths(dir.path(), 0);
        let f = OpenOptions::new().write(true).open(&log).expect("open");
        f.set_len(full - 20).expect("truncate");
        drop(f);
        let mut seen = 0;
        let (seg, out) = Segment::open(dir.path(), 0, 256, true, &mut |_| seen += 1).expect("open");
        assert_eq!(seen, 9);
        assert_eq!(seg.next_offset(), 27);
        assert_eq!(seg.size(), sizes[8]);
        assert_eq!(out.truncated_bytes, full - 20 - sizes[8]);
    }

    #[test]
    fn corrupt_byte_in_middle_truncates_from_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(dir.path(), 100, 256, 0).expect("create");
        let mut next = 100;
        let mut ends = vec![];
        for i in 0..5 {
            let (raw, h) = batch(next, 2, 1000 + i);
            seg.append(&raw, &h).expect("append");
            next = h.next_offset();
            ends.push(seg.size());
        }
        drop(seg);
        let (log, _, _) = segment_paths(dir.path(), 100);
        let f = OpenOptions::new().write(true).open(&log).expect("open");
        f.write_all_at(&[0xff], ends[2] + 70).expect("corrupt");
        drop(f);
        let (seg, _) = Segment::open(dir.path(), 100, 256, true, &mut |_| {}).expect("open");
        assert_eq!(seg.next_offset(), 106);
        assert_eq!(seg.size(), ends[2]);
    }

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
        let (seg, out) = Segment::open(dir.path(), 0, 256, false, &mut |_| {}).expect("open");
        assert!(!out.scanned);
        assert_eq!(seg.next_offset(), 40);
        assert_eq!(seg.max_timestamp(), 1020);
        assert_eq!(seg.position_for_offset(30), pos_for_30);
        drop(seg);
        let (_, index, _) = segment_paths(dir.path(), 0);
        std::fs::write(&index, b"garbage").expect("damage");
        let (seg, out) = Segment::open(dir.path(), 0, 256, false, &mut |_| {}).expect("open");
        assert!(out.scanned, "damaged index must force a rebuild");
        assert_eq!(seg.next_offset(), 40);
        assert_eq!(seg.position_for_offset(30), pos_for_30);
    }
}
