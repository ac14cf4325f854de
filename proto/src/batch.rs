//! The record-batch binary format (specified in `proto/FORMAT.md`).
//!
//! A batch is a fixed 57-byte little-endian header followed by the records
//! section, which may be compressed as a whole. Clients build batches with
//! [`BatchBuilder`]; the broker reads the header ([`BatchHeader::parse`]),
//! checks the CRC ([`BatchHeader::verify_crc`]) and walks every record
//! without copying it ([`validate_records`]); consumers decode records with
//! [`decode_records`].
//!
//! Decoding never panics and never allocates what a length field claims
//! before checking it against the bytes present (or, for decompression,
//! against an explicit limit).

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// Size of the fixed batch header in bytes.
pub const HEADER_LEN: usize = 57;
/// The only batch format version so far.
pub const MAGIC_V1: u8 = 1;
/// Bytes before the `length` field ends; `length` counts everything after.
pub const LENGTH_PREFIX: usize = 12;
/// The CRC32C covers bytes from this position to the end of the batch.
pub const CRC_START: usize = 21;
/// Upper bound on the decompressed size of one batch's records section.
pub const DEFAULT_MAX_DECOMPRESSED: usize = crate::limits::MAX_BATCH_DECOMPRESSED;

/// LZ4 cannot inflate a block by more than this factor (a match token
/// codes at most 255 bytes per input byte), so a larger size prefix is a
/// lie, refused before allocating it.
const LZ4_MAX_RATIO: usize = 255;

const OFF_BASE_OFFSET: usize = 0;
const OFF_LENGTH: usize = 8;
const OFF_LEADER_EPOCH: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_RECORD_COUNT: usize = 23;
const OFF_FIRST_TS: usize = 27;
const OFF_MAX_TS: usize = 35;
const OFF_PRODUCER_ID: usize = 43;
const OFF_PRODUCER_EPOCH: usize = 51;
const OFF_BASE_SEQUENCE: usize = 53;

const COMPRESSION_MASK: u16 = 0b111;

/// Why a batch or record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than the header or the length field requires.
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The magic byte names a format version this code does not know.
    #[error("unsupported batch format version {0} (expected {MAGIC_V1})")]
    UnsupportedMagic(u8),
    /// The stored CRC32C does not match the bytes.
    #[error("batch CRC32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes present.
        computed: u32,
    },
    /// A header field holds an impossible value.
    #[error("invalid batch header: {0}")]
    InvalidHeader(&'static str),
    /// The compression bits name an unknown codec.
    #[error("unknown compression codec {0}")]
    UnknownCompression(u16),
    /// The records section failed to decompress or exceeds the limit.
    #[error("cannot decompress records: {0}")]
    Decompression(String),
    /// A record inside the batch is malformed.
    #[error("malformed record: {0}")]
    MalformedRecord(&'static str),
    /// The header's record count disagrees with the records present.
    #[error("record_count is {claimed} but the records section holds {found}{more}", more = if *found > *claimed { " or more" } else { "" })]
    RecordCount {
        /// `record_count` in the header.
        claimed: u32,
        /// Records actually present (at least this many when more).
        found: u32,
    },
    /// `max_timestamp` is not the batch's largest timestamp.
    #[error("max_timestamp is {stated} but the largest timestamp in the batch is {actual}")]
    MaxTimestamp {
        /// `max_timestamp` in the header.
        stated: i64,
        /// Largest of `first_timestamp` and the record timestamps.
        actual: i64,
    },
}

/// Compression of a batch's records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Stored as is.
    #[default]
    None,
    /// LZ4 block with its uncompressed size prepended (4 bytes LE).
    Lz4,
    /// A Zstandard frame.
    Zstd,
}

impl Compression {
    fn bits(self) -> u16 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
            Compression::Zstd => 2,
        }
    }

    fn from_bits(bits: u16) -> Result<Self, BatchError> {
        match bits {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Lz4),
            2 => Ok(Compression::Zstd),
            other => Err(BatchError::UnknownCompression(other)),
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Compression::None),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            other => Err(format!(
                "unknown compression '{other}': use none, lz4 or zstd"
            )),
        }
    }
}

/// The decoded fixed header of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (stamped by the broker).
    pub base_offset: i64,
    /// Bytes after the length field; the whole batch is `12 + length` bytes.
    pub length: u32,
    /// Leader epoch stamped by the broker (0 until replication).
    pub leader_epoch: i32,
    /// Format version.
    pub magic: u8,
    /// CRC32C of bytes `[21, end)`.
    pub crc: u32,
    /// Attribute bits; bits 0-2 are the compression codec.
    pub attributes: u16,
    /// Number of records; offsets `base_offset ..= base_offset + count - 1`.
    pub record_count: u32,
    /// Timestamp of the first record (ms).
    pub first_timestamp: i64,
    /// Largest record timestamp (ms).
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 when none.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 when none.
    pub base_sequence: i32,
}

fn le_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(a)
}
fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Checks only that the header
    /// is present and self-consistent; the records may extend beyond `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let h = BatchHeader {
            base_offset: le_i64(buf, OFF_BASE_OFFSET),
            length: le_u32(buf, OFF_LENGTH),
            leader_epoch: le_u32(buf, OFF_LEADER_EPOCH) as i32,
            magic: buf[OFF_MAGIC],
            crc: le_u32(buf, OFF_CRC),
            attributes: le_u16(buf, OFF_ATTRIBUTES),
            record_count: le_u32(buf, OFF_RECORD_COUNT),
            first_timestamp: le_i64(buf, OFF_FIRST_TS),
            max_timestamp: le_i64(buf, OFF_MAX_TS),
            producer_id: le_i64(buf, OFF_PRODUCER_ID),
            producer_epoch: le_u16(buf, OFF_PRODUCER_EPOCH) as i16,
            base_sequence: le_u32(buf, OFF_BASE_SEQUENCE) as i32,
        };
        if h.magic != MAGIC_V1 {
            return Err(BatchError::UnsupportedMagic(h.magic));
        }
        if (h.length as usize) < HEADER_LEN - LENGTH_PREFIX {
            return Err(BatchError::InvalidHeader("length smaller than header"));
        }
        if h.record_count == 0 {
            return Err(BatchError::InvalidHeader("record count is zero"));
        }
        if h.max_timestamp < h.first_timestamp {
            return Err(BatchError::InvalidHeader(
                "max timestamp before first timestamp",
            ));
        }
        Compression::from_bits(h.attributes & COMPRESSION_MASK)?;
        Ok(h)
    }

    /// Total size of the batch in bytes.
    pub fn total_len(&self) -> usize {
        LENGTH_PREFIX + self.length as usize
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.record_count) - 1
    }

    /// Offset after the last record.
    pub fn next_offset(&self) -> i64 {
        self.base_offset + i64::from(self.record_count)
    }

    /// Sequence number of the last record. Sequences wrap from `i32::MAX`
    /// to 0, as Kafka's do: a batch of 5 starting at `i32::MAX - 1` ends at 2.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.record_count.max(1)) - 1;
        (last % (i64::from(i32::MAX) + 1)) as i32
    }

    /// The compression codec.
    pub fn compression(&self) -> Compression {
        // parse() already rejected unknown codecs.
        Compression::from_bits(self.attributes & COMPRESSION_MASK).unwrap_or(Compression::None)
    }

    /// Checks that `batch` holds exactly this header's length and that its
    /// CRC32C matches.
    pub fn verify_crc(&self, batch: &[u8]) -> Result<(), BatchError> {
        if batch.len() != self.total_len() {
            return Err(BatchError::Truncated {
                needed: self.total_len(),
                available: batch.len(),
            });
        }
        let computed = crc32c::crc32c(&batch[CRC_START..]);
        if computed != self.crc {
            return Err(BatchError::CrcMismatch {
                stored: self.crc,
                computed,
            });
        }
        Ok(())
    }
}

/// Parses and fully validates one complete batch (header, length, CRC).
pub fn validate_batch(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::parse(batch)?;
    h.verify_crc(batch)?;
    Ok(h)
}

/// Overwrites the broker-owned fields (base offset, leader epoch) of a batch
/// in place. They lie outside the CRC, so the CRC stays valid.
pub fn stamp_batch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    if batch.len() >= HEADER_LEN {
        batch[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_le_bytes());
        batch[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_le_bytes());
    }
}

/// A copy of a finished batch with another producer identity (a producer
/// re-sending refused batches under a new epoch) and its CRC recomputed.
/// Returns the input unchanged when it is shorter than a header.
pub fn restamp_producer(
    batch: &[u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Bytes {
    let mut out = BytesMut::from(batch);
    if out.len() >= HEADER_LEN {
        out[OFF_PRODUCER_ID..OFF_PRODUCER_ID + 8].copy_from_slice(&producer_id.to_le_bytes());
        out[OFF_PRODUCER_EPOCH..OFF_PRODUCER_EPOCH + 2]
            .copy_from_slice(&producer_epoch.to_le_bytes());
        out[OFF_BASE_SEQUENCE..OFF_BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_le_bytes());
        let crc = crc32c::crc32c(&out[CRC_START..]);
        out[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    }
    out.freeze()
}

/// Splits a buffer of concatenated batches into `(header, batch bytes)`
/// pairs. Stops with an error at the first malformed or truncated batch.
pub fn split_batches(
    mut buf: Bytes,
) -> impl Iterator<Item = Result<(BatchHeader, Bytes), BatchError>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let h = match BatchHeader::parse(&buf) {
            Ok(h) => h,
            Err(e) => {
                buf.clear();
                return Some(Err(e));
            }
        };
        if buf.len() < h.total_len() {
            let e = BatchError::Truncated {
                needed: h.total_len(),
                available: buf.len(),
            };
            buf.clear();
            return Some(Err(e));
        }
        Some(Ok((h, buf.split_to(h.total_len()))))
    })
}

/// One record as produced or consumed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Offset in the partition (meaningful once read back).
    pub offset: i64,
    /// Timestamp in ms since the Unix epoch.
    pub timestamp: i64,
    /// Optional key.
    pub key: Option<Bytes>,
    /// Value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers in order; names are UTF-8.
    pub headers: Vec<(String, Bytes)>,
}

/// Builds one batch from records.
///
/// The records are encoded straight into the buffer that becomes the batch:
/// its first [`HEADER_LEN`] bytes are reserved at construction and filled in
/// by [`finish`](Self::finish), so an uncompressed batch is written once and
/// never copied.
#[derive(Debug)]
pub struct BatchBuilder {
    /// `HEADER_LEN` reserved bytes followed by the uncompressed records.
    buf: BytesMut,
    count: u32,
    first_timestamp: i64,
    max_timestamp: i64,
    compression: Compression,
}

impl BatchBuilder {
    /// A builder whose first record has timestamp `first_timestamp`.
    pub fn new(compression: Compression, first_timestamp: i64) -> Self {
        Self::with_capacity(compression, first_timestamp, 0)
    }

    /// Like [`new`](Self::new), but preallocates `capacity_bytes` for the
    /// whole uncompressed batch (header included; compare with
    /// [`estimated_size`](Self::estimated_size)), so a caller that knows the
    /// batch size pays for no regrowth.
    pub fn with_capacity(
        compression: Compression,
        first_timestamp: i64,
        capacity_bytes: usize,
    ) -> Self {
        let mut buf = BytesMut::with_capacity(capacity_bytes.max(HEADER_LEN));
        buf.resize(HEADER_LEN, 0);
        BatchBuilder {
            buf,
            count: 0,
            first_timestamp,
            max_timestamp: first_timestamp,
            compression,
        }
    }

    /// Number of records added so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// True when no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Uncompressed bytes of the records so far plus the header.
    pub fn estimated_size(&self) -> usize {
        self.buf.len()
    }

    /// Appends a record; its offset delta is its position in the batch.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(String, Bytes)],
    ) {
        let ts_delta = zigzag(timestamp.wrapping_sub(self.first_timestamp));
        let offset_delta = u64::from(self.count);
        // The body length is computed up front so its varint prefix can be
        // written before the body, without a scratch buffer.
        let mut body_len = 1 // record attributes
            + varint_len(ts_delta)
            + varint_len(offset_delta)
            + nullable_len(key)
            + nullable_len(value)
            + varint_len(headers.len() as u64);
        for (name, v) in headers {
            body_len +=
                varint_len(name.len() as u64) + name.len() + varint_len(v.len() as u64) + v.len();
        }
        // One reserve per record; the writes below never reallocate.
        self.buf.reserve(varint_len(body_len as u64) + body_len);
        let start = self.buf.len();
        put_varint(&mut self.buf, body_len as u64);
        let body_start = self.buf.len();
        self.buf.put_u8(0); // record attributes, reserved
        put_varint(&mut self.buf, ts_delta);
        put_varint(&mut self.buf, offset_delta);
        put_nullable(&mut self.buf, key);
        put_nullable(&mut self.buf, value);
        put_varint(&mut self.buf, headers.len() as u64);
        for (name, v) in headers {
            put_varint(&mut self.buf, name.len() as u64);
            self.buf.put_slice(name.as_bytes());
            put_varint(&mut self.buf, v.len() as u64);
            self.buf.put_slice(v);
        }
        debug_assert_eq!(self.buf.len() - body_start, body_len);
        debug_assert_eq!(
            body_start - start,
            varint_len(body_len as u64),
            "length prefix size"
        );
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }

    /// Finishes the batch with the given producer identity.
    pub fn finish(self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Bytes {
        let mut fields = HeaderFields {
            compression: self.compression,
            count: self.count,
            first_timestamp: self.first_timestamp,
            max_timestamp: self.max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
        };
        let records = &self.buf[HEADER_LEN..];
        let compressed = match self.compression {
            Compression::None => None,
            Compression::Lz4 => Some(lz4_flex::compress_prepend_size(records)),
            // Level 1: zstd's fast end; brokers never recompress.
            // zstd only fails on allocation problems; fall back to plain.
            Compression::Zstd => zstd::bulk::compress(records, 1).ok(),
        };
        match compressed {
            // In place: the records already follow the reserved header.
            None => {
                fields.compression = Compression::None;
                seal(self.buf, &fields)
            }
            Some(payload) => {
                // A compressed section needs a new buffer: one copy.
                let mut b = BytesMut::with_capacity(HEADER_LEN + payload.len());
                b.resize(HEADER_LEN, 0);
                b.extend_from_slice(&payload);
                seal(b, &fields)
            }
        }
    }
}

/// The header fields a builder chooses (the broker-owned ones are 0).
struct HeaderFields {
    compression: Compression,
    count: u32,
    first_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

/// Fills the first `HEADER_LEN` bytes of `b`, whose records section follows
/// them, computes the CRC and freezes the buffer without copying it.
fn seal(mut b: BytesMut, f: &HeaderFields) -> Bytes {
    let length = (b.len() - LENGTH_PREFIX) as u32;
    let h = &mut b[..HEADER_LEN];
    h[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&0i64.to_le_bytes());
    h[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&length.to_le_bytes());
    h[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&0i32.to_le_bytes());
    h[OFF_MAGIC] = MAGIC_V1;
    h[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&f.compression.bits().to_le_bytes());
    h[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&f.count.to_le_bytes());
    h[OFF_FIRST_TS..OFF_FIRST_TS + 8].copy_from_slice(&f.first_timestamp.to_le_bytes());
    h[OFF_MAX_TS..OFF_MAX_TS + 8].copy_from_slice(&f.max_timestamp.to_le_bytes());
    h[OFF_PRODUCER_ID..OFF_PRODUCER_ID + 8].copy_from_slice(&f.producer_id.to_le_bytes());
    h[OFF_PRODUCER_EPOCH..OFF_PRODUCER_EPOCH + 2].copy_from_slice(&f.producer_epoch.to_le_bytes());
    h[OFF_BASE_SEQUENCE..OFF_BASE_SEQUENCE + 4].copy_from_slice(&f.base_sequence.to_le_bytes());
    // The CRC field lies before CRC_START, so it is not part of its own input.
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    b.freeze()
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}
fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Bytes `put_varint` writes for `v` (1 to 10).
fn varint_len(v: u64) -> usize {
    // `| 1` makes 0 count as one significant bit.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(b: &mut BytesMut, mut v: u64) {
    // Staged on the stack so the buffer sees one bounds-checked write.
    let mut tmp = [0u8; 10];
    let mut n = 0;
    // `n < 9` never stops the loop early (a u64 is below 0x80 after nine
    // shifts); it lets the compiler drop the index checks.
    while v >= 0x80 && n < 9 {
        tmp[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    tmp[n] = v as u8;
    b.put_slice(&tmp[..=n]);
}

/// Bytes `put_nullable` writes for `v`.
fn nullable_len(v: Option<&[u8]>) -> usize {
    match v {
        None => varint_len(zigzag(-1)),
        Some(v) => varint_len(zigzag(v.len() as i64)) + v.len(),
    }
}

fn put_nullable(b: &mut BytesMut, v: Option<&[u8]>) {
    match v {
        None => put_varint(b, zigzag(-1)),
        Some(v) => {
            put_varint(b, zigzag(v.len() as i64));
            b.put_slice(v);
        }
    }
}

/// A bounds-checked cursor over `buf[pos..end]`. Fields come back as byte
/// ranges of the section, so one parser serves both the decoder (which
/// turns ranges into zero-copy `Bytes` slices) and the broker's validation
/// (which only looks at them and allocates nothing).
struct Reader<'a> {
    buf: &'a [u8],
    /// Invariant: `pos <= end <= buf.len()`.
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    fn u8(&mut self) -> Result<u8, BatchError> {
        match self.buf.get(self.pos) {
            Some(&byte) if self.pos < self.end => {
                self.pos += 1;
                Ok(byte)
            }
            _ => Err(BatchError::MalformedRecord(
                "field length exceeds the record",
            )),
        }
    }

    fn varint(&mut self) -> Result<u64, BatchError> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = match self.buf.get(self.pos) {
                Some(&byte) if self.pos < self.end => byte,
                _ => return Err(BatchError::MalformedRecord("varint runs past the end")),
            };
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(BatchError::MalformedRecord("varint overflows 64 bits"));
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(BatchError::MalformedRecord("varint longer than 10 bytes"))
    }

    /// Advances past `len` bytes and returns their range, after checking
    /// `len` against the bytes remaining.
    fn advance(&mut self, len: u64) -> Result<Range<usize>, BatchError> {
        if len > self.remaining() as u64 {
            return Err(BatchError::MalformedRecord(
                "field length exceeds the record",
            ));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(start..self.pos)
    }

    /// A reader over the next `len` bytes; this reader skips past them.
    fn sub(&mut self, len: u64) -> Result<Reader<'a>, BatchError> {
        let range = self.advance(len)?;
        Ok(Reader {
            buf: self.buf,
            pos: range.start,
            end: range.end,
        })
    }

    /// A zigzag length followed by that many bytes; -1 is null.
    fn nullable(&mut self) -> Result<Option<Range<usize>>, BatchError> {
        match unzigzag(self.varint()?) {
            -1 => Ok(None),
            l if l < 0 => Err(BatchError::MalformedRecord("length below -1")),
            l => Ok(Some(self.advance(l as u64)?)),
        }
    }
}

/// One record's fields, as positions in its section.
struct RawRecord<'a> {
    attributes: u8,
    timestamp_delta: i64,
    offset_delta: u64,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    header_count: u64,
    /// The rest of the record: exactly `header_count` headers.
    headers: Reader<'a>,
}

impl<'a> RawRecord<'a> {
    /// Parses the next record of a section.
    fn next(r: &mut Reader<'a>) -> Result<Self, BatchError> {
        let len = r.varint()?;
        let mut rec = r.sub(len)?;
        let attributes = rec.u8()?;
        let timestamp_delta = unzigzag(rec.varint()?);
        let offset_delta = rec.varint()?;
        let key = rec.nullable()?;
        let value = rec.nullable()?;
        let header_count = rec.varint()?;
        // Each header takes at least 2 bytes, which bounds any allocation
        // sized by the count.
        if header_count > rec.remaining() as u64 / 2 {
            return Err(BatchError::MalformedRecord(
                "header count exceeds the record",
            ));
        }
        Ok(RawRecord {
            attributes,
            timestamp_delta,
            offset_delta,
            key,
            value,
            header_count,
            headers: rec,
        })
    }

    /// The next header: its UTF-8 name and the range of its value. After
    /// the last one, [`finish`](Self::finish) checks nothing is left.
    fn next_header(&mut self) -> Result<(&'a str, Range<usize>), BatchError> {
        let nlen = self.headers.varint()?;
        let name = self.headers.advance(nlen)?;
        let buf: &'a [u8] = self.headers.buf;
        let name = std::str::from_utf8(&buf[name])
            .map_err(|_| BatchError::MalformedRecord("header name is not UTF-8"))?;
        let vlen = self.headers.varint()?;
        Ok((name, self.headers.advance(vlen)?))
    }

    /// A record's fields must fill exactly its length.
    fn finish(&self) -> Result<(), BatchError> {
        if self.headers.remaining() != 0 {
            return Err(BatchError::MalformedRecord(
                "bytes left after the record's headers",
            ));
        }
        Ok(())
    }
}

/// Decompresses `payload` into `out` (cleared first), refusing before any
/// allocation a section that claims or produces more than `limit` bytes,
/// and a section that is not exactly one lz4 block or one zstd frame.
fn decompress_into(
    compression: Compression,
    payload: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), BatchError> {
    out.clear();
    match compression {
        Compression::None => {
            out.extend_from_slice(payload);
            Ok(())
        }
        Compression::Lz4 => {
            if payload.len() < 4 {
                return Err(BatchError::Decompression("lz4 size prefix missing".into()));
            }
            let claimed = le_u32(payload, 0) as usize;
            if claimed > limit {
                return Err(BatchError::Decompression(format!(
                    "lz4 section claims {claimed} bytes, limit is {limit}"
                )));
            }
            if claimed > (payload.len() - 4) * LZ4_MAX_RATIO + 16 {
                return Err(BatchError::Decompression(format!(
                    "lz4 block of {} bytes cannot inflate to the {claimed} bytes its prefix claims",
                    payload.len() - 4
                )));
            }
            out.resize(claimed, 0);
            let n = lz4_flex::block::decompress_into(&payload[4..], out)
                .map_err(|e| BatchError::Decompression(format!("lz4 block: {e}")))?;
            if n != claimed {
                return Err(BatchError::Decompression(format!(
                    "lz4 block inflates to {n} bytes, its prefix says {claimed}"
                )));
            }
            Ok(())
        }
        Compression::Zstd => {
            // One frame, exactly: a second frame or trailing bytes are
            // not part of the format.
            let frame_len = zstd::zstd_safe::find_frame_compressed_size(payload)
                .map_err(|_| BatchError::Decompression("not a zstd frame".into()))?;
            if frame_len != payload.len() {
                return Err(BatchError::Decompression(format!(
                    "zstd section holds {} bytes after its first frame; one frame is allowed",
                    payload.len() - frame_len
                )));
            }
            match zstd::zstd_safe::get_frame_content_size(payload) {
                Ok(Some(size)) if size > limit as u64 => Err(BatchError::Decompression(format!(
                    "zstd frame claims {size} bytes, limit is {limit}"
                ))),
                // The frame states its size: one exact allocation.
                Ok(Some(size)) => {
                    out.reserve_exact(size as usize);
                    ZSTD.with(|d| {
                        let mut d = d.borrow_mut();
                        let d = match d.as_mut() {
                            Some(d) => d,
                            None => d.insert(zstd::bulk::Decompressor::new().map_err(|e| {
                                BatchError::Decompression(format!("zstd context: {e}"))
                            })?),
                        };
                        d.decompress_to_buffer(payload, out)
                            .map_err(|e| BatchError::Decompression(format!("zstd frame: {e}")))
                    })?;
                    if out.len() as u64 != size {
                        return Err(BatchError::Decompression(format!(
                            "zstd frame inflates to {} bytes, it claims {size}",
                            out.len()
                        )));
                    }
                    Ok(())
                }
                // No stated size (a streamed frame): read one byte past the
                // limit to detect an oversized frame without trusting it.
                _ => {
                    use std::io::Read;
                    let mut decoder = zstd::stream::read::Decoder::new(payload)
                        .map_err(|e| BatchError::Decompression(e.to_string()))?
                        .single_frame();
                    // The window a frame may ask for is allocated up front:
                    // keep it within the section limit (2^26 = 64 MiB).
                    decoder
                        .window_log_max(ZSTD_WINDOW_LOG_MAX)
                        .map_err(|e| BatchError::Decompression(e.to_string()))?;
                    decoder
                        .take(limit as u64 + 1)
                        .read_to_end(out)
                        .map_err(|e| BatchError::Decompression(format!("zstd frame: {e}")))?;
                    if out.len() > limit {
                        return Err(BatchError::Decompression(format!(
                            "zstd frame inflates to more than {limit} bytes"
                        )));
                    }
                    Ok(())
                }
            }
        }
    }
}

/// Largest zstd window accepted: 64 MiB, the section limit.
const ZSTD_WINDOW_LOG_MAX: u32 = 26;

thread_local! {
    /// A zstd context per thread: creating one costs more than inflating a
    /// small batch.
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    /// Scratch space for validating compressed batches on the broker.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Scratch buffers above this size are released after use, so one large
/// batch does not pin memory on a thread for good.
const SCRATCH_KEEP_BYTES: usize = 4 * 1024 * 1024;

/// Returns the uncompressed records section of a complete, validated batch.
pub fn records_section(
    header: &BatchHeader,
    batch: &Bytes,
    max_decompressed: usize,
) -> Result<Bytes, BatchError> {
    if batch.len() < header.total_len() {
        return Err(BatchError::Truncated {
            needed: header.total_len(),
            available: batch.len(),
        });
    }
    let payload = batch.slice(HEADER_LEN..header.total_len());
    match header.compression() {
        Compression::None => Ok(payload),
        c => {
            let mut out = Vec::new();
            decompress_into(c, &payload, max_decompressed, &mut out)?;
            Ok(Bytes::from(out))
        }
    }
}

/// Decodes every record of one complete batch, with absolute offsets and
/// timestamps.
///
/// Keys, values and header values of an uncompressed batch are slices of
/// `batch` (no copy); a record without headers allocates nothing beyond its
/// `Record`, and header names are the only per-field allocation.
pub fn decode_records(header: &BatchHeader, batch: &Bytes) -> Result<Vec<Record>, BatchError> {
    let section = records_section(header, batch, DEFAULT_MAX_DECOMPRESSED)?;
    // Each record takes at least 6 bytes, which bounds the allocation.
    let mut out = Vec::with_capacity((header.record_count as usize).min(section.len() / 6 + 1));
    let mut r = Reader::new(&section);
    let field = |range: Option<Range<usize>>| range.map(|range| section.slice(range));
    for _ in 0..header.record_count {
        let mut rec = RawRecord::next(&mut r)?;
        if rec.offset_delta >= u64::from(header.record_count) {
            return Err(BatchError::MalformedRecord(
                "offset delta beyond record count",
            ));
        }
        // `with_capacity(0)` does not allocate.
        let mut headers = Vec::with_capacity(rec.header_count as usize);
        for _ in 0..rec.header_count {
            let (name, value) = rec.next_header()?;
            headers.push((name.to_owned(), section.slice(value)));
        }
        rec.finish()?;
        out.push(Record {
            // Wrapping: a garbage base offset must not panic in debug builds.
            offset: header.base_offset.wrapping_add(rec.offset_delta as i64),
            timestamp: header.first_timestamp.wrapping_add(rec.timestamp_delta),
            key: field(rec.key),
            value: field(rec.value),
            headers,
        });
    }
    if r.remaining() != 0 {
        return Err(BatchError::MalformedRecord(
            "bytes left after the last record",
        ));
    }
    Ok(out)
}

/// Checks every record of a produced batch against the format, without
/// copying or re-encoding it: what a broker must do before it stores bytes
/// that every consumer will decode (a client's CRC proves only that the
/// client meant to send them). One pass; compressed sections are inflated
/// into a per-thread scratch buffer, bounded by `max_decompressed`.
/// Returns the bytes a compressed section inflated to (0 when
/// uncompressed), so a caller can bound the total work of a request.
///
/// Refuses reserved attribute bits, an idempotent producer id with a
/// negative epoch or sequence, a `record_count` other than the records
/// present, records out of position (`offset_delta` must be 0, 1, 2, …),
/// reserved record attributes, lengths below -1, header names that are not
/// UTF-8, bytes left inside a record or after the last one, and a
/// `max_timestamp` other than the largest of `first_timestamp` and the
/// record timestamps.
pub fn validate_records(
    header: &BatchHeader,
    batch: &[u8],
    max_decompressed: usize,
) -> Result<usize, BatchError> {
    if header.attributes & !COMPRESSION_MASK != 0 {
        return Err(BatchError::InvalidHeader("reserved attribute bits are set"));
    }
    // An idempotent batch the broker could not track would be appended
    // again on every retry.
    if header.producer_id >= 0 && (header.producer_epoch < 0 || header.base_sequence < 0) {
        return Err(BatchError::InvalidHeader(
            "an idempotent batch (producer_id >= 0) needs producer_epoch >= 0 and base_sequence >= 0",
        ));
    }
    if batch.len() < header.total_len() {
        return Err(BatchError::Truncated {
            needed: header.total_len(),
            available: batch.len(),
        });
    }
    let payload = &batch[HEADER_LEN..header.total_len()];
    match header.compression() {
        Compression::None => walk_records(header, payload).map(|()| 0),
        c => SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let result = decompress_into(c, payload, max_decompressed, &mut scratch)
                .and_then(|()| walk_records(header, &scratch))
                .map(|()| scratch.len());
            if scratch.capacity() > SCRATCH_KEEP_BYTES {
                *scratch = Vec::new();
            }
            result
        }),
    }
}

fn walk_records(header: &BatchHeader, section: &[u8]) -> Result<(), BatchError> {
    let mut r = Reader::new(section);
    let mut max_timestamp = header.first_timestamp;
    let mut found: u32 = 0;
    while found < header.record_count {
        if r.remaining() == 0 {
            return Err(BatchError::RecordCount {
                claimed: header.record_count,
                found,
            });
        }
        let mut rec = RawRecord::next(&mut r)?;
        if rec.attributes != 0 {
            return Err(BatchError::MalformedRecord(
                "record attributes are reserved and must be 0",
            ));
        }
        if rec.offset_delta != u64::from(found) {
            return Err(BatchError::MalformedRecord(
                "offset delta is not the record's position in the batch",
            ));
        }
        // Wrapping, as the builder and the decoder do: any i64 timestamp
        // is representable as a delta from any first timestamp.
        let timestamp = header.first_timestamp.wrapping_add(rec.timestamp_delta);
        max_timestamp = max_timestamp.max(timestamp);
        for _ in 0..rec.header_count {
            rec.next_header()?;
        }
        rec.finish()?;
        found += 1;
    }
    if r.remaining() != 0 {
        return Err(BatchError::RecordCount {
            claimed: header.record_count,
            found: found.saturating_add(1),
        });
    }
    if header.max_timestamp != max_timestamp {
        return Err(BatchError::MaxTimestamp {
            stated: header.max_timestamp,
            actual: max_timestamp,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(compression: Compression) -> Bytes {
        let mut b = BatchBuilder::new(compression, 1_000);
        b.push(1_000, Some(b"k1"), Some(b"v1"), &[]);
        b.push(
            1_005,
            None,
            Some(b"v2"),
            &[("h".to_string(), Bytes::from_static(b"x"))],
        );
        b.push(999, Some(b""), None, &[]);
        b.finish(42, 3, 7)
    }

    #[test]
    fn round_trip_every_codec() {
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut raw = sample(c).to_vec();
            stamp_batch(&mut raw, 100, 2);
            let raw = Bytes::from(raw);
            let h = validate_batch(&raw).expect("valid");
            assert_eq!(h.base_offset, 100);
            assert_eq!(h.leader_epoch, 2);
            assert_eq!(h.record_count, 3);
            assert_eq!(h.producer_id, 42);
            assert_eq!(h.producer_epoch, 3);
            assert_eq!(h.base_sequence, 7);
            assert_eq!(h.last_sequence(), 9);
            assert_eq!(h.max_timestamp, 1_005);
            assert_eq!(h.compression(), c);
            let recs = decode_records(&h, &raw).expect("decode");
            assert_eq!(recs.len(), 3);
            assert_eq!(recs[0].offset, 100);
            assert_eq!(recs[0].key.as_deref(), Some(&b"k1"[..]));
            assert_eq!(recs[1].offset, 101);
            assert_eq!(recs[1].timestamp, 1_005);
            assert_eq!(recs[1].key, None);
            assert_eq!(recs[1].headers[0].0, "h");
            assert_eq!(recs[2].timestamp, 999);
            assert_eq!(recs[2].key.as_deref(), Some(&b""[..]));
            assert_eq!(recs[2].value, None);
        }
    }

    #[test]
    fn every_flipped_bit_in_crc_range_is_detected() {
        let raw = sample(Compression::None).to_vec();
        for i in CRC_START..raw.len() {
            let mut bad = raw.clone();
            bad[i] ^= 0x10;
            assert!(validate_batch(&bad).is_err(), "flip at byte {i} undetected");
        }
    }

    #[test]
    fn truncation_at_every_length_is_an_error_not_a_panic() {
        let raw = sample(Compression::Lz4);
        for n in 0..raw.len() {
            assert!(validate_batch(&raw[..n]).is_err());
            let mut it = split_batches(raw.slice(..n));
            if n > 0 {
                assert!(matches!(it.next(), Some(Err(_))));
            }
        }
    }

    #[test]
    fn huge_claimed_lengths_are_rejected_before_allocation() {
        // An lz4 payload that claims 4 GiB must fail fast.
        let mut b = BatchBuilder::new(Compression::Lz4, 0);
        b.push(0, None, Some(b"x"), &[]);
        let mut raw = b.finish(-1, -1, -1).to_vec();
        raw[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let crc = crc32c::crc32c(&raw[CRC_START..]);
        raw[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        let raw = Bytes::from(raw);
        let h = validate_batch(&raw).expect("header valid");
        assert!(matches!(
            decode_records(&h, &raw),
            Err(BatchError::Decompression(_))
        ));

        // A record count of u32::MAX with a tiny body must not allocate it.
        let mut b = BatchBuilder::new(Compression::None, 0);
        b.push(0, None, Some(b"x"), &[]);
        let mut raw = b.finish(-1, -1, -1).to_vec();
        raw[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let crc = crc32c::crc32c(&raw[CRC_START..]);
        raw[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        let raw = Bytes::from(raw);
        let h = validate_batch(&raw).expect("header valid");
        assert!(decode_records(&h, &raw).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        for len in 0..400 {
            let mut v = vec![0u8; len];
            for byte in v.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *byte = seed as u8;
            }
            if len >= HEADER_LEN {
                v[OFF_MAGIC] = MAGIC_V1;
            }
            let raw = Bytes::from(v);
            if let Ok(h) = BatchHeader::parse(&raw) {
                let _ = decode_records(&h, &raw);
            }
            for item in split_batches(raw) {
                let _ = item;
            }
        }
    }

    #[test]
    fn split_walks_concatenated_batches() {
        let a = sample(Compression::None);
        let b = sample(Compression::Zstd);
        let mut joined = BytesMut::new();
        joined.extend_from_slice(&a);
        joined.extend_from_slice(&b);
        let parts: Vec<_> = split_batches(joined.freeze()).collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].as_ref().expect("ok").1, a);
        assert_eq!(parts[1].as_ref().expect("ok").1, b);
    }

    /// The encoder as it was before records were written in place (a
    /// scratch buffer per record, then a copy into a fresh header buffer);
    /// kept as the reference the new encoder must match byte for byte.
    mod reference {
        use super::super::*;

        fn put_varint(b: &mut BytesMut, mut v: u64) {
            while v >= 0x80 {
                b.put_u8((v as u8) | 0x80);
                v >>= 7;
            }
            b.put_u8(v as u8);
        }

        fn put_nullable(b: &mut BytesMut, v: Option<&[u8]>) {
            match v {
                None => put_varint(b, zigzag(-1)),
                Some(v) => {
                    put_varint(b, zigzag(v.len() as i64));
                    b.put_slice(v);
                }
            }
        }

        pub struct OldBuilder {
            pub records: BytesMut,
            count: u32,
            first_timestamp: i64,
            max_timestamp: i64,
            compression: Compression,
        }

        impl OldBuilder {
            pub fn new(compression: Compression, first_timestamp: i64) -> Self {
                OldBuilder {
                    records: BytesMut::new(),
                    count: 0,
                    first_timestamp,
                    max_timestamp: first_timestamp,
                    compression,
                }
            }

            pub fn push(
                &mut self,
                timestamp: i64,
                key: Option<&[u8]>,
                value: Option<&[u8]>,
                headers: &[(String, Bytes)],
            ) {
                let mut body = BytesMut::new();
                body.put_u8(0);
                put_varint(
                    &mut body,
                    zigzag(timestamp.wrapping_sub(self.first_timestamp)),
                );
                put_varint(&mut body, u64::from(self.count));
                put_nullable(&mut body, key);
                put_nullable(&mut body, value);
                put_varint(&mut body, headers.len() as u64);
                for (name, v) in headers {
                    put_varint(&mut body, name.len() as u64);
                    body.put_slice(name.as_bytes());
                    put_varint(&mut body, v.len() as u64);
                    body.put_slice(v);
                }
                put_varint(&mut self.records, body.len() as u64);
                self.records.put_slice(&body);
                self.count += 1;
                self.max_timestamp = self.max_timestamp.max(timestamp);
            }

            pub fn finish(
                self,
                producer_id: i64,
                producer_epoch: i16,
                base_sequence: i32,
            ) -> Bytes {
                let (payload, compression) = match self.compression {
                    Compression::None => (self.records.to_vec(), Compression::None),
                    Compression::Lz4 => (
                        lz4_flex::compress_prepend_size(&self.records),
                        Compression::Lz4,
                    ),
                    Compression::Zstd => (
                        zstd::bulk::compress(&self.records, 1).expect("zstd"),
                        Compression::Zstd,
                    ),
                };
                let total = HEADER_LEN + payload.len();
                let mut b = BytesMut::with_capacity(total);
                b.put_i64_le(0);
                b.put_u32_le((total - LENGTH_PREFIX) as u32);
                b.put_i32_le(0);
                b.put_u8(MAGIC_V1);
                b.put_u32_le(0);
                b.put_u16_le(compression.bits());
                b.put_u32_le(self.count);
                b.put_i64_le(self.first_timestamp);
                b.put_i64_le(self.max_timestamp);
                b.put_i64_le(producer_id);
                b.put_i16_le(producer_epoch);
                b.put_i32_le(base_sequence);
                b.put_slice(&payload);
                let crc = crc32c::crc32c(&b[CRC_START..]);
                b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
                b.freeze()
            }
        }
    }

    type Input = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Bytes)>);

    /// Records that exercise every varint width boundary the encoder can
    /// reach: multi-byte lengths, offset deltas past 127, negative and
    /// extreme timestamp deltas, null/empty keys and values, many headers.
    fn rich_inputs() -> Vec<Input> {
        let mut v: Vec<Input> = vec![
            (1_000, Some(b"k1".to_vec()), Some(b"v1".to_vec()), vec![]),
            (999, None, None, vec![]),
            (1_000, Some(vec![]), Some(vec![]), vec![]),
            (
                i64::MAX,
                Some(vec![7; 63]),
                Some(vec![8; 64]),
                vec![("".to_string(), Bytes::new())],
            ),
            (i64::MIN, Some(vec![1; 64]), None, vec![]),
            (
                1_000 + 8_191,
                None,
                Some(vec![9; 200]),
                vec![
                    ("trace-id".to_string(), Bytes::from_static(b"abc")),
                    ("ünïcödé".to_string(), Bytes::from(vec![0xff; 300])),
                ],
            ),
            (
                -5,
                Some(vec![2; 20_000]),
                Some(vec![3; 2_100_000]),
                (0..130)
                    .map(|i| (format!("h{i}"), Bytes::from(vec![i as u8; i])))
                    .collect(),
            ),
        ];
        // Push the offset delta past the one-byte varint range.
        for i in 0..140i64 {
            v.push((
                1_000 + i * 1_000_000,
                (i % 3 != 0).then(|| i.to_le_bytes().to_vec()),
                (i % 5 != 0).then(|| vec![i as u8; (i * 7) as usize]),
                if i % 4 == 0 {
                    vec![("n".to_string(), Bytes::from(vec![1; i as usize]))]
                } else {
                    vec![]
                },
            ));
        }
        v
    }

    fn build_new(c: Compression, inputs: &[Input], capacity: Option<usize>) -> Bytes {
        let mut b = match capacity {
            None => BatchBuilder::new(c, 1_000),
            Some(cap) => BatchBuilder::with_capacity(c, 1_000, cap),
        };
        for (ts, k, v, h) in inputs {
            b.push(*ts, k.as_deref(), v.as_deref(), h);
        }
        b.finish(77, 4, 1_000)
    }

    #[test]
    fn output_is_byte_identical_to_the_reference_encoder() {
        let inputs = rich_inputs();
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut old = reference::OldBuilder::new(c, 1_000);
            let mut new = BatchBuilder::new(c, 1_000);
            for (ts, k, v, h) in &inputs {
                old.push(*ts, k.as_deref(), v.as_deref(), h);
                new.push(*ts, k.as_deref(), v.as_deref(), h);
                assert_eq!(new.estimated_size(), HEADER_LEN + old.records.len());
            }
            let expected = old.finish(77, 4, 1_000);
            assert_eq!(new.finish(77, 4, 1_000), expected, "{c:?}");
            // Preallocation changes nothing on the wire, whether it is too
            // small, exact or generous.
            for cap in [0, 10, expected.len(), 8 << 20] {
                assert_eq!(build_new(c, &inputs, Some(cap)), expected, "{c:?} {cap}");
            }
        }
    }

    #[test]
    fn matches_a_batch_computed_by_hand_from_the_spec() {
        let mut b = BatchBuilder::new(Compression::None, 1_000);
        b.push(
            1_001,
            Some(b"k"),
            None,
            &[("h".to_string(), Bytes::from_static(b"v"))],
        );
        // CRC32C computed independently (bitwise, polynomial 0x82F63B78).
        let expected: [u8; 69] = [
            0, 0, 0, 0, 0, 0, 0, 0, // base_offset
            0x39, 0, 0, 0, // length = 69 - 12
            0, 0, 0, 0, // leader_epoch
            1, // magic
            0xe8, 0x36, 0x8f, 0x17, // crc
            0, 0, // attributes
            1, 0, 0, 0, // record_count
            0xe8, 0x03, 0, 0, 0, 0, 0, 0, // first_timestamp 1000
            0xe9, 0x03, 0, 0, 0, 0, 0, 0, // max_timestamp 1001
            5, 0, 0, 0, 0, 0, 0, 0, // producer_id
            1, 0, // producer_epoch
            0, 0, 0, 0,    // base_sequence
            0x0b, // record length 11
            0,    // attributes
            0x02, // timestamp delta zigzag(1)
            0,    // offset delta
            0x02, b'k', // key
            0x01, // null value, zigzag(-1)
            1,    // header count
            1, b'h', 1, b'v',
        ];
        assert_eq!(&b.finish(5, 1, 0)[..], &expected[..]);
    }

    #[test]
    fn varint_len_matches_put_varint() {
        let mut cases = vec![
            0u64,
            1,
            u64::MAX,
            u64::MAX - 1,
            zigzag(-1),
            zigzag(i64::MIN),
        ];
        for bits in 1..64 {
            cases.extend([(1u64 << bits) - 1, 1u64 << bits, (1u64 << bits) + 1]);
        }
        for v in cases {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
            let section = b.freeze();
            let mut r = Reader::new(&section);
            assert_eq!(r.varint().expect("decodes"), v);
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn rich_round_trip_every_codec() {
        let inputs = rich_inputs();
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut raw = build_new(c, &inputs, None).to_vec();
            stamp_batch(&mut raw, 5_000, 1);
            let raw = Bytes::from(raw);
            let h = validate_batch(&raw).expect("valid");
            assert_eq!(h.compression(), c);
            assert_eq!(h.record_count as usize, inputs.len());
            assert_eq!(h.max_timestamp, i64::MAX);
            let recs = decode_records(&h, &raw).expect("decode");
            assert_eq!(recs.len(), inputs.len());
            for (i, (rec, (ts, k, v, hs))) in recs.iter().zip(&inputs).enumerate() {
                assert_eq!(rec.offset, 5_000 + i as i64);
                assert_eq!(rec.timestamp, *ts, "record {i}");
                assert_eq!(rec.key.as_deref(), k.as_deref(), "record {i}");
                assert_eq!(rec.value.as_deref(), v.as_deref(), "record {i}");
                assert_eq!(&rec.headers, hs, "record {i}");
            }
        }
    }

    #[test]
    fn uncompressed_decode_borrows_the_batch() {
        let raw = build_new(Compression::None, &rich_inputs(), None);
        let h = validate_batch(&raw).expect("valid");
        let range = raw.as_ptr_range();
        let inside = |b: &Bytes| b.is_empty() || range.contains(&b.as_ptr());
        for rec in decode_records(&h, &raw).expect("decode") {
            assert!(rec.key.as_ref().is_none_or(inside));
            assert!(rec.value.as_ref().is_none_or(inside));
            assert!(rec.headers.iter().all(|(_, v)| inside(v)));
            if rec.headers.is_empty() {
                assert_eq!(rec.headers.capacity(), 0, "no allocation without headers");
            }
        }
    }

    #[test]
    fn every_corrupted_record_byte_is_an_error_or_a_decode_not_a_panic() {
        // With the CRC recomputed, only the record parser stands between a
        // corrupted section and a panic or an oversized allocation.
        let raw = sample(Compression::None).to_vec();
        for i in HEADER_LEN..raw.len() {
            for flip in [0x01, 0x40, 0x80, 0xff] {
                let mut bad = raw.clone();
                bad[i] ^= flip;
                let crc = crc32c::crc32c(&bad[CRC_START..]);
                bad[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
                let bad = Bytes::from(bad);
                let h = validate_batch(&bad).expect("header untouched");
                let _ = decode_records(&h, &bad);
            }
        }
        // Trailing bytes after the last record are still rejected.
        let mut long = raw.clone();
        long.push(0);
        let length = (long.len() - LENGTH_PREFIX) as u32;
        long[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&length.to_le_bytes());
        let crc = crc32c::crc32c(&long[CRC_START..]);
        long[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        let long = Bytes::from(long);
        let h = validate_batch(&long).expect("header valid");
        assert_eq!(
            decode_records(&h, &long),
            Err(BatchError::MalformedRecord(
                "bytes left after the last record"
            ))
        );
    }

    #[test]
    fn huge_base_offset_does_not_overflow() {
        let mut raw = sample(Compression::None).to_vec();
        stamp_batch(&mut raw, i64::MAX, 0);
        let raw = Bytes::from(raw);
        let h = validate_batch(&raw).expect("valid");
        assert_eq!(decode_records(&h, &raw).expect("decode").len(), 3);
    }

    #[test]
    fn restamped_batches_validate_with_the_new_identity() {
        let mut b = BatchBuilder::new(Compression::None, 1_000);
        b.push(1_000, Some(b"k"), Some(b"v"), &[]);
        b.push(1_001, None, Some(b"w"), &[]);
        let batch = b.finish(7, 0, 40);
        let again = restamp_producer(&batch, 7, 1, 0);
        let h = validate_batch(&again).expect("valid after restamp");
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 1, 0)
        );
        assert_eq!(h.record_count, 2);
        assert_eq!(&again[HEADER_LEN..], &batch[HEADER_LEN..]);
    }

    #[test]
    fn last_sequence_wraps_to_zero_like_kafka() {
        let header = |base: i32, count: u32| {
            let mut b = BatchBuilder::new(Compression::None, 0);
            for _ in 0..count {
                b.push(0, None, Some(b"v"), &[]);
            }
            validate_batch(&b.finish(1, 0, base)).expect("valid")
        };
        assert_eq!(header(0, 3).last_sequence(), 2);
        assert_eq!(header(i32::MAX - 1, 2).last_sequence(), i32::MAX);
        assert_eq!(header(i32::MAX - 1, 3).last_sequence(), 0);
        assert_eq!(header(i32::MAX - 1, 5).last_sequence(), 2);
        assert_eq!(header(-1, 5).last_sequence(), -1);
    }

    /// A batch with the given header fields and records section, its
    /// length and CRC made consistent: what a buggy or hostile client with
    /// a correct CRC routine can send.
    fn forge(count: u32, attributes: u16, max_ts: i64, section: &[u8]) -> Vec<u8> {
        let mut raw = sample(Compression::None)[..HEADER_LEN].to_vec();
        raw.extend_from_slice(section);
        let length = (raw.len() - LENGTH_PREFIX) as u32;
        raw[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&length.to_le_bytes());
        raw[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_le_bytes());
        raw[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&count.to_le_bytes());
        raw[OFF_MAX_TS..OFF_MAX_TS + 8].copy_from_slice(&max_ts.to_le_bytes());
        let crc = crc32c::crc32c(&raw[CRC_START..]);
        raw[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
        raw
    }

    /// Header check plus record walk, as the broker does on produce.
    fn produce_check(raw: &[u8]) -> Result<BatchHeader, BatchError> {
        let h = validate_batch(raw)?;
        validate_records(&h, raw, DEFAULT_MAX_DECOMPRESSED)?;
        Ok(h)
    }

    /// The uncompressed records section of `sample` (3 records, max ts 1005).
    fn sample_section() -> Vec<u8> {
        sample(Compression::None)[HEADER_LEN..].to_vec()
    }

    #[test]
    fn builder_batches_pass_record_validation() {
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            produce_check(&sample(c)).expect("valid");
            produce_check(&build_new(c, &rich_inputs(), None)).expect("valid rich");
        }
    }

    #[test]
    fn record_count_must_match_the_records_present() {
        let section = sample_section();
        for (claimed, found) in [(5, 3), (2, 3), (u32::MAX, 3), (4, 3)] {
            let raw = forge(claimed, 0, 1_005, &section);
            assert_eq!(
                produce_check(&raw).map(|_| ()),
                Err(BatchError::RecordCount {
                    claimed,
                    found: found.min(claimed.saturating_add(1))
                }),
                "claimed {claimed}"
            );
        }
        // 2 claimed for 3: the error says "or more".
        let e = produce_check(&forge(2, 0, 1_005, &section)).expect_err("refused");
        assert!(e.to_string().contains("holds 3 or more"), "{e}");
    }

    #[test]
    fn garbage_empty_and_trailing_sections_are_refused() {
        assert!(produce_check(&forge(1, 0, 1_000, &[])).is_err());
        assert!(produce_check(&forge(1, 0, 1_000, &[0xff; 40])).is_err());
        let mut long = sample_section();
        long.push(0);
        assert!(produce_check(&forge(3, 0, 1_005, &long)).is_err());
    }

    /// One record `{attributes, ts_delta 0, offset_delta 0, key, value "v", headers}`.
    fn one_record(attributes: u8, key_len: i64, header: Option<&[u8]>) -> Vec<u8> {
        let mut body = BytesMut::new();
        body.put_u8(attributes);
        put_varint(&mut body, zigzag(0));
        put_varint(&mut body, 0);
        put_varint(&mut body, zigzag(key_len));
        if key_len > 0 {
            body.put_slice(&vec![b'k'; key_len as usize]);
        }
        put_varint(&mut body, zigzag(1));
        body.put_u8(b'v');
        match header {
            None => put_varint(&mut body, 0),
            Some(name) => {
                put_varint(&mut body, 1);
                put_varint(&mut body, name.len() as u64);
                body.put_slice(name);
                put_varint(&mut body, 0);
            }
        }
        let mut rec = BytesMut::new();
        put_varint(&mut rec, body.len() as u64);
        rec.put_slice(&body);
        rec.to_vec()
    }

    #[test]
    fn malformed_records_are_refused() {
        // The well-formed control case.
        produce_check(&forge(1, 0, 1_000, &one_record(0, 1, Some(b"h")))).expect("valid");
        produce_check(&forge(1, 0, 1_000, &one_record(0, -1, None))).expect("null key");
        let bad = [
            ("key length -2", one_record(0, -2, None)),
            ("record attributes", one_record(1, 1, None)),
            ("header name", one_record(0, 1, Some(&[0xff, 0xfe]))),
        ];
        for (what, section) in bad {
            assert!(
                matches!(
                    produce_check(&forge(1, 0, 1_000, &section)),
                    Err(BatchError::MalformedRecord(_))
                ),
                "{what} accepted"
            );
        }
        // Reserved batch attribute bits.
        let raw = forge(3, 1 << 5, 1_005, &sample_section());
        assert_eq!(
            produce_check(&raw).map(|_| ()),
            Err(BatchError::InvalidHeader("reserved attribute bits are set"))
        );
        // Records out of position: swap in an offset delta of 1 for 0.
        let mut section = one_record(0, 1, None);
        section[3] = 1; // length, attributes, ts delta, offset delta
        assert!(produce_check(&forge(1, 0, 1_000, &section)).is_err());
    }

    #[test]
    fn max_timestamp_must_be_the_largest_timestamp() {
        let section = sample_section();
        produce_check(&forge(3, 0, 1_005, &section)).expect("exact");
        for stated in [1_000, 1_004, 1_006, i64::MAX] {
            assert_eq!(
                produce_check(&forge(3, 0, stated, &section)).map(|_| ()),
                Err(BatchError::MaxTimestamp {
                    stated,
                    actual: 1_005
                })
            );
        }
    }

    #[test]
    fn lying_lz4_sections_are_refused_without_allocating_the_claim() {
        let records = sample_section();
        // Claims 1 GiB.
        let mut payload = (1u32 << 30).to_le_bytes().to_vec();
        payload.extend_from_slice(&lz4_flex::block::compress(&records));
        let e = produce_check(&forge(3, 1, 1_005, &payload)).expect_err("refused");
        assert!(matches!(e, BatchError::Decompression(_)), "{e}");
        // Claims fewer bytes than the block holds, and more.
        for claim in [records.len() - 1, records.len() + 1] {
            let mut payload = (claim as u32).to_le_bytes().to_vec();
            payload.extend_from_slice(&lz4_flex::block::compress(&records));
            assert!(
                produce_check(&forge(3, 1, 1_005, &payload)).is_err(),
                "{claim}"
            );
        }
        // Within the limit but beyond what LZ4 can inflate a tiny block to:
        // refused before the claim is allocated.
        let mut payload = (60u32 << 20).to_le_bytes().to_vec();
        payload.extend_from_slice(&lz4_flex::block::compress(&records));
        let e = produce_check(&forge(3, 1, 1_005, &payload)).expect_err("refused");
        assert!(e.to_string().contains("cannot inflate"), "{e}");
        // An lz4 frame where a block is specified.
        let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut enc, &records).expect("frame");
        let frame = enc.finish().expect("frame");
        assert!(produce_check(&forge(3, 1, 1_005, &frame)).is_err());
    }

    #[test]
    fn lying_zstd_sections_are_refused() {
        let records = sample_section();
        // A bomb: 100 MiB of zeros, stated in the frame header.
        let bomb = zstd::bulk::compress(&vec![0u8; 100 << 20], 1).expect("compress");
        let e = produce_check(&forge(3, 2, 1_005, &bomb)).expect_err("refused");
        assert!(e.to_string().contains("limit"), "{e}");
        // The same bomb streamed, without a stated size.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("encoder");
        enc.include_contentsize(false).expect("flag");
        for _ in 0..100 {
            std::io::Write::write_all(&mut enc, &vec![0u8; 1 << 20]).expect("write");
        }
        let streamed = enc.finish().expect("finish");
        assert!(matches!(
            produce_check(&forge(3, 2, 1_005, &streamed)),
            Err(BatchError::Decompression(_))
        ));
        // A streamed frame asking for a 1 GiB window: refused, not allocated.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("encoder");
        enc.include_contentsize(false).expect("flag");
        enc.long_distance_matching(true).expect("ldm");
        enc.window_log(30).expect("window");
        std::io::Write::write_all(&mut enc, &records).expect("write");
        let wide = enc.finish().expect("finish");
        assert!(matches!(
            produce_check(&forge(3, 2, 1_005, &wide)),
            Err(BatchError::Decompression(_))
        ));
        // Two frames where the format says one.
        let frame = zstd::bulk::compress(&records, 1).expect("compress");
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        produce_check(&forge(3, 2, 1_005, &frame)).expect("one frame is fine");
        assert!(produce_check(&forge(3, 2, 1_005, &two)).is_err());
        // A streamed frame of the real records is fine.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).expect("encoder");
        enc.include_contentsize(false).expect("flag");
        std::io::Write::write_all(&mut enc, &records).expect("write");
        let streamed = enc.finish().expect("finish");
        produce_check(&forge(3, 2, 1_005, &streamed)).expect("streamed frame");
    }

    #[test]
    fn whatever_validation_accepts_every_consumer_can_decode() {
        // Every byte of every codec's batch, flipped, with the CRC fixed:
        // validation either refuses it or the decoder reads it back.
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let raw = sample(c).to_vec();
            for i in CRC_START..raw.len() {
                for flip in [0x01, 0x02, 0x10, 0x40, 0x80, 0xff] {
                    let mut bad = raw.clone();
                    bad[i] ^= flip;
                    let crc = crc32c::crc32c(&bad[CRC_START..]);
                    bad[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_le_bytes());
                    if let Ok(h) = produce_check(&bad) {
                        let bad = Bytes::from(bad);
                        let recs = decode_records(&h, &bad).expect("accepted must decode");
                        assert_eq!(recs.len(), h.record_count as usize);
                    }
                }
            }
        }
    }

    /// Cost of produce validation per batch (run with `--release --ignored
    /// --nocapture`): 256 KiB batches of 1 KiB records, as the SDK sends.
    #[test]
    #[ignore]
    fn validation_cost() {
        // Random lowercase letters, as `tidelog bench` sends.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut letter = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b'a' + (seed % 26) as u8
        };
        let values: Vec<Vec<u8>> = (0..256)
            .map(|_| (0..1024).map(|_| letter()).collect())
            .collect();
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let mut b = BatchBuilder::new(c, 1_000);
            for value in &values {
                b.push(1_000, None, Some(value), &[]);
            }
            let raw = b.finish(-1, -1, -1);
            let h = validate_batch(&raw).expect("valid");
            let n = 2_000;
            let t = std::time::Instant::now();
            for _ in 0..n {
                validate_records(&h, &raw, DEFAULT_MAX_DECOMPRESSED).expect("valid");
            }
            let per = t.elapsed() / n;
            let t = std::time::Instant::now();
            for _ in 0..n {
                validate_batch(&raw).expect("valid");
            }
            let crc = t.elapsed() / n;
            eprintln!(
                "{c:?}: {} bytes on the wire, records walk {per:?} per batch ({:.0} MB/s of record data), header+CRC {crc:?}",
                raw.len(),
                (256.0 * 1024.0) / per.as_secs_f64() / 1e6
            );
        }
    }
}
