//! Broker configuration: one struct with safe defaults, read from a TOML
//! file, then `TIDELOG_*` environment variables, then command-line flags
//! (later sources win).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::broker::BrokerSettings;
use crate::log::LogConfig;

/// Errors while loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The config file or an env override is not valid.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Largest `group_heartbeat_interval_ms`: 10 minutes.
pub const MAX_HEARTBEAT_MS: u64 = 10 * 60 * 1000;
/// Largest background interval (`retention_check_interval_ms`,
/// `tiering_upload_interval_ms`, `tiering_max_backoff_ms`): 1 day.
pub const MAX_INTERVAL_MS: u64 = 24 * 60 * 60 * 1000;
/// Largest `tiering_orphan_min_age_ms`: 30 days.
pub const MAX_AGE_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// Every broker setting. Each key can also be set with the environment
/// variable `TIDELOG_<KEY IN UPPER CASE>`, e.g. `TIDELOG_LOG_SEGMENT_BYTES`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Directory for all data.
    pub data_dir: PathBuf,
    /// gRPC listen address.
    pub listen: String,
    /// HTTP listen address (`/metrics`, `/healthz`, `/readyz`).
    pub http_listen: String,
    /// Address given to clients in metadata; empty means `listen`.
    pub advertised_address: String,
    /// This broker's id (older name of `node_id`; `node_id` wins when set).
    pub broker_id: u32,
    /// This broker's id in the cluster (`--node-id`).
    pub node_id: u32,
    /// Address for broker-to-broker traffic, the metadata quorum
    /// (`--cluster-listen`); empty for a one-node cluster.
    pub cluster_listen: String,
    /// The quorum's voters, `1=host:port,2=host:port,...` where each
    /// address is that broker's `cluster_listen` (`--voters`); empty: this
    /// broker alone.
    pub voters: String,
    /// A broker that has not heartbeated the controller for this long is
    /// fenced (ms, 100 to 600000).
    pub broker_session_timeout_ms: u64,
    /// Default `segment.bytes` for topics.
    pub log_segment_bytes: u64,
    /// Default `segment.ms`.
    pub log_segment_ms: i64,
    /// Default `retention.ms` (-1: forever).
    pub log_retention_ms: i64,
    /// Default `retention.bytes` (-1: unlimited).
    pub log_retention_bytes: i64,
    /// Default `max.message.bytes`.
    pub max_message_bytes: u32,
    /// Bytes between offset-index entries (> 0).
    pub log_index_interval_bytes: u64,
    /// How often retention runs (ms, 1 to 86400000).
    pub retention_check_interval_ms: u64,
    /// Heartbeat interval suggested to group members (ms, 1 to 600000).
    pub group_heartbeat_interval_ms: u64,
    /// Log output: `text` or `json`.
    pub log_format: String,
    /// Object store for tiered storage: `file:///path` or
    /// `s3://bucket/prefix` (credentials, region, endpoint from the standard
    /// `AWS_*` variables). Empty: `file://` directory `<data-dir>-bucket`
    /// beside the data directory. Env: TIDELOG_OBJECT_STORE.
    pub object_store: String,
    /// Directory of the remote-read disk cache; empty: `<data-dir>/remote-cache`.
    pub remote_cache_dir: String,
    /// Bytes of remote chunks cached in memory.
    pub remote_cache_memory_bytes: u64,
    /// Bytes of remote chunks cached on local disk (0: memory only).
    pub remote_cache_disk_bytes: u64,
    /// Size of one ranged read from the object store.
    pub remote_chunk_bytes: u64,
    /// Remote reads running at once.
    pub remote_read_concurrency: u32,
    /// How often the uploader looks for sealed segments (ms, 1 to 86400000).
    pub tiering_upload_interval_ms: u64,
    /// Longest back-off between failing upload rounds (ms, 1 to 86400000).
    pub tiering_max_backoff_ms: u64,
    /// Segment objects the manifest does not list are deleted once older
    /// than this (ms, 0 to 2592000000), at the retention interval.
    pub tiering_orphan_min_age_ms: u64,
    /// Default `local.retention.ms` (-2: same as retention.ms).
    pub log_local_retention_ms: i64,
    /// Default `local.retention.bytes` (-2: same as retention.bytes); at
    /// most `log_retention_bytes` when that is not -1.
    pub log_local_retention_bytes: i64,
    /// Producers get a retriable STORAGE_UNAVAILABLE while the log data on
    /// local disk exceeds this many bytes (uploads behind); 0: off.
    pub local_disk_high_water_bytes: u64,
    /// Open partitions whose log ends below their recovery point (segment
    /// data missing), continuing at the recovery point (`--accept-data-loss`).
    pub accept_data_loss: bool,
    /// Read rate of the background scrub of sealed local segments
    /// (bytes/s); 0 turns it off.
    pub scrub_bytes_per_sec: u64,
    /// Pause between two scrub passes (ms, 1 to 2592000000).
    pub scrub_interval_ms: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let log = LogConfig::default();
        ServeConfig {
            data_dir: PathBuf::from("./tidelog-data"),
            listen: "127.0.0.1:7070".into(),
            http_listen: "127.0.0.1:7071".into(),
            advertised_address: String::new(),
            broker_id: 0,
            node_id: 0,
            cluster_listen: String::new(),
            voters: String::new(),
            broker_session_timeout_ms: 6_000,
            log_segment_bytes: log.segment_bytes,
            log_segment_ms: log.segment_ms,
            log_retention_ms: log.retention_ms,
            log_retention_bytes: log.retention_bytes,
            max_message_bytes: log.max_message_bytes,
            log_index_interval_bytes: log.index_interval_bytes,
            retention_check_interval_ms: 30_000,
            group_heartbeat_interval_ms: 1_000,
            log_format: "text".into(),
            object_store: String::new(),
            remote_cache_dir: String::new(),
            remote_cache_memory_bytes: 64 * 1024 * 1024,
            remote_cache_disk_bytes: 256 * 1024 * 1024,
            remote_chunk_bytes: 1024 * 1024,
            remote_read_concurrency: 8,
            tiering_upload_interval_ms: 1000,
            tiering_max_backoff_ms: 30_000,
            tiering_orphan_min_age_ms: 3_600_000,
            log_local_retention_ms: log.local_retention_ms,
            log_local_retention_bytes: log.local_retention_bytes,
            local_disk_high_water_bytes: 0,
            accept_data_loss: false,
            scrub_bytes_per_sec: 8 * 1024 * 1024,
            scrub_interval_ms: 24 * 3600 * 1000,
        }
    }
}

impl ServeConfig {
    /// Defaults, overlaid by `file` (if given), then by `TIDELOG_*` variables
    /// from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = toml::Table::try_from(ServeConfig::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let from_file: toml::Table = text
                .parse()
                .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
            for (k, v) in from_file {
                if !table.contains_key(&k) {
                    return Err(ConfigError::Invalid(format!(
                        "{}: unknown key '{k}'",
                        path.display()
                    )));
                }
                table.insert(k, v);
            }
        }
        for (name, value) in env {
            let Some(key) = name.strip_prefix("TIDELOG_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            let Some(current) = table.get(&key) else {
                continue;
            };
            let parsed = match current {
                toml::Value::Integer(_) => value
                    .trim()
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|_| {
                        ConfigError::Invalid(format!("{name}={value}: expected an integer"))
                    })?,
                toml::Value::Boolean(_) => value
                    .trim()
                    .parse::<bool>()
                    .map(toml::Value::Boolean)
                    .map_err(|_| {
                    ConfigError::Invalid(format!("{name}={value}: expected true or false"))
                })?,
                _ => toml::Value::String(value),
            };
            table.insert(key, parsed);
        }
        let cfg: ServeConfig = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id != 0 && self.broker_id != 0 && self.node_id != self.broker_id {
            return Err(ConfigError::Invalid(format!(
                "node_id={} and broker_id={} differ: broker_id is the older name of node_id; set one",
                self.node_id, self.broker_id
            )));
        }
        let voters = self.voter_map()?;
        // A node id not among the voters joins as a learner.
        let joining = !voters.is_empty() && !voters.contains_key(&u64::from(self.node_id()));
        if (voters.len() > 1 || joining) && self.cluster_listen.is_empty() {
            return Err(ConfigError::Invalid(
                "voters names other brokers: set cluster_listen (--cluster-listen) too".into(),
            ));
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(format!(
                "log_format={}: use text or json",
                self.log_format
            )));
        }
        let defaults = self.log_defaults();
        let overrides = crate::broker::topic_config::effective(&defaults);
        crate::broker::topic_config::resolve_consistent(&LogConfig::default(), &overrides)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.log_index_interval_bytes == 0 {
            return Err(ConfigError::Invalid(
                "log_index_interval_bytes must be > 0".into(),
            ));
        }
        // Intervals outside these bounds are typos (a heartbeat of three
        // years never fires); each bound is documented on its field.
        for (key, value, min, max) in [
            (
                "group_heartbeat_interval_ms",
                self.group_heartbeat_interval_ms,
                1,
                MAX_HEARTBEAT_MS,
            ),
            (
                "retention_check_interval_ms",
                self.retention_check_interval_ms,
                1,
                MAX_INTERVAL_MS,
            ),
            (
                "tiering_upload_interval_ms",
                self.tiering_upload_interval_ms,
                1,
                MAX_INTERVAL_MS,
            ),
            (
                "tiering_max_backoff_ms",
                self.tiering_max_backoff_ms,
                1,
                MAX_INTERVAL_MS,
            ),
            (
                "tiering_orphan_min_age_ms",
                self.tiering_orphan_min_age_ms,
                0,
                MAX_AGE_MS,
            ),
            ("scrub_interval_ms", self.scrub_interval_ms, 1, MAX_AGE_MS),
        ] {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::Invalid(format!(
                    "{key}={value}: must be between {min} and {max}"
                )));
            }
        }
        if !(4096..=64 * 1024 * 1024).contains(&self.remote_chunk_bytes) {
            return Err(ConfigError::Invalid(
                "remote_chunk_bytes must be between 4096 and 67108864".into(),
            ));
        }
        if self.remote_read_concurrency == 0 {
            return Err(ConfigError::Invalid(
                "remote_read_concurrency must be > 0".into(),
            ));
        }
        Ok(())
    }

    /// Topic defaults as a log config.
    pub fn log_defaults(&self) -> LogConfig {
        LogConfig {
            segment_bytes: self.log_segment_bytes,
            segment_ms: self.log_segment_ms,
            retention_ms: self.log_retention_ms,
            retention_bytes: self.log_retention_bytes,
            max_message_bytes: self.max_message_bytes,
            index_interval_bytes: self.log_index_interval_bytes.max(1),
            local_retention_ms: self.log_local_retention_ms,
            local_retention_bytes: self.log_local_retention_bytes,
            ..LogConfig::default()
        }
    }

    /// The object store URL in force (the default `file://` directory
    /// beside the data directory when none is set).
    pub fn object_store_url(&self) -> String {
        if self.object_store.is_empty() {
            format!(
                "file://{}",
                crate::tiering::default_bucket_dir(&self.data_dir).display()
            )
        } else {
            self.object_store.clone()
        }
    }

    /// What the tiering layer needs.
    pub fn tiering_settings(&self) -> crate::tiering::TieringSettings {
        let cache_dir = if self.remote_cache_dir.is_empty() {
            self.data_dir.join("remote-cache")
        } else {
            PathBuf::from(&self.remote_cache_dir)
        };
        crate::tiering::TieringSettings {
            url: self.object_store_url(),
            cache: crate::tiering::cache::CacheSettings {
                memory_bytes: self.remote_cache_memory_bytes as usize,
                disk_bytes: self.remote_cache_disk_bytes as usize,
                dir: cache_dir,
                index_entries: 10_000,
            },
            chunk_bytes: self.remote_chunk_bytes,
            read_concurrency: self.remote_read_concurrency as usize,
            upload_interval: Duration::from_millis(self.tiering_upload_interval_ms),
            max_backoff: Duration::from_millis(self.tiering_max_backoff_ms),
            orphan_min_age: Duration::from_millis(self.tiering_orphan_min_age_ms),
            broker_id: self.node_id(),
        }
    }

    /// This broker's id: `node_id`, else the older `broker_id`.
    pub fn node_id(&self) -> u32 {
        if self.node_id != 0 {
            self.node_id
        } else {
            self.broker_id
        }
    }

    /// The voters as node id → cluster address.
    pub fn voter_map(&self) -> Result<std::collections::BTreeMap<u64, String>, ConfigError> {
        parse_voters(&self.voters)
    }

    /// What the cluster layer needs.
    pub fn cluster_settings(&self) -> Result<crate::cluster::node::ClusterSettings, ConfigError> {
        Ok(crate::cluster::node::ClusterSettings {
            node_id: u64::from(self.node_id()),
            cluster_listen: (!self.cluster_listen.is_empty()).then(|| self.cluster_listen.clone()),
            voters: self.voter_map()?,
            meta_dir: self.data_dir.join("meta"),
            client_address: self.broker_settings().advertised_address,
            session_timeout: Duration::from_millis(self.broker_session_timeout_ms),
        })
    }

    /// What the broker layer needs.
    pub fn broker_settings(&self) -> BrokerSettings {
        BrokerSettings {
            data_dir: self.data_dir.clone(),
            broker_id: self.node_id(),
            advertised_address: if self.advertised_address.is_empty() {
                self.listen.clone()
            } else {
                self.advertised_address.clone()
            },
            log_defaults: self.log_defaults(),
            retention_check_interval: Duration::from_millis(self.retention_check_interval_ms),
            local_disk_high_water_bytes: self.local_disk_high_water_bytes,
            accept_data_loss: self.accept_data_loss,
            scrub_bytes_per_sec: self.scrub_bytes_per_sec,
            scrub_interval: Duration::from_millis(self.scrub_interval_ms),
        }
    }
}

/// Parses `1=host:port,2=host:port`: ids unique, addresses host:port.
fn parse_voters(text: &str) -> Result<std::collections::BTreeMap<u64, String>, ConfigError> {
    let mut out = std::collections::BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = |why: &str| {
            ConfigError::Invalid(format!(
                "voters={text}: '{part}' {why}; write ID=HOST:PORT,ID=HOST:PORT (each broker's --cluster-listen)"
            ))
        };
        let (id, addr) = part.split_once('=').ok_or_else(|| bad("has no '='"))?;
        let id: u64 = id.trim().parse().map_err(|_| bad("has no numeric id"))?;
        let addr = addr.trim();
        match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => return Err(bad("has no HOST:PORT address")),
        }
        if out.insert(id, addr.to_string()).is_some() {
            return Err(bad("repeats an id"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_override_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("t.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:9000\"\nlog_segment_bytes = 4096\n",
        )
        .expect("write");
        let env = vec![
            ("TIDELOG_LOG_SEGMENT_BYTES".to_string(), "8192".to_string()),
            ("TIDELOG_BROKER".to_string(), "ignored".to_string()),
        ];
        let c = ServeConfig::load(Some(&f), env.into_iter()).expect("load");
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.log_segment_bytes, 8192);
        assert_eq!(c.http_listen, "127.0.0.1:7071");
    }

    #[test]
    fn contradictory_or_absurd_values_are_refused() {
        for (key, value, expect) in [
            (
                "TIDELOG_LOG_INDEX_INTERVAL_BYTES",
                "0",
                "log_index_interval_bytes",
            ),
            (
                "TIDELOG_GROUP_HEARTBEAT_INTERVAL_MS",
                "99999999999",
                "group_heartbeat_interval_ms",
            ),
            (
                "TIDELOG_TIERING_MAX_BACKOFF_MS",
                "0",
                "tiering_max_backoff_ms",
            ),
        ] {
            let env = vec![(key.to_string(), value.to_string())];
            let e = ServeConfig::load(None, env.into_iter()).expect_err(key);
            assert!(e.to_string().contains(expect), "{e}");
        }
        let env = vec![
            (
                "TIDELOG_LOG_RETENTION_BYTES".to_string(),
                "1000".to_string(),
            ),
            (
                "TIDELOG_LOG_LOCAL_RETENTION_BYTES".to_string(),
                "2000".to_string(),
            ),
        ];
        let e = ServeConfig::load(None, env.into_iter()).expect_err("local > total");
        assert!(e.to_string().contains("local.retention.bytes"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        let env = vec![("TIDELOG_LOG_SEGMENT_BYTES".to_string(), "big".to_string())];
        let e = ServeConfig::load(None, env.into_iter()).expect_err("invalid");
        assert!(e.to_string().contains("TIDELOG_LOG_SEGMENT_BYTES"));
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("t.toml");
        std::fs::write(&f, "no_such = 1\n").expect("write");
        assert!(ServeConfig::load(Some(&f), std::iter::empty()).is_err());
    }
}
