//! `tidelog restore`: rebuilds a data directory from the bucket — topics
//! from the cluster snapshot, per partition an empty log starting at the
//! bucket's end offset, and the groups' committed offsets — plus the
//! start-up check that refuses a fresh log over a bucket with topics.
//! An application of the log, the broker, the groups and tiering, so it
//! sits above all of them.

mod error;
mod start_check;

use std::io::Write;
use std::path::Path;

pub use error::RestoreError;
pub use start_check::{check_start, data_dir_has_topics};

use crate::broker::topic::{Topic, TopicMeta, META_VERSION};
use crate::cluster_snapshot::ClusterSnapshot;
use crate::groups::offsets::{Committed, OffsetStore};
use crate::log::{LogConfig, PartitionLog};
use crate::tiering::manifest::{manifest_key, PartitionManifest};
use crate::tiering::store::RemoteStore;

/// The bucket's cluster snapshot, if it has one.
pub async fn read_snapshot(store: &RemoteStore) -> Result<Option<ClusterSnapshot>, RestoreError> {
    match crate::tiering::get_cluster_snapshot(store).await? {
        Some(bytes) => Ok(Some(ClusterSnapshot::decode(&bytes)?)),
        None => Ok(None),
    }
}

fn create_dir(path: &Path) -> Result<(), RestoreError> {
    std::fs::create_dir_all(path).map_err(|source| RestoreError::CreateDir {
        path: path.to_path_buf(),
        source,
    })
}

/// What was restored.
#[derive(Debug, Default, Clone)]
pub struct RestoreSummary {
    /// Topics written.
    pub topics: usize,
    /// Partitions written.
    pub partitions: usize,
    /// Bytes of log the bucket holds for them.
    pub remote_bytes: u64,
    /// Consumer groups whose committed offsets were restored.
    pub groups: usize,
}

/// Rebuilds `data_dir` from the bucket: `topic.json` for every topic (or
/// only `only`), and per partition an empty log starting at the bucket's
/// end offset, so the broker serves the bucket's offsets and producers
/// continue after them. Progress lines go to `progress`.
pub async fn restore(
    store: &RemoteStore,
    data_dir: &Path,
    only: &[String],
    progress: &mut dyn Write,
) -> Result<RestoreSummary, RestoreError> {
    if data_dir_has_topics(data_dir) {
        return Err(RestoreError::DataDirHoldsTopics(data_dir.to_path_buf()));
    }
    let snap = read_snapshot(store)
        .await?
        .ok_or_else(|| RestoreError::NoSnapshot {
            url: store.url().to_string(),
        })?;
    if let Some(name) = only
        .iter()
        .find(|name| !snap.topics.iter().any(|t| &t.name == *name))
    {
        return Err(RestoreError::UnknownTopic(name.clone()));
    }
    let chosen: Vec<_> = snap
        .topics
        .iter()
        .filter(|t| only.is_empty() || only.contains(&t.name))
        .collect();
    // The restored broker forms (or joins) a cluster of its own: the old
    // owner's claim on the prefix is released to it.
    store
        .delete(crate::tiering::manifest::OWNER_KEY)
        .await
        .map_err(RestoreError::Tiering)?;
    let total_parts: u32 = chosen.iter().map(|t| t.partitions).sum();
    let topics_dir = data_dir.join("topics");
    create_dir(&topics_dir)?;
    let mut summary = RestoreSummary::default();
    let mut done = 0u32;
    for t in chosen {
        let dir = Topic::dir_for(&topics_dir, &t.name);
        for p in 0..t.partitions {
            let key = manifest_key(&t.name, t.created_ms, p);
            let (start, end, bytes, segs) = match store.get(&key).await? {
                Some((b, _)) => {
                    let m = PartitionManifest::decode(&key, &b)?;
                    (
                        m.start_offset().unwrap_or(0),
                        m.end_offset().unwrap_or(0),
                        m.total_bytes(),
                        m.segments.len(),
                    )
                }
                None => (0, 0, 0, 0),
            };
            // Producers continue after the bucket's last offset.
            let now = chrono::Utc::now().timestamp_millis();
            PartitionLog::create_at(&dir.join(p.to_string()), end, LogConfig::default(), now)?;
            done += 1;
            summary.partitions += 1;
            summary.remote_bytes += bytes;
            let _ = writeln!(
                progress,
                "[{done}/{total_parts}] {}/{p}: offsets {start}..{end} in the bucket ({segs} segments, {bytes} bytes); producing continues at {end}",
                t.name
            );
        }
        let meta = TopicMeta {
            version: META_VERSION,
            name: t.name.clone(),
            partitions: t.partitions,
            config: t.config.clone(),
            created_ms: t.created_ms,
            hosted: None,
        };
        Topic::write_meta(&dir, &meta)?;
        summary.topics += 1;
    }
    crate::log::partition_log::sync_dir(&topics_dir)?;
    // Committed offsets of consumer groups, for the restored topics.
    let groups_dir = data_dir.join("groups");
    let offsets = OffsetStore::open(&groups_dir)?;
    for g in &snap.groups {
        let entries: Vec<_> = g
            .offsets
            .iter()
            .filter(|o| only.is_empty() || only.contains(&o.topic))
            .map(|o| {
                (
                    (o.topic.clone(), o.partition),
                    Committed {
                        offset: o.offset,
                        metadata: o.metadata.clone(),
                        commit_ms: o.commit_ms,
                    },
                )
            })
            .collect();
        if entries.is_empty() {
            continue;
        }
        offsets.commit(&g.group_id, entries)?;
        summary.groups += 1;
    }
    let _ = writeln!(
        progress,
        "restored {} topic(s), {} partition(s), {} bytes in the bucket, offsets of {} consumer group(s); start the broker with `tidelog serve --data-dir {} --object-store {}`",
        summary.topics,
        summary.partitions,
        summary.remote_bytes,
        summary.groups,
        data_dir.display(),
        store.url()
    );
    Ok(summary)
}
