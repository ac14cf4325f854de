//! The record-batch binary format (specified in `proto/FORMAT.md`).
//!
//! A batch is a fixed 57-byte little-endian header followed by the records
//! section, which may be compressed as a whole. Clients build batches with
//! [`BatchBuilder`]; the broker only reads the header ([`BatchHeader::parse`])
//! and checks the CRC ([`BatchHeader::verify_crc`]); consumers decode records
//! with [`decode_records`].
//!
//! Decoding never panics and never allocates what a length field claims
//! before checking it against the bytes present (or, for decompression,
//! against an explicit limit).

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
pub const DEFAULT_MAX_DECOMPRESSED: usize = 64 * 1024 * 1024;

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

    /// Sequence number of the last record (wrapping like Kafka's).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        self.base_sequence
            .wrapping_add(self.record_count as i32 - 1)
            .max(0)
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
#[derive(Debug)]
pub struct BatchBuilder {
    records: BytesMut,
    count: u32,
    first_timestamp: i64,
    max_timestamp: i64,
    compression: Compression,
}

impl BatchBuilder {
    /// A builder whose first record has timestamp `first_timestamp`.
    pub fn new(compression: Compression, first_timestamp: i64) -> Self {
        BatchBuilder {
            records: BytesMut::new(),
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
        HEADER_LEN + self.records.len()
    }

    /// Appends a record; its offset delta is its position in the batch.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(String, Bytes)],
    ) {
        let mut body =
            BytesMut::with_capacity(16 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
        body.put_u8(0); // record attributes, reserved
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

    /// Finishes the batch with the given producer identity.
    pub fn finish(self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Bytes {
        let payload: Bytes = match self.compression {
            Compression::None => self.records.freeze(),
            Compression::Lz4 => Bytes::from(lz4_flex::compress_prepend_size(&self.records)),
            // Level 1: zstd's fast end; brokers never recompress.
            Compression::Zstd => match zstd::bulk::compress(&self.records, 1) {
                Ok(v) => Bytes::from(v),
                // zstd only fails on allocation problems; fall back to plain.
                Err(_) => {
                    return self.finish_uncompressed(producer_id, producer_epoch, base_sequence)
                }
            },
        };
        build(
            &payload,
            self.compression,
            self.count,
            self.first_timestamp,
            self.max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
        )
    }

    fn finish_uncompressed(
        self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Bytes {
        build(
            &self.records,
            Compression::None,
            self.count,
            self.first_timestamp,
            self.max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn build(
    payload: &[u8],
    compression: Compression,
    count: u32,
    first_ts: i64,
    max_ts: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Bytes {
    let total = HEADER_LEN + payload.len();
    let mut b = BytesMut::with_capacity(total);
    b.put_i64_le(0);
    b.put_u32_le((total - LENGTH_PREFIX) as u32);
    b.put_i32_le(0);
    b.put_u8(MAGIC_V1);
    b.put_u32_le(0); // CRC, filled below
    b.put_u16_le(compression.bits());
    b.put_u32_le(count);
    b.put_i64_le(first_ts);
    b.put_i64_le(max_ts);
    b.put_i64_le(producer_id);
    b.put_i16_le(producer_epoch);
    b.put_i32_le(base_sequence);
    b.put_slice(payload);
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

/// A bounds-checked reader over a records section.
struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    fn varint(&mut self) -> Result<u64, BatchError> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or(BatchError::MalformedRecord("varint runs past the end"))?;
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

    fn take(&mut self, len: u64) -> Result<Bytes, BatchError> {
        let remaining = (self.buf.len() - self.pos) as u64;
        if len > remaining {
            return Err(BatchError::MalformedRecord(
                "field length exceeds the record",
            ));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(self.buf.slice(start..self.pos))
    }

    fn nullable(&mut self) -> Result<Option<Bytes>, BatchError> {
        let len = unzigzag(self.varint()?);
        match len {
            -1 => Ok(None),
            l if l < 0 => Err(BatchError::MalformedRecord("negative length")),
            l => Ok(Some(self.take(l as u64)?)),
        }
    }
}

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
        Compression::Lz4 => {
            if payload.len() < 4 {
                return Err(BatchError::Decompression("lz4 size prefix missing".into()));
            }
            let claimed = le_u32(&payload, 0) as usize;
            if claimed > max_decompressed {
                return Err(BatchError::Decompression(format!(
                    "claims {claimed} bytes, limit is {max_decompressed}"
                )));
            }
            lz4_flex::decompress_size_prepended(&payload)
                .map(Bytes::from)
                .map_err(|e| BatchError::Decompression(e.to_string()))
        }
        Compression::Zstd => {
            use std::io::Read;
            let decoder = zstd::stream::read::Decoder::new(&payload[..])
                .map_err(|e| BatchError::Decompression(e.to_string()))?;
            let mut out = Vec::new();
            // Read one byte past the limit to detect an oversized frame
            // without trusting the frame's declared size.
            decoder
                .take(max_decompressed as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| BatchError::Decompression(e.to_string()))?;
            if out.len() > max_decompressed {
                return Err(BatchError::Decompression(format!(
                    "more than {max_decompressed} bytes"
                )));
            }
            Ok(Bytes::from(out))
        }
    }
}

/// Decodes every record of one complete batch, with absolute offsets and
/// timestamps.
pub fn decode_records(header: &BatchHeader, batch: &Bytes) -> Result<Vec<Record>, BatchError> {
    let section = records_section(header, batch, DEFAULT_MAX_DECOMPRESSED)?;
    // Each record takes at least 6 bytes, which bounds the allocation.
    let mut out = Vec::with_capacity((header.record_count as usize).min(section.len() / 6 + 1));
    let mut r = Reader {
        buf: section,
        pos: 0,
    };
    for _ in 0..header.record_count {
        let len = r.varint()?;
        let body = r.take(len)?;
        let mut rec = Reader { buf: body, pos: 0 };
        let _attributes = rec.take(1)?;
        let ts_delta = unzigzag(rec.varint()?);
        let offset_delta = rec.varint()?;
        if offset_delta >= u64::from(header.record_count) {
            return Err(BatchError::MalformedRecord(
                "offset delta beyond record count",
            ));
        }
        let key = rec.nullable()?;
        let value = rec.nullable()?;
        let header_count = rec.varint()?;
        let remaining = (rec.buf.len() - rec.pos) as u64;
        if header_count > remaining / 2 {
            return Err(BatchError::MalformedRecord(
                "header count exceeds the record",
            ));
        }
        let mut headers = Vec::with_capacity(header_count as usize);
        for _ in 0..header_count {
            let nlen = rec.varint()?;
            let name = rec.take(nlen)?;
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| BatchError::MalformedRecord("header name is not UTF-8"))?;
            let vlen = rec.varint()?;
            headers.push((name, rec.take(vlen)?));
        }
        out.push(Record {
            offset: header.base_offset + offset_delta as i64,
            timestamp: header.first_timestamp.wrapping_add(ts_delta),
            key,
            value,
            headers,
        });
    }
    if r.pos != r.buf.len() {
        return Err(BatchError::MalformedRecord(
            "bytes left after the last record",
        ));
    }
    Ok(out)
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
}
