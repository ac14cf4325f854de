//! The start-up refusal: a broker never starts a fresh log over a bucket
//! that already holds topics (their offsets would be reused).

use std::path::Path;

use super::{read_snapshot, RestoreError};
use crate::tiering::store::RemoteStore;

/// Whether `data_dir` holds any topic.
pub fn data_dir_has_topics(data_dir: &Path) -> bool {
    let topics = data_dir.join("topics");
    std::fs::read_dir(&topics)
        .map(|rd| rd.flatten().any(|e| e.path().join("topic.json").exists()))
        .unwrap_or(false)
}

/// Refuses to start on an empty data directory whose bucket holds topics.
pub async fn check_start(store: &RemoteStore, data_dir: &Path) -> Result<(), RestoreError> {
    if data_dir_has_topics(data_dir) {
        return Ok(());
    }
    let Some(snap) = read_snapshot(store).await? else {
        return Ok(());
    };
    if snap.topics.is_empty() {
        return Ok(());
    }
    Err(RestoreError::BucketHoldsTopics {
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
