//! What this broker last knew of a partition's manifest, kept beside the
//! partition's log (`remote-state.json`). Without it a restart cannot tell
//! a bucket that lost its data (manifest gone, log start jumped) from one
//! that was never written to.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::TieringError;
use super::manifest::PartitionManifest;

/// File name in the partition directory.
pub const FILE: &str = "remote-state.json";

/// The last manifest this broker read or wrote, in brief.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteCheckpoint {
    /// True once a manifest existed in the bucket.
    pub had_manifest: bool,
    /// First offset in the bucket then (`None`: no segments).
    pub start_offset: Option<i64>,
    /// Offset after the last uploaded record then.
    pub end_offset: Option<i64>,
}

impl RemoteCheckpoint {
    /// The brief of a manifest that is in the bucket.
    pub fn of(m: &PartitionManifest) -> Self {
        RemoteCheckpoint {
            had_manifest: true,
            start_offset: m.start_offset(),
            end_offset: m.end_offset(),
        }
    }
}

/// Reads the checkpoint of the partition in `dir`; `None` when there is
/// none (first start, a restored partition, an older broker) or it does
/// not parse (it is advisory: only loss detection depends on it).
pub async fn read(dir: &Path) -> Option<RemoteCheckpoint> {
    let path = dir.join(FILE);
    let bytes = tokio::fs::read(&path).await.ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(cp) => Some(cp),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable remote state checkpoint");
            None
        }
    }
}

/// Replaces the checkpoint (temp file, fsync, rename).
pub async fn write(dir: &Path, cp: RemoteCheckpoint) -> Result<(), TieringError> {
    let dir: PathBuf = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let path = dir.join(FILE);
        let tmp = dir.join(format!("{FILE}.new"));
        let io = |p: &Path, e| TieringError::io(p, e);
        // Serialising a struct of integers and booleans cannot fail.
        let bytes = serde_json::to_vec(&cp).unwrap_or_default();
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))
    })
    .await
    .map_err(|e| TieringError::Cache(format!("blocking task failed: {e}")))?
}

/// How the log start changed between what this broker knew (`before`,
/// the bucket's first offset then) and now (`now`: the partition's log
/// start after the bucket was read again), when it moved forward and not
/// by this broker's retention (which records the new start before it
/// commits, so it never shows here).
pub fn unexpected_start_move(before: Option<i64>, now: i64) -> Option<(i64, i64)> {
    match before {
        Some(old) if now > old => Some((old, now)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_and_tolerates_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).await, None);
        let cp = RemoteCheckpoint {
            had_manifest: true,
            start_offset: Some(0),
            end_offset: Some(12_000),
        };
        write(dir.path(), cp).await.expect("write");
        assert_eq!(read(dir.path()).await, Some(cp));
        std::fs::write(dir.path().join(FILE), b"{not json").expect("garbage");
        assert_eq!(read(dir.path()).await, None);
    }

    #[test]
    fn only_a_forward_move_of_a_known_start_is_unexpected() {
        assert_eq!(unexpected_start_move(Some(0), 12_000), Some((0, 12_000)));
        assert_eq!(unexpected_start_move(Some(0), 0), None);
        assert_eq!(unexpected_start_move(Some(500), 100), None);
        assert_eq!(unexpected_start_move(None, 12_000), None);
    }
}
