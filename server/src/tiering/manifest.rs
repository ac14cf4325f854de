//! The bucket's self-description: the key layout and the per-partition
//! manifest (versioned JSON). The cluster snapshot's key is here; its
//! format belongs to `crate::cluster_snapshot`.
//!
//! Key layout, relative to the store's prefix (see `ARCHITECTURE.md`):
//! ```text
//! cluster.json                                              cluster snapshot
//! topics/<topic>/<incarnation>/<partition>/manifest.json    partition manifest
//! topics/<topic>/<incarnation>/<partition>/segments/<base>-<end>-<crc>.log
//!                                                     .index, .timeindex
//! ```
//! `<incarnation>` is the topic's creation time (ms), so a topic deleted and
//! created again never mixes with the old one's objects. `<base>` and
//! `<end>` are 20-digit offsets (first offset, next offset after the last),
//! `<crc>` the CRC32C of the segment's bytes in 8 hex digits: the key is a
//! function of the content, so a retried upload writes the same key.

use serde::{Deserialize, Serialize};

use super::error::TieringError;

/// Format version of [`PartitionManifest`].
pub const MANIFEST_VERSION: u32 = 1;
/// Key of the cluster snapshot (its format: `crate::cluster_snapshot`).
pub const CLUSTER_KEY: &str = "cluster.json";
/// Key of the prefix's owner (the cluster and broker whose data it is).
pub const OWNER_KEY: &str = "owner.json";

/// Key prefix of one partition.
pub fn partition_prefix(topic: &str, incarnation: i64, partition: u32) -> String {
    format!("topics/{topic}/{incarnation}/{partition}")
}

/// Key of a partition's manifest.
pub fn manifest_key(topic: &str, incarnation: i64, partition: u32) -> String {
    format!(
        "{}/manifest.json",
        partition_prefix(topic, incarnation, partition)
    )
}

/// Key stem of a segment's objects (add `.log`, `.index`, `.timeindex`).
pub fn segment_stem(
    topic: &str,
    incarnation: i64,
    partition: u32,
    base: i64,
    end: i64,
    crc: u32,
) -> String {
    format!(
        "{}/segments/{base:020}-{end:020}-{crc:08x}",
        partition_prefix(topic, incarnation, partition)
    )
}

/// Who wrote a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    /// Broker id.
    pub broker_id: u32,
    /// Writer epoch: the broker process's start time (ms), unique per run.
    pub epoch: i64,
}

/// One uploaded segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSegment {
    /// First offset.
    pub base_offset: i64,
    /// Offset after the last record.
    pub end_offset: i64,
    /// Timestamp of the first batch (ms).
    pub first_timestamp: i64,
    /// Largest timestamp in the segment (ms).
    pub max_timestamp: i64,
    /// Bytes of the `.log` object.
    pub size_bytes: u64,
    /// CRC32C of the `.log` object.
    pub crc32c: u32,
    /// Bytes of the `.index` object.
    pub index_bytes: u64,
    /// Bytes of the `.timeindex` object.
    pub time_index_bytes: u64,
    /// Key stem of the objects.
    pub key: String,
    /// Epoch of the writer that uploaded it.
    pub writer_epoch: i64,
    /// When it was uploaded (ms).
    pub uploaded_ms: i64,
}

impl RemoteSegment {
    /// Key of the data object.
    pub fn log_key(&self) -> String {
        format!("{}.log", self.key)
    }
    /// Key of the offset index object.
    pub fn index_key(&self) -> String {
        format!("{}.index", self.key)
    }
    /// Key of the time index object.
    pub fn time_index_key(&self) -> String {
        format!("{}.timeindex", self.key)
    }
}

/// The manifest of one partition: the uploaded segments, oldest first,
/// contiguous in offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionManifest {
    /// Format version.
    pub version: u32,
    /// Topic name.
    pub topic: String,
    /// Topic incarnation (creation time, ms).
    pub incarnation: i64,
    /// Partition number.
    pub partition: u32,
    /// Last writer.
    pub writer: Writer,
    /// When it was last written (ms).
    pub updated_ms: i64,
    /// Segments, by base offset.
    pub segments: Vec<RemoteSegment>,
    /// Offset after the last record ever uploaded; stays when remote
    /// retention empties `segments`, so uploads continue from there.
    #[serde(default)]
    pub uploaded_end: i64,
}

impl PartitionManifest {
    /// An empty manifest.
    pub fn new(topic: &str, incarnation: i64, partition: u32, writer: Writer) -> Self {
        PartitionManifest {
            version: MANIFEST_VERSION,
            topic: topic.to_string(),
            incarnation,
            partition,
            writer,
            updated_ms: 0,
            segments: Vec::new(),
            uploaded_end: 0,
        }
    }

    /// First offset in the bucket, if any.
    pub fn start_offset(&self) -> Option<i64> {
        self.segments.first().map(|s| s.base_offset)
    }

    /// Offset after the last uploaded record, if any.
    pub fn end_offset(&self) -> Option<i64> {
        self.segments
            .last()
            .map(|s| s.end_offset)
            .or((self.uploaded_end > 0).then_some(self.uploaded_end))
    }

    /// Bytes of all `.log` objects.
    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size_bytes).sum()
    }

    /// The segment holding `offset`, or the first one after it.
    pub fn segment_for(&self, offset: i64) -> Option<&RemoteSegment> {
        self.segments
            .iter()
            .find(|s| s.end_offset > offset && s.base_offset <= offset)
            .or_else(|| self.segments.iter().find(|s| s.base_offset > offset))
    }

    /// Appends a segment; refuses one that overlaps what is there.
    pub fn push(&mut self, seg: RemoteSegment) -> Result<(), String> {
        if let Some(end) = self.end_offset() {
            if seg.base_offset < end {
                return Err(format!(
                    "segment at {} overlaps the manifest's end {end}",
                    seg.base_offset
                ));
            }
        }
        self.uploaded_end = self.uploaded_end.max(seg.end_offset);
        self.segments.push(seg);
        Ok(())
    }

    /// JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain structs of strings and integers cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses and checks a manifest.
    pub fn decode(key: &str, bytes: &[u8]) -> Result<Self, TieringError> {
        let err = |detail: String| TieringError::Decode {
            key: key.to_string(),
            detail,
        };
        let m: PartitionManifest = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
        if m.version != MANIFEST_VERSION {
            return Err(err(format!("unsupported manifest version {}", m.version)));
        }
        for w in m.segments.windows(2) {
            if w[1].base_offset < w[0].end_offset {
                return Err(err(format!(
                    "segments overlap at offset {}",
                    w[1].base_offset
                )));
            }
        }
        if m.segments.iter().any(|s| s.end_offset <= s.base_offset) {
            return Err(err("a segment has an empty offset range".into()));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: i64, end: i64) -> RemoteSegment {
        RemoteSegment {
            base_offset: base,
            end_offset: end,
            first_timestamp: 1,
            max_timestamp: 2,
            size_bytes: 100,
            crc32c: 0xdead_beef,
            index_bytes: 8,
            time_index_bytes: 16,
            key: segment_stem("t", 7, 0, base, end, 0xdead_beef),
            writer_epoch: 5,
            uploaded_ms: 9,
        }
    }

    #[test]
    fn key_layout_is_stable() {
        assert_eq!(
            manifest_key("orders", 42, 3),
            "topics/orders/42/3/manifest.json"
        );
        let s = seg(0, 17);
        assert_eq!(
            s.log_key(),
            "topics/t/7/0/segments/00000000000000000000-00000000000000000017-deadbeef.log"
        );
        assert!(s.index_key().ends_with("-deadbeef.index"));
        assert!(s.time_index_key().ends_with("-deadbeef.timeindex"));
    }

    #[test]
    fn manifest_round_trips_and_rejects_bad_input() {
        let w = Writer {
            broker_id: 1,
            epoch: 5,
        };
        let mut m = PartitionManifest::new("t", 7, 0, w);
        m.push(seg(0, 10)).expect("first");
        m.push(seg(10, 20)).expect("second");
        assert!(m.push(seg(15, 30)).is_err(), "overlap refused");
        assert_eq!(m.start_offset(), Some(0));
        assert_eq!(m.end_offset(), Some(20));
        assert_eq!(m.total_bytes(), 200);
        assert_eq!(m.segment_for(12).map(|s| s.base_offset), Some(10));
        assert_eq!(m.segment_for(20), None);
        let mut emptied = m.clone();
        emptied.segments.clear();
        assert_eq!(emptied.start_offset(), None);
        assert_eq!(
            emptied.end_offset(),
            Some(20),
            "uploads continue after retention"
        );
        let bytes = m.encode();
        assert_eq!(PartitionManifest::decode("k", &bytes).expect("decode"), m);
        let mut bad = m.clone();
        bad.version = 99;
        assert!(PartitionManifest::decode("k", &bad.encode()).is_err());
        let mut overlap = m.clone();
        overlap.segments[1].base_offset = 5;
        assert!(PartitionManifest::decode("k", &overlap.encode()).is_err());
        assert!(PartitionManifest::decode("k", b"{not json").is_err());
    }
}
