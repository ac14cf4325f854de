//! Rebuilding a data directory from the bucket, and the start-up check that
//! refuses to start a fresh log over a bucket that already holds topics.

use std::io::Write;
use std::path::Path;

use super::error::TieringError;
use super::manifest::{manifest_key, PartitionManifest};
use super::store::RemoteStore;
use crate::broker::topic::{Topic, TopicMeta};

/// Whether `data_dir` holds any topic.
pub fn data_dir_has_topics(data_dir: &Path) -> bool {
    let topics = data_dir.join("topics");
    std::fs::read_dir(&topics)
        .map(|rd| rd.flatten().any(|e| e.path().join("topic.json").exists()))
        .unwrap_or(false)
}

/// Refuses to start on an empty data directory whose bucket holds topics.
pub async fn check_start(store: &RemoteStore, data_dir: &Path) -> Result<(), TieringError> {
    if data_dir_has_topics(data_dir) {
        return Ok(());
    }
    let Some(snap) = super::read_snapshot(store).await? else {
        return Ok(());
    };
    if snap.topics.is_empty() {
        return Ok(());
    }
    Err(TieringError::BucketNotEmpty {
        data_dir: data_dir.display().to_string(),
        url: store.url().to_string(),
        topics: snap.topics.len(),
        names: snap
            .topics
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
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

fn write_io(path: &Path) -> impl Fn(std::io::Error) -> TieringError + '_ {
    move |e| TieringError::io(path, e)
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
) -> Result<RestoreSummary, TieringError> {
    if data_dir_has_topics(data_dir) {
        return Err(TieringError::InvalidUrl {
            url: data_dir.display().to_string(),
            reason: "the data directory already holds topics; restore needs an empty one".into(),
        });
    }
    let snap = super::read_snapshot(store)
        .await?
        .ok_or_else(|| TieringError::Decode {
            key: super::manifest::CLUSTER_KEY.into(),
            detail: format!(
                "{} holds no cluster snapshot: nothing to restore",
                store.url()
            ),
        })?;
    for name in only {
        if !snap.topics.iter().any(|t| &t.name == name) {
            return Err(TieringError::Decode {
                key: super::manifest::CLUSTER_KEY.into(),
                detail: format!("topic '{name}' is not in the bucket's snapshot"),
            });
        }
    }
    let chosen: Vec<_> = snap
        .topics
        .iter()
        .filter(|t| only.is_empty() || only.contains(&t.name))
        .collect();
    let total_parts: u32 = chosen.iter().map(|t| t.partitions).sum();
    let topics_dir = data_dir.join("topics");
    std::fs::create_dir_all(&topics_dir).map_err(write_io(&topics_dir))?;
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
            let pdir = dir.join(p.to_string());
            std::fs::create_dir_all(&pdir).map_err(write_io(&pdir))?;
            let log = pdir.join(format!("{end:020}.log"));
            std::fs::File::create(&log)
                .and_then(|f| f.sync_all())
                .map_err(write_io(&log))?;
            crate::log::partition_log::sync_dir(&pdir)
                .map_err(|e| TieringError::io(&pdir, std::io::Error::other(e.to_string())))?;
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
            version: crate::broker::topic::META_VERSION,
            name: t.name.clone(),
            partitions: t.partitions,
            config: t.config.clone(),
            created_ms: t.created_ms,
        };
        Topic::write_meta(&dir, &meta)
            .map_err(|e| TieringError::io(&dir, std::io::Error::other(e.to_string())))?;
        summary.topics += 1;
    }
    crate::log::partition_log::sync_dir(&topics_dir)
        .map_err(|e| TieringError::io(&topics_dir, std::io::Error::other(e.to_string())))?;
    // Committed offsets of consumer groups, for the restored topics.
    let groups_dir = data_dir.join("groups");
    let offsets = crate::groups::offsets::OffsetStore::open(&groups_dir)
        .map_err(|e| TieringError::io(&groups_dir, std::io::Error::other(e.to_string())))?;
    for g in &snap.groups {
        let entries: Vec<_> = g
            .offsets
            .iter()
            .filter(|o| only.is_empty() || only.contains(&o.topic))
            .map(|o| {
                (
                    (o.topic.clone(), o.partition),
                    crate::groups::offsets::Committed {
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
        offsets
            .commit(&g.group_id, entries)
            .map_err(|e| TieringError::io(&groups_dir, std::io::Error::other(e.to_string())))?;
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
