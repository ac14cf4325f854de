//! A read-only check of a partition's files: every batch read and
//! CRC-checked, the indexes compared with the batches, gaps between
//! segments and the recovery point verified. `tidelog check` runs it on a
//! stopped broker's data directory; the broker's scrub runs the same walk
//! over sealed segments while it serves.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::error::LogError;
use super::index::{load_index_file, OffsetIndex, TimeIndex};
use super::recovery_point;
use super::segment::{segment_paths, OffsetRange, OpenMode};
use super::segment_scan::walk;

/// Something wrong in a partition's files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// Offsets whose bytes fail their check (kept; reads are DATA_LOSS or
    /// served from the bucket).
    Damaged {
        /// Segment base offset.
        segment: i64,
        /// First damaged offset.
        from: i64,
        /// Offset after the damage.
        to: i64,
    },
    /// Offsets between two segments that no file holds.
    Gap {
        /// First missing offset.
        from: i64,
        /// Next offset held.
        to: i64,
    },
    /// Bytes after the last intact batch of the active segment, past the
    /// recovery point: an interrupted write, cut at the next start.
    TornTail {
        /// Segment base offset.
        segment: i64,
        /// Bytes that will be cut.
        bytes: u64,
    },
    /// The log ends below its recovery point: segment data is missing.
    BelowRecoveryPoint {
        /// Where the log ends.
        end: i64,
        /// The recovery point.
        recovery_point: i64,
    },
    /// A sealed segment's index file is missing or does not match its
    /// batches (rebuilt from the data at the next start; no data lost).
    Index {
        /// Segment base offset.
        segment: i64,
        /// What is wrong.
        detail: String,
    },
}

impl Problem {
    /// True when records cannot be read (an index problem loses nothing).
    pub fn loses_data(&self) -> bool {
        !matches!(self, Problem::Index { .. } | Problem::TornTail { .. })
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Damaged { segment, from, to } => write!(
                f,
                "offsets {from}..{to} damaged in segment {segment} (reads are DATA_LOSS unless the bucket holds them)"
            ),
            Problem::Gap { from, to } => write!(f, "offsets {from}..{to} missing between segments"),
            Problem::TornTail { segment, bytes } => write!(
                f,
                "torn tail of {bytes} bytes in segment {segment} (never acknowledged; cut at the next start)"
            ),
            Problem::BelowRecoveryPoint {
                end,
                recovery_point,
            } => write!(
                f,
                "log ends at {end} below its recovery point {recovery_point}: segment data is missing (the broker will not start without --accept-data-loss)"
            ),
            Problem::Index { segment, detail } => write!(
                f,
                "index of segment {segment}: {detail} (rebuilt at the next start; no data lost)"
            ),
        }
    }
}

/// The result of checking one partition directory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionCheck {
    /// The partition directory.
    pub dir: PathBuf,
    /// Segment files.
    pub segments: usize,
    /// Intact batches.
    pub batches: u64,
    /// Bytes read.
    pub bytes: u64,
    /// First offset.
    pub start: i64,
    /// Offset after the last.
    pub end: i64,
    /// The recovery point, if recorded.
    pub recovery_point: Option<i64>,
    /// What is wrong; empty when all is well.
    pub problems: Vec<Problem>,
}

/// Checks every segment of a partition directory, changing nothing.
pub fn check_partition(dir: &Path) -> Result<PartitionCheck, LogError> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let name = entry.file_name();
        if let Some(base) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .filter(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<i64>().ok())
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    let recovery_point = recovery_point::read(dir);
    let mut out = PartitionCheck {
        dir: dir.to_path_buf(),
        segments: bases.len(),
        batches: 0,
        bytes: 0,
        start: bases.first().copied().unwrap_or(0),
        end: bases.first().copied().unwrap_or(0),
        recovery_point,
        problems: vec![],
    };
    let mut expected: Option<i64> = None;
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        let active = next_base.is_none();
        if let Some(e) = expected.filter(|&e| e < base) {
            out.problems.push(Problem::Gap { from: e, to: base });
        }
        let (log_path, index_path, time_path) = segment_paths(dir, base);
        let file = File::open(&log_path).map_err(|e| LogError::io(&log_path, e))?;
        let len = file
            .metadata()
            .map_err(|e| LogError::io(&log_path, e))?
            .len();
        let mode = OpenMode {
            active,
            known_end: if active { recovery_point } else { next_base },
        };
        let mut starts: HashMap<u64, i64> = HashMap::new();
        let found = walk(&file, &log_path, base, len, mode, &mut |h, pos, _| {
            starts.insert(pos, h.base_offset);
        })?;
        out.batches += found.batches;
        out.bytes += len;
        for r in &found.damaged {
            out.problems.push(Problem::Damaged {
                segment: base,
                from: r.from,
                to: r.to,
            });
        }
        if let Some(at) = found.torn_at {
            out.problems.push(Problem::TornTail {
                segment: base,
                bytes: len - at,
            });
        }
        if !active {
            if let Some(detail) =
                index_problem(&index_path, &time_path, len, base, &starts, &found.damaged)
            {
                out.problems.push(Problem::Index {
                    segment: base,
                    detail,
                });
            }
        }
        expected = Some(found.next_offset);
        out.end = found.next_offset;
    }
    if let Some(rp) = recovery_point.filter(|&rp| rp > out.end) {
        out.problems.push(Problem::BelowRecoveryPoint {
            end: out.end,
            recovery_point: rp,
        });
    }
    Ok(out)
}

/// Why a sealed segment's index files do not match its batches, if they
/// do not: every offset-index entry must name the start of an intact batch
/// at that offset.
fn index_problem(
    index_path: &Path,
    time_path: &Path,
    len: u64,
    base: i64,
    starts: &HashMap<u64, i64>,
    damaged: &[OffsetRange],
) -> Option<String> {
    let Some(index) = load_index_file::<OffsetIndex>(index_path, len) else {
        return Some("offset index missing or unreadable".into());
    };
    if load_index_file::<TimeIndex>(time_path, len).is_none() {
        return Some("time index missing or unreadable".into());
    }
    for (rel, position) in index.entries() {
        let offset = base + i64::from(rel);
        let in_damage = damaged.iter().any(|r| r.from <= offset && offset < r.to);
        if !in_damage && starts.get(&u64::from(position)) != Some(&offset) {
            return Some(format!(
                "entry for offset {offset} points at byte {position}, where no batch at that offset starts"
            ));
        }
    }
    None
}
