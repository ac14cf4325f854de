//! Sparse per-segment indexes, kept in memory and mirrored to files.
//!
//! * Offset index (`.index`): entries of (offset relative to the segment base
//!   u32, byte position u32), 8 bytes each, one every `index_interval` bytes
//!   of log. Lookup gives the position of a batch at or before an offset.
//! * Time index (`.timeindex`): entries of (running max timestamp i64,
//!   relative offset u32, position u32), 16 bytes each, added when the
//!   running max grows. Lookup gives a position from which the first batch
//!   with `max_timestamp >= T` can be found by scanning forward.
//!
//! Index files are hints: they are fsynced when a segment seals and are
//! validated on load; any doubt and they are rebuilt from the log.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// One offset-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Offset relative to the segment base.
    pub rel_offset: u32,
    /// Byte position of the batch that starts at that offset.
    pub position: u32,
}

/// One time-index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp of all batches up to and including this one.
    pub max_timestamp: i64,
    /// Relative offset of the batch that raised the maximum.
    pub rel_offset: u32,
    /// Byte position of that batch.
    pub position: u32,
}

/// In-memory sparse offset index.
#[derive(Debug, Default, Clone)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    /// Adds an entry; entries must grow in both fields.
    pub fn push(&mut self, e: OffsetEntry) {
        self.entries.push(e);
    }

    /// Position of the last indexed batch at or before `rel_offset`
    /// (0 when none is).
    pub fn lookup(&self, rel_offset: u32) -> u32 {
        let i = self.entries.partition_point(|e| e.rel_offset <= rel_offset);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].position
        }
    }

    /// The last indexed batch at or before `rel_offset`: its relative
    /// offset and position (`(0, 0)`, the segment's start, when none is).
    pub fn lookup_entry(&self, rel_offset: u32) -> (u32, u32) {
        let i = self.entries.partition_point(|e| e.rel_offset <= rel_offset);
        match i {
            0 => (0, 0),
            _ => (self.entries[i - 1].rel_offset, self.entries[i - 1].position),
        }
    }

    /// Entries as `(rel_offset, position)`.
    pub fn entries(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.entries.iter().map(|e| (e.rel_offset, e.position))
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an entry where it belongs in order (an entry past damage a
    /// read found, so later reads start beyond it).
    pub fn insert(&mut self, e: OffsetEntry) {
        let i = self
            .entries
            .partition_point(|x| x.rel_offset < e.rel_offset);
        if self
            .entries
            .get(i)
            .is_some_and(|x| x.rel_offset == e.rel_offset)
        {
            return;
        }
        self.entries.insert(i, e);
    }

    /// Serialises the entries in file format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 8);
        for e in &self.entries {
            out.extend_from_slice(&e.rel_offset.to_le_bytes());
            out.extend_from_slice(&e.position.to_le_bytes());
        }
        out
    }

    /// Parses an index file, returning `None` unless every entry is
    /// plausible: whole entries, strictly increasing, within the segment.
    pub fn from_bytes(buf: &[u8], segment_size: u64, max_rel_offset: u32) -> Option<Self> {
        if !buf.len().is_multiple_of(8) {
            return None;
        }
        let mut entries = Vec::with_capacity(buf.len() / 8);
        for c in buf.chunks_exact(8) {
            let rel_offset = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let position = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            if u64::from(position) >= segment_size.max(1) || rel_offset > max_rel_offset {
                return None;
            }
            if let Some(prev) = entries.last() {
                let prev: &OffsetEntry = prev;
                if rel_offset <= prev.rel_offset || position <= prev.position {
                    return None;
                }
            }
            entries.push(OffsetEntry {
                rel_offset,
                position,
            });
        }
        Some(OffsetIndex { entries })
    }
}

/// In-memory sparse time index.
#[derive(Debug, Default, Clone)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Adds an entry; `max_timestamp` must grow.
    pub fn push(&mut self, e: TimeEntry) {
        self.entries.push(e);
    }

    /// A position from which scanning finds the first batch whose
    /// `max_timestamp >= ts`: the position of the last entry whose running
    /// maximum is still below `ts` (every batch before it is older).
    pub fn lookup(&self, ts: i64) -> u32 {
        let i = self.entries.partition_point(|e| e.max_timestamp < ts);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].position
        }
    }

    /// Largest timestamp recorded, if any.
    pub fn last_max(&self) -> Option<i64> {
        self.entries.last().map(|e| e.max_timestamp)
    }

    /// Serialises the entries in file format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 16);
        for e in &self.entries {
            out.extend_from_slice(&e.max_timestamp.to_le_bytes());
            out.extend_from_slice(&e.rel_offset.to_le_bytes());
            out.extend_from_slice(&e.position.to_le_bytes());
        }
        out
    }

    /// Parses a time-index file, `None` unless every entry is plausible.
    pub fn from_bytes(buf: &[u8], segment_size: u64, max_rel_offset: u32) -> Option<Self> {
        if !buf.len().is_multiple_of(16) {
            return None;
        }
        let mut entries: Vec<TimeEntry> = Vec::with_capacity(buf.len() / 16);
        for c in buf.chunks_exact(16) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&c[..8]);
            let e = TimeEntry {
                max_timestamp: i64::from_le_bytes(ts),
                rel_offset: u32::from_le_bytes([c[8], c[9], c[10], c[11]]),
                position: u32::from_le_bytes([c[12], c[13], c[14], c[15]]),
            };
            if u64::from(e.position) >= segment_size.max(1) || e.rel_offset > max_rel_offset {
                return None;
            }
            if let Some(prev) = entries.last() {
                if e.max_timestamp <= prev.max_timestamp || e.position <= prev.position {
                    return None;
                }
            }
            entries.push(e);
        }
        Some(TimeIndex { entries })
    }
}

/// Writes `bytes` to `path` atomically enough for a hint file: write, fsync.
pub fn write_index_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// An index file format, for loaders that handle both kinds alike.
pub trait IndexFile: Sized {
    /// What the file is, for error messages.
    const KIND: &'static str;
    /// Parses and validates the file (see the types' `from_bytes`).
    fn parse(buf: &[u8], segment_size: u64, max_rel_offset: u32) -> Option<Self>;
}

impl IndexFile for OffsetIndex {
    const KIND: &'static str = "offset index";
    fn parse(buf: &[u8], segment_size: u64, max_rel_offset: u32) -> Option<Self> {
        Self::from_bytes(buf, segment_size, max_rel_offset)
    }
}

impl IndexFile for TimeIndex {
    const KIND: &'static str = "time index";
    fn parse(buf: &[u8], segment_size: u64, max_rel_offset: u32) -> Option<Self> {
        Self::from_bytes(buf, segment_size, max_rel_offset)
    }
}

/// Reads and validates a sealed segment's index file; `None` when it is
/// missing or does not validate (the caller rebuilds it from the log).
pub fn load_index_file<I: IndexFile>(path: &Path, segment_size: u64) -> Option<I> {
    let bytes = std::fs::read(path).ok()?;
    I::parse(&bytes, segment_size, u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let mut idx = OffsetIndex::default();
        idx.push(OffsetEntry {
            rel_offset: 10,
            position: 4096,
        });
        idx.push(OffsetEntry {
            rel_offset: 20,
            position: 8192,
        });
        assert_eq!(idx.lookup(0), 0);
        assert_eq!(idx.lookup(9), 0);
        assert_eq!(idx.lookup(10), 4096);
        assert_eq!(idx.lookup(19), 4096);
        assert_eq!(idx.lookup(1000), 8192);
        let round = OffsetIndex::from_bytes(&idx.to_bytes(), 10_000, 30).expect("valid");
        assert_eq!(round.lookup(25), 8192);
    }

    #[test]
    fn damaged_index_files_are_refused() {
        let mut idx = OffsetIndex::default();
        idx.push(OffsetEntry {
            rel_offset: 10,
            position: 4096,
        });
        idx.push(OffsetEntry {
            rel_offset: 20,
            position: 8192,
        });
        let bytes = idx.to_bytes();
        assert!(
            OffsetIndex::from_bytes(&bytes[..12], 10_000, 30).is_none(),
            "partial entry"
        );
        assert!(
            OffsetIndex::from_bytes(&bytes, 5_000, 30).is_none(),
            "position past end"
        );
        assert!(
            OffsetIndex::from_bytes(&bytes, 10_000, 15).is_none(),
            "offset past end"
        );
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert!(
            OffsetIndex::from_bytes(&swapped, 10_000, 30).is_none(),
            "not increasing"
        );
    }

    #[test]
    fn time_lookup_starts_before_first_newer_batch() {
        let mut t = TimeIndex::default();
        t.push(TimeEntry {
            max_timestamp: 100,
            rel_offset: 0,
            position: 0,
        });
        t.push(TimeEntry {
            max_timestamp: 200,
            rel_offset: 5,
            position: 500,
        });
        t.push(TimeEntry {
            max_timestamp: 300,
            rel_offset: 9,
            position: 900,
        });
        assert_eq!(t.lookup(50), 0);
        assert_eq!(t.lookup(150), 0);
        assert_eq!(t.lookup(250), 500);
        assert_eq!(t.lookup(301), 900);
        let round = TimeIndex::from_bytes(&t.to_bytes(), 1000, 9).expect("valid");
        assert_eq!(round.lookup(250), 500);
        assert!(TimeIndex::from_bytes(&t.to_bytes(), 800, 9).is_none());
    }
}
