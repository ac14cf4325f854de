//! Reading whole batches out of a segment, wherever its bytes are: a local
//! file ([`ReadPlan`]) or an object in the bucket (tiering implements
//! [`SegmentBytes`] over its chunk cache). The rules live here once:
//! header-hop from an index position to the batch holding the offset, one
//! read of up to `max_bytes`, a cut after the last whole visible batch.
//!
//! **CRC policy.** Every batch served is CRC32C-checked, from disk or from
//! the bucket: stored bytes can rot after the produce-time check, and a
//! consumer must get an error, never garbage. The check runs over bytes
//! already in memory (hardware CRC32C), a small cost next to the read.
//!
//! **Blocking policy.** Local reads are positioned reads (`pread`) of a
//! bounded range — one header, one batch, or at most `max_bytes` — almost
//! always from the page cache, so they run inline on the runtime thread: a
//! `spawn_blocking` hand-off per read costs more than the read itself and
//! would cut fetch throughput. Scans that may visit many batches (timestamp
//! lookups) yield to the runtime after each batch instead, so no read holds
//! a worker for long. Remote reads are network I/O and simply await.

use std::fs::File;
use std::future::Future;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tidelog_proto::batch::{decode_records, BatchHeader, HEADER_LEN};

use super::error::LogError;

/// Stored data that fails a check: damaged on disk or in the bucket, never
/// a client's fault.
#[derive(Debug, Clone)]
pub struct DamagedBatch {
    /// Byte position of the damaged batch in its segment.
    pub position: u64,
    /// The offset the batch should start at, when known (from the index
    /// entry or the batch before it, else its own header).
    pub offset: Option<i64>,
    /// What is wrong.
    pub detail: String,
}

impl std::fmt::Display for DamagedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the batch at byte {}", self.position)?;
        if let Some(o) = self.offset {
            write!(f, " (offset {o})")?;
        }
        write!(f, " is damaged: {}", self.detail)
    }
}

impl std::error::Error for DamagedBatch {}

/// The bytes of one segment, read by position.
pub trait SegmentBytes: Sync {
    /// Error of a read.
    type Error: Send;
    /// Bytes in the segment.
    fn size(&self) -> u64;
    /// `len` bytes at `pos`; callers keep `pos + len <= size()`.
    fn read_at(
        &self,
        pos: u64,
        len: u64,
    ) -> impl Future<Output = Result<Bytes, Self::Error>> + Send;
    /// The error for damaged stored data.
    fn damaged(&self, batch: DamagedBatch) -> Self::Error;
    /// Told where the main read of a fetch ended (remote read-ahead).
    fn read_ahead(&self, _end: u64) {}
}

/// Batches read by [`read_batches`].
#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    /// Whole batches, concatenated.
    pub bytes: Bytes,
    /// Records in those batches.
    pub records: u64,
    /// Offset after the last record read (0 when nothing was read).
    pub next_offset: i64,
}

fn parse_header<S: SegmentBytes>(
    seg: &S,
    bytes: &[u8],
    position: u64,
    expect: Option<i64>,
) -> Result<BatchHeader, S::Error> {
    BatchHeader::parse(bytes).map_err(|e| {
        seg.damaged(DamagedBatch {
            position,
            offset: expect,
            detail: e.to_string(),
        })
    })
}

/// A batch at `pos` that does not start where the previous one ended.
fn discontinuity<S: SegmentBytes>(seg: &S, pos: u64, expected: i64, h: &BatchHeader) -> S::Error {
    seg.damaged(DamagedBatch {
        position: pos,
        offset: Some(expected),
        detail: format!(
            "the batch there claims base offset {} where offset {expected} was expected (a damaged header or missing data)",
            h.base_offset
        ),
    })
}

/// Checks that the batch `h` at `pos`, `len` bytes read from there, lies in
/// the segment.
fn check_within<S: SegmentBytes>(
    seg: &S,
    h: &BatchHeader,
    pos: u64,
    len: u64,
) -> Result<(), S::Error> {
    if pos + len > seg.size() {
        return Err(seg.damaged(DamagedBatch {
            position: pos,
            offset: Some(h.base_offset),
            detail: format!(
                "a batch of {len} bytes runs past the segment's end at byte {}",
                seg.size()
            ),
        }));
    }
    Ok(())
}

/// Reads whole batches from byte `start` (an index position at or before
/// `offset`, holding the batch at `start_offset` when known): skips batches that end before `offset`, stops before batches
/// at or past `visible_end`, and returns at least one batch (if any) and
/// otherwise at most about `max_bytes`. Every batch is CRC-checked.
pub async fn read_batches<S: SegmentBytes>(
    seg: &S,
    start: u64,
    start_offset: Option<i64>,
    offset: i64,
    visible_end: i64,
    max_bytes: usize,
) -> Result<ReadOutcome, S::Error> {
    // Skip batches before `offset` header by header; the sparse index puts
    // us at most one index interval away.
    let mut pos = start;
    let mut expect = start_offset;
    let first = loop {
        if pos + HEADER_LEN as u64 > seg.size() {
            return Ok(ReadOutcome::default());
        }
        let hb = seg.read_at(pos, HEADER_LEN as u64).await?;
        let h = parse_header(seg, &hb, pos, expect)?;
        // The index puts us at a batch at or before `offset`, and batches
        // follow each other without gaps: anything else is a damaged base
        // offset (outside the CRC) or missing data, never a batch to serve.
        match expect {
            Some(e) if h.base_offset != e => return Err(discontinuity(seg, pos, e, &h)),
            None if h.base_offset > offset => return Err(discontinuity(seg, pos, offset, &h)),
            _ => {}
        }
        if h.next_offset() > offset {
            break h;
        }
        expect = Some(h.next_offset());
        pos += h.total_len() as u64;
    };
    if first.base_offset >= visible_end {
        return Ok(ReadOutcome::default());
    }
    // One read covering the first batch whole and up to max_bytes in all,
    // then cut after the last whole visible batch.
    let want = (first.total_len() as u64).max((max_bytes as u64).min(seg.size() - pos));
    check_within(seg, &first, pos, want)?;
    let buf = seg.read_at(pos, want).await?;
    seg.read_ahead(pos + want);
    let mut cut = 0usize;
    let mut records = 0u64;
    let mut next_offset = first.base_offset;
    // Damage stops the read there: the good batches before it are served,
    // and only a read that starts at the damaged batch reports it.
    while buf.len() - cut >= HEADER_LEN {
        let at = pos + cut as u64;
        let h = match parse_header(seg, &buf[cut..], at, Some(next_offset)) {
            Ok(h) => h,
            Err(_) if cut > 0 => break,
            Err(e) => return Err(e),
        };
        if h.base_offset >= visible_end || cut + h.total_len() > buf.len() {
            break;
        }
        if cut > 0 && h.base_offset != next_offset {
            break;
        }
        if let Err(e) = h.verify_crc(&buf[cut..cut + h.total_len()]) {
            if cut > 0 {
                break;
            }
            return Err(seg.damaged(DamagedBatch {
                position: at,
                offset: Some(h.base_offset),
                detail: format!(
                    "{e}; it holds offsets {}..{}, read from offset {} to go past it",
                    h.base_offset,
                    h.next_offset(),
                    h.next_offset()
                ),
            }));
        }
        cut += h.total_len();
        records += u64::from(h.record_count);
        next_offset = h.next_offset();
    }
    Ok(ReadOutcome {
        bytes: buf.slice(..cut),
        records,
        next_offset,
    })
}

/// Scans from byte `start` (a time-index position) for the first record
/// with timestamp >= `ts`: `(offset, timestamp)`.
pub async fn find_timestamp<S: SegmentBytes>(
    seg: &S,
    start: u64,
    ts: i64,
) -> Result<Option<(i64, i64)>, S::Error> {
    let mut pos = start;
    while pos + HEADER_LEN as u64 <= seg.size() {
        let hb = seg.read_at(pos, HEADER_LEN as u64).await?;
        let h = parse_header(seg, &hb, pos, None)?;
        if h.max_timestamp >= ts {
            let len = h.total_len() as u64;
            check_within(seg, &h, pos, len)?;
            let batch = seg.read_at(pos, len).await?;
            let damaged = |detail: String| {
                seg.damaged(DamagedBatch {
                    position: pos,
                    offset: Some(h.base_offset),
                    detail,
                })
            };
            h.verify_crc(&batch).map_err(|e| damaged(e.to_string()))?;
            let records = decode_records(&h, &batch).map_err(|e| damaged(e.to_string()))?;
            if let Some(r) = records.iter().find(|r| r.timestamp >= ts) {
                return Ok(Some((r.offset, r.timestamp)));
            }
        }
        pos += h.total_len() as u64;
        // A scan may cross a whole segment: let other tasks run.
        tokio::task::yield_now().await;
    }
    Ok(None)
}

/// A local segment's file range to read, planned under the partition lock
/// and read outside it.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub(super) file: Arc<File>,
    pub(super) path: Arc<Path>,
    /// Where reading starts (an index position).
    pub start: u64,
    /// The offset of the batch at `start`, when known (local reads).
    pub start_offset: Option<i64>,
    pub(super) end: u64,
}

impl ReadPlan {
    /// [`read_batches`] from the planned position.
    pub async fn read(
        &self,
        offset: i64,
        visible_end: i64,
        max_bytes: usize,
    ) -> Result<ReadOutcome, LogError> {
        read_batches(
            self,
            self.start,
            self.start_offset,
            offset,
            visible_end,
            max_bytes,
        )
        .await
    }

    /// [`find_timestamp`] from the planned position.
    pub async fn find_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        find_timestamp(self, self.start, ts).await
    }
}

impl SegmentBytes for ReadPlan {
    type Error = LogError;

    fn size(&self) -> u64 {
        self.end
    }

    async fn read_at(&self, pos: u64, len: u64) -> Result<Bytes, LogError> {
        let mut buf = BytesMut::zeroed(len as usize);
        self.file
            .read_exact_at(&mut buf, pos)
            .map_err(|e| LogError::io(&self.path, e))?;
        Ok(buf.freeze())
    }

    fn damaged(&self, batch: DamagedBatch) -> LogError {
        LogError::Damaged {
            path: self.path.to_path_buf(),
            batch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidelog_proto::batch::{stamp_batch, BatchBuilder, Compression};

    /// A segment file of `n` one-record batches (offsets 0..n, timestamps
    /// 1000 + offset) and a plan over it.
    fn segment(dir: &Path, n: i64) -> ReadPlan {
        let path = dir.join("00000000000000000000.log");
        let mut data = Vec::new();
        for i in 0..n {
            let mut b = BatchBuilder::new(Compression::None, 1000 + i);
            b.push(1000 + i, None, Some(b"value"), &[]);
            let mut raw = b.finish(-1, -1, -1).to_vec();
            stamp_batch(&mut raw, i, 0);
            data.extend_from_slice(&raw);
        }
        std::fs::write(&path, &data).expect("write segment");
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        ReadPlan {
            file: Arc::new(file),
            path: Arc::from(path.as_path()),
            start: 0,
            start_offset: Some(0),
            end: data.len() as u64,
        }
    }

    #[tokio::test]
    async fn reads_visible_batches_and_finds_timestamps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = segment(dir.path(), 5);
        let out = plan.read(2, 4, 1 << 20).await.expect("read");
        assert_eq!((out.records, out.next_offset), (2, 4));
        assert_eq!(plan.read(4, 4, 1 << 20).await.expect("read").records, 0);
        assert_eq!(
            plan.find_timestamp(1003).await.expect("scan"),
            Some((3, 1003))
        );
        assert_eq!(plan.find_timestamp(2000).await.expect("scan"), None);
    }

    #[tokio::test]
    async fn a_damaged_batch_is_an_error_naming_its_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = segment(dir.path(), 3);
        let third = plan.end / 3 * 2;
        plan.file
            .write_all_at(&[0xff], third + HEADER_LEN as u64 + 2)
            .expect("damage");
        // The batches before it are still served.
        assert_eq!(plan.read(0, 2, 1).await.expect("read").records, 1);
        match plan.read(2, 3, 1 << 20).await {
            Err(LogError::Damaged { batch, .. }) => {
                assert_eq!((batch.position, batch.offset), (third, Some(2)))
            }
            other => panic!("expected Damaged, got {other:?}"),
        }
    }
}
