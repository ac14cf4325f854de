//! A topic: its persisted metadata (`topic.json`) and its partitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::error::BrokerError;
use super::partition::Partition;
use super::topic_config;
use crate::log::LogConfig;

/// Longest topic name (Kafka's limit).
pub const MAX_NAME_LEN: usize = 249;
/// Most partitions per topic.
pub const MAX_PARTITIONS: u32 = 10_000;
/// Version of the `topic.json` format.
pub const META_VERSION: u32 = 1;

/// Checks a topic name against Kafka's rules.
pub fn validate_name(name: &str) -> Result<(), BrokerError> {
    let bad = |reason| {
        Err(BrokerError::InvalidTopicName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// What `topic.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Format version of this file.
    pub version: u32,
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
    /// Config overrides set by users.
    pub config: BTreeMap<String, String>,
    /// Creation time (ms).
    pub created_ms: i64,
    /// The partitions this broker hosts (the cluster placed the others on
    /// other brokers); absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted: Option<Vec<u32>>,
}

impl TopicMeta {
    /// Partition numbers this broker hosts.
    pub fn hosted(&self) -> Vec<u32> {
        match &self.hosted {
            Some(h) => h.clone(),
            None => (0..self.partitions).collect(),
        }
    }
}

/// A live topic.
#[derive(Debug)]
pub struct Topic {
    meta: RwLock<TopicMeta>,
    dir: PathBuf,
    partitions: Vec<Arc<Partition>>,
    /// Stops this topic's background tasks (on delete or shutdown).
    cancel: CancellationToken,
}

impl Topic {
    /// Path of a topic's directory.
    pub fn dir_for(topics_dir: &Path, name: &str) -> PathBuf {
        topics_dir.join(name)
    }

    /// Builds a topic from metadata and opened partitions.
    pub fn new(
        meta: TopicMeta,
        dir: PathBuf,
        partitions: Vec<Arc<Partition>>,
        cancel: CancellationToken,
    ) -> Self {
        Topic {
            meta: RwLock::new(meta),
            dir,
            partitions,
            cancel,
        }
    }

    /// The token that stops this topic's tasks.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// New metadata for a topic being created.
    pub fn new_meta(
        name: &str,
        partitions: u32,
        config: BTreeMap<String, String>,
        now_ms: i64,
    ) -> TopicMeta {
        TopicMeta {
            version: META_VERSION,
            name: name.to_string(),
            partitions,
            config,
            created_ms: now_ms,
            hosted: None,
        }
    }

    /// Reads `topic.json`.
    pub fn read_meta(dir: &Path) -> Result<TopicMeta, BrokerError> {
        let path = dir.join("topic.json");
        let bytes = std::fs::read(&path)
            .map_err(|e| BrokerError::Storage(format!("{}: {e}", path.display())))?;
        let meta: TopicMeta = serde_json::from_slice(&bytes)
            .map_err(|e| BrokerError::Storage(format!("{}: {e}", path.display())))?;
        if meta.version != META_VERSION {
            return Err(BrokerError::Storage(format!(
                "{}: unsupported version {}",
                path.display(),
                meta.version
            )));
        }
        Ok(meta)
    }

    /// Writes `topic.json` atomically (temp file, fsync, rename, fsync dir).
    pub fn write_meta(dir: &Path, meta: &TopicMeta) -> Result<(), BrokerError> {
        use std::io::Write;
        let storage = |e: std::io::Error| BrokerError::Storage(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(storage)?;
        let tmp = dir.join("topic.json.tmp");
        let bytes =
            serde_json::to_vec_pretty(meta).map_err(|e| BrokerError::Storage(e.to_string()))?;
        let mut f = std::fs::File::create(&tmp).map_err(storage)?;
        f.write_all(&bytes).map_err(storage)?;
        f.sync_all().map_err(storage)?;
        std::fs::rename(&tmp, dir.join("topic.json")).map_err(storage)?;
        crate::log::partition_log::sync_dir(dir)?;
        Ok(())
    }

    /// Topic name.
    pub fn name(&self) -> String {
        self.meta.read().name.clone()
    }

    /// Directory of the topic.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Copy of the metadata.
    pub fn meta(&self) -> TopicMeta {
        self.meta.read().clone()
    }

    /// The partitions this broker hosts, by number.
    pub fn partitions(&self) -> &[Arc<Partition>] {
        &self.partitions
    }

    /// How many partitions the topic has in all (hosted here or not).
    pub fn partition_count(&self) -> u32 {
        self.meta.read().partitions
    }

    /// One partition: NOT_FOUND past the topic's count, `NotHosted` when
    /// another broker hosts it.
    pub fn partition(&self, id: u32) -> Result<&Arc<Partition>, BrokerError> {
        let count = self.partition_count();
        if id >= count {
            return Err(BrokerError::UnknownPartition {
                topic: self.name(),
                partition: id,
                count,
            });
        }
        self.partitions
            .iter()
            .find(|p| p.id() == id)
            .ok_or_else(|| BrokerError::NotHosted {
                topic: self.name(),
                partition: id,
            })
    }

    /// Applies config changes: validates, persists, then updates every
    /// partition's log.
    pub fn alter_config(
        &self,
        defaults: &LogConfig,
        set: BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<LogConfig, BrokerError> {
        let mut meta = self.meta.write();
        let mut overrides = meta.config.clone();
        for k in delete {
            if !topic_config::KEYS.contains(&k.as_str()) {
                return Err(BrokerError::InvalidConfig(format!("unknown key '{k}'")));
            }
            overrides.remove(k);
        }
        overrides.extend(set);
        let resolved = topic_config::resolve_consistent(defaults, &overrides)?;
        let mut next = meta.clone();
        next.config = overrides;
        Self::write_meta(&self.dir, &next)?;
        *meta = next;
        for p in &self.partitions {
            p.set_config(resolved.clone());
        }
        Ok(resolved)
    }
}
