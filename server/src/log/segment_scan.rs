//! The recovery scan of one segment: read every batch, check it, rebuild
//! the indexes, and decide what bad bytes mean.
//!
//! **Only a torn tail is ever cut off.** Bytes that fail a check are one of
//! two things. Either a write that a crash interrupted — then they sit at
//! the end of the active segment, past every intact batch and past the
//! recovery point (the highest offset ever fsynced), and nobody was told
//! they were stored: truncating them loses nothing acknowledged. Or damage
//! to data that was fsynced and acknowledged — a flipped byte, a cut file.
//! Damage is never truncated: the scan looks for the next intact batch
//! past it (magic byte, sane header, valid CRC, a later base offset),
//! records the offsets in between as damaged, and goes on from there. Reads
//! of a damaged range are `DATA_LOSS` naming it (or are served from the
//! bucket, which may hold an intact copy); the bytes stay for an operator
//! to inspect, and the log end never moves back, so offsets are never
//! handed out twice.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use tidelog_proto::batch::{BatchHeader, HEADER_LEN, MAGIC_V1};

use super::error::LogError;
use super::index::{OffsetIndex, TimeIndex};
use super::segment::{OffsetRange, OpenMode, RecoveryOutcome, Segment};

/// Bytes read at a time while looking for the next intact batch.
const RESYNC_WINDOW: usize = 1 << 20;

/// A batch found intact at a position.
struct Found {
    header: BatchHeader,
    position: u64,
}

/// What a walk over a segment's bytes found.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    /// The offset after the last batch (or after damage reported up to
    /// the known end).
    pub next_offset: i64,
    /// Offsets whose bytes are damaged.
    pub damaged: Vec<OffsetRange>,
    /// Where a torn tail starts (active segment only): bytes past every
    /// intact batch and past the known end.
    pub torn_at: Option<u64>,
    /// Intact batches seen.
    pub batches: u64,
}

/// Walks the batches of a segment file (`file_len` bytes, first offset
/// `base`) read-only, calling `on_batch(header, position, after_damage)`
/// for each intact batch in order. See the module comment for what bad
/// bytes mean.
pub fn walk(
    file: &File,
    path: &Path,
    base: i64,
    file_len: u64,
    mode: OpenMode,
    on_batch: &mut dyn FnMut(&BatchHeader, u64, bool),
) -> Result<Walk, LogError> {
    let mut out = Walk {
        next_offset: base,
        ..Walk::default()
    };
    let mut pos: u64 = 0;
    let mut buf: Vec<u8> = Vec::new();
    let mut after_damage = false;
    while pos < file_len {
        if let Some(h) = intact_batch_at(file, pos, file_len, Some(out.next_offset), &mut buf) {
            on_batch(&h, pos, after_damage);
            after_damage = false;
            out.batches += 1;
            out.next_offset = h.next_offset();
            pos += h.total_len() as u64;
            continue;
        }
        let damage_from = out.next_offset;
        // The recovery point may lag the active segment's end, so it
        // bounds the search only in a sealed segment.
        let before = mode.known_end.filter(|_| !mode.active);
        if let Some(found) = resync(file, path, pos + 1, file_len, damage_from, before)? {
            // Intact data follows: everything in between is damage.
            out.damaged.push(OffsetRange {
                from: damage_from,
                to: found.header.base_offset,
            });
            out.next_offset = found.header.base_offset;
            after_damage = true;
            pos = found.position;
            continue;
        }
        match mode.known_end.filter(|&end| end > damage_from) {
            // Offsets up to `end` were durable once: their bytes are
            // damaged, not torn. Keep them and report the range.
            Some(end) => {
                out.damaged.push(OffsetRange {
                    from: damage_from,
                    to: end,
                });
                out.next_offset = end;
            }
            None if mode.active => out.torn_at = Some(pos),
            // A sealed segment is immutable: trailing bytes that hold no
            // offsets are left as they are.
            None => {}
        }
        break;
    }
    Ok(out)
}

impl Segment {
    /// Reads every batch, verifies it and rebuilds the indexes; cuts only
    /// a torn tail (see the module comment).
    pub(super) fn scan(
        &mut self,
        mode: OpenMode,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> Result<RecoveryOutcome, LogError> {
        let file_len = self.size;
        self.index = OffsetIndex::default();
        self.time_index = TimeIndex::default();
        self.bytes_since_index = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.size = 0;
        let file = Arc::clone(&self.file);
        let path = Arc::clone(&self.log_path);
        let found = walk(
            &file,
            &path,
            self.base_offset,
            file_len,
            mode,
            &mut |h, pos, after_damage| {
                self.size = pos;
                if after_damage {
                    // Reads past the damage must start at an index entry past it.
                    self.bytes_since_index = self.index_interval;
                }
                self.note_appended(h);
                on_batch(h);
            },
        )?;
        self.damaged = found.damaged;
        self.next_offset = found.next_offset;
        let mut truncated = 0;
        match found.torn_at {
            Some(pos) => {
                truncated = file_len - pos;
                self.size = pos;
                self.file
                    .set_len(pos)
                    .map_err(|e| LogError::io(&self.log_path, e))?;
                self.file
                    .sync_all()
                    .map_err(|e| LogError::io(&self.log_path, e))?;
            }
            None => self.size = file_len,
        }
        Ok(RecoveryOutcome {
            truncated_bytes: truncated,
            scanned: true,
        })
    }
}

/// The batch at `pos` if it is whole, checks out by CRC and (when `expect`
/// is given) starts at that offset.
fn intact_batch_at(
    file: &File,
    pos: u64,
    file_len: u64,
    expect: Option<i64>,
    buf: &mut Vec<u8>,
) -> Option<BatchHeader> {
    if pos + HEADER_LEN as u64 > file_len {
        return None;
    }
    let mut hb = [0u8; HEADER_LEN];
    file.read_exact_at(&mut hb, pos).ok()?;
    let h = BatchHeader::parse(&hb).ok()?;
    let total = h.total_len() as u64;
    if pos + total > file_len || expect.is_some_and(|e| e != h.base_offset) {
        return None;
    }
    buf.resize(total as usize, 0);
    file.read_exact_at(buf, pos).ok()?;
    let ok = h.verify_crc(buf).is_ok();
    if buf.capacity() > RESYNC_WINDOW * 4 {
        *buf = Vec::new();
    }
    ok.then_some(h)
}

/// The first intact batch at or after byte `from` whose base offset lies
/// past `after` (and before `before`, when known). Reads the file in
/// windows and checks only positions whose magic byte fits.
fn resync(
    file: &File,
    path: &Path,
    from: u64,
    file_len: u64,
    after: i64,
    before: Option<i64>,
) -> Result<Option<Found>, LogError> {
    const OFF_MAGIC: usize = 16;
    let mut window = vec![0u8; RESYNC_WINDOW + HEADER_LEN];
    let mut batch = Vec::new();
    let mut start = from;
    while start + HEADER_LEN as u64 <= file_len {
        let len = (window.len() as u64).min(file_len - start) as usize;
        file.read_exact_at(&mut window[..len], start)
            .map_err(|e| LogError::io(path, e))?;
        let last = len.saturating_sub(HEADER_LEN);
        for i in 0..=last {
            if window[i + OFF_MAGIC] != MAGIC_V1 {
                continue;
            }
            let Ok(h) = BatchHeader::parse(&window[i..i + HEADER_LEN]) else {
                continue;
            };
            let plausible = h.base_offset > after
                && h.base_offset - after < i64::from(i32::MAX)
                && before.is_none_or(|b| h.base_offset < b);
            if !plausible {
                continue;
            }
            let position = start + i as u64;
            if intact_batch_at(file, position, file_len, None, &mut batch).is_some() {
                return Ok(Some(Found {
                    header: h,
                    position,
                }));
            }
        }
        start += last as u64 + 1;
    }
    Ok(None)
}

/// Finds where damage met by a read ends, outside the partition lock (the
/// search may read the rest of the segment).
#[derive(Debug)]
pub struct DamageProbe {
    pub(super) file: Arc<File>,
    pub(super) path: Arc<Path>,
    pub(super) size: u64,
    pub(super) next_offset: i64,
}

impl DamageProbe {
    /// Where damage at byte `position`, met by a read at `offset`, ends:
    /// the base offset and position of the next intact batch, else the
    /// segment's end (and no position).
    pub fn damage_end(&self, offset: i64, position: u64) -> Result<(i64, Option<u64>), LogError> {
        let found = resync(
            &self.file,
            &self.path,
            position + 1,
            self.size,
            offset,
            Some(self.next_offset),
        )?;
        Ok(found.map_or((self.next_offset, None), |f| {
            (f.header.base_offset, Some(f.position))
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use tidelog_proto::batch::{stamp_batch, validate_batch, BatchBuilder, Compression};

    use super::*;
    use crate::log::segment::segment_paths;

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

    /// A segment at `base` of `n` batches of `per` records; returns the
    /// byte position where each batch starts and the file's length.
    fn write_segment(dir: &std::path::Path, base: i64, n: usize, per: u32) -> (Vec<u64>, u64) {
        let mut seg = Segment::create(dir, base, 256, 0).expect("create");
        let mut next = base;
        let mut starts = vec![];
        for i in 0..n {
            starts.push(seg.size());
            let (raw, h) = batch(next, per, 1000 + i as i64);
            seg.append(&raw, &h).expect("append");
            next = h.next_offset();
        }
        let len = seg.size();
        (starts, len)
    }

    fn poke(dir: &std::path::Path, base: i64, at: u64, bytes: &[u8]) {
        let (log, _, _) = segment_paths(dir, base);
        let f = OpenOptions::new().write(true).open(&log).expect("open");
        f.write_all_at(bytes, at).expect("poke");
    }

    fn active(known_end: Option<i64>) -> OpenMode {
        OpenMode {
            active: true,
            known_end,
        }
    }

    #[test]
    fn a_torn_tail_is_cut_and_everything_before_it_survives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (starts, len) = write_segment(dir.path(), 0, 10, 3);
        let (log, _, _) = segment_paths(dir.path(), 0);
        let f = OpenOptions::new().write(true).open(&log).expect("open");
        f.set_len(len - 20).expect("tear");
        drop(f);
        let mut seen = 0;
        let (seg, out) =
            Segment::open(dir.path(), 0, 256, active(Some(27)), &mut |_| seen += 1).expect("open");
        assert_eq!((seen, seg.next_offset(), seg.size()), (9, 27, starts[9]));
        assert_eq!(out.truncated_bytes, len - 20 - starts[9]);
        assert!(seg.damaged().is_empty());
    }

    #[test]
    fn a_flipped_byte_mid_file_is_damage_and_later_batches_survive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (starts, len) = write_segment(dir.path(), 100, 5, 2);
        poke(dir.path(), 100, starts[2] + 70, &[0xff]);
        let (seg, out) =
            Segment::open(dir.path(), 100, 256, active(None), &mut |_| {}).expect("open");
        assert_eq!(out.truncated_bytes, 0, "acknowledged data is never cut");
        assert_eq!(seg.next_offset(), 110);
        assert_eq!(seg.size(), len);
        assert_eq!(seg.damaged(), &[OffsetRange { from: 104, to: 106 }]);
        // Reads past the damage start past it.
        assert_eq!(seg.position_for_offset(106), starts[3]);
    }

    #[test]
    fn a_flipped_length_or_base_offset_is_damage_of_exactly_that_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (starts, _) = write_segment(dir.path(), 0, 6, 4);
        // The length field of batch 1 (bytes 8..12) and the base offset of
        // batch 3 (bytes 0..8, which the CRC does not cover).
        poke(dir.path(), 0, starts[1] + 9, &[0x7f]);
        poke(dir.path(), 0, starts[3] + 2, &[0x10]);
        let (seg, _) = Segment::open(dir.path(), 0, 256, active(None), &mut |_| {}).expect("open");
        assert_eq!(seg.next_offset(), 24);
        assert_eq!(
            seg.damaged(),
            &[
                OffsetRange { from: 4, to: 8 },
                OffsetRange { from: 12, to: 16 }
            ]
        );
    }

    #[test]
    fn damage_in_the_last_batch_below_the_recovery_point_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (starts, len) = write_segment(dir.path(), 0, 4, 5);
        poke(dir.path(), 0, starts[3] + 2, &[0x55; 8]);
        // The recovery point says offset 20 was durable: not a torn tail.
        let (seg, out) =
            Segment::open(dir.path(), 0, 256, active(Some(20)), &mut |_| {}).expect("open");
        assert_eq!((out.truncated_bytes, seg.size()), (0, len));
        assert_eq!(seg.next_offset(), 20);
        assert_eq!(seg.damaged(), &[OffsetRange { from: 15, to: 20 }]);
    }

    #[test]
    fn a_sealed_segment_is_never_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (starts, len) = write_segment(dir.path(), 0, 4, 5);
        // Damage the last batch; the next segment starts at 20.
        poke(dir.path(), 0, starts[3] + 9, &[0x7f]);
        let sealed = OpenMode {
            active: false,
            known_end: Some(20),
        };
        let (seg, out) = Segment::open(dir.path(), 0, 256, sealed, &mut |_| {}).expect("open");
        assert_eq!((out.truncated_bytes, seg.size()), (0, len));
        assert_eq!(seg.damaged(), &[OffsetRange { from: 15, to: 20 }]);
        let (log, _, _) = segment_paths(dir.path(), 0);
        assert_eq!(std::fs::metadata(log).expect("stat").len(), len);
    }
}
