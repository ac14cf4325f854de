//! Per-topic config: the keys users set (Kafka's names) and how they
//! resolve, over the broker defaults, into a [`LogConfig`].

use std::collections::BTreeMap;

use super::error::BrokerError;
use crate::log::LogConfig;

/// Every topic config key Tidelog understands.
pub const KEYS: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "remote.storage.enable",
    "local.retention.ms",
    "local.retention.bytes",
];

/// Smallest `segment.bytes` accepted (tests use tiny segments).
const MIN_SEGMENT_BYTES: i64 = 1024;
/// Segment positions are 32-bit in the index.
const MAX_SEGMENT_BYTES: i64 = i32::MAX as i64;
/// Largest `max.message.bytes` accepted.
const MAX_MESSAGE_BYTES: i64 = 64 * 1024 * 1024;

fn parse_int(key: &str, value: &str) -> Result<i64, BrokerError> {
    value.trim().parse::<i64>().map_err(|_| {
        BrokerError::InvalidConfig(format!("{key}={value}: expected a decimal integer"))
    })
}

fn check_range(key: &str, v: i64, min: i64, max: i64, hint: &str) -> Result<i64, BrokerError> {
    if v < min || v > max {
        return Err(BrokerError::InvalidConfig(format!("{key}={v}: {hint}")));
    }
    Ok(v)
}

/// Applies one key to a config, validating its value.
fn apply(cfg: &mut LogConfig, key: &str, value: &str) -> Result<(), BrokerError> {
    if key == "remote.storage.enable" {
        cfg.remote_storage_enable = match value.trim() {
            "true" => true,
            "false" => false,
            other => {
                return Err(BrokerError::InvalidConfig(format!(
                    "{key}={other}: expected true or false"
                )))
            }
        };
        return Ok(());
    }
    let v = parse_int(key, value)?;
    match key {
        "retention.ms" => {
            cfg.retention_ms = check_range(key, v, -1, i64::MAX, "must be -1 (forever) or >= 0")?
        }
        "retention.bytes" => {
            cfg.retention_bytes =
                check_range(key, v, -1, i64::MAX, "must be -1 (unlimited) or >= 0")?
        }
        "segment.bytes" => {
            cfg.segment_bytes = check_range(
                key,
                v,
                MIN_SEGMENT_BYTES,
                MAX_SEGMENT_BYTES,
                "must be between 1024 and 2147483647",
            )? as u64
        }
        "local.retention.ms" => {
            cfg.local_retention_ms = check_range(
                key,
                v,
                -2,
                i64::MAX,
                "must be -2 (same as retention.ms), -1 (forever) or >= 0",
            )?
        }
        "local.retention.bytes" => {
            cfg.local_retention_bytes = check_range(
                key,
                v,
                -2,
                i64::MAX,
                "must be -2 (same as retention.bytes), -1 (unlimited) or >= 0",
            )?
        }
        "segment.ms" => cfg.segment_ms = check_range(key, v, 1, i64::MAX, "must be >= 1")?,
        "max.message.bytes" => {
            cfg.max_message_bytes = check_range(
                key,
                v,
                tidelog_proto::batch::HEADER_LEN as i64,
                MAX_MESSAGE_BYTES,
                "must be between 57 and 67108864",
            )? as u32
        }
        other => {
            return Err(BrokerError::InvalidConfig(format!(
                "unknown key '{other}'; known keys: {}",
                KEYS.join(", ")
            )))
        }
    }
    Ok(())
}

/// Resolves overrides over the broker defaults.
pub fn resolve(
    defaults: &LogConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<LogConfig, BrokerError> {
    let mut cfg = defaults.clone();
    for (k, v) in overrides {
        apply(&mut cfg, k, v)?;
    }
    Ok(cfg)
}

/// Like [`resolve`], and refuses settings that contradict each other: what
/// create and alter accept. Topics already on disk are opened with
/// [`resolve`] alone, so a broker never refuses to start over a topic an
/// older version accepted.
pub fn resolve_consistent(
    defaults: &LogConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<LogConfig, BrokerError> {
    let cfg = resolve(defaults, overrides)?;
    check_consistent(&cfg)?;
    Ok(cfg)
}

/// Local retention within total retention, for bytes and time.
pub fn check_consistent(cfg: &LogConfig) -> Result<(), BrokerError> {
    check_local_within_total(
        "local.retention.bytes",
        cfg.local_retention_bytes,
        "retention.bytes",
        cfg.retention_bytes,
    )?;
    check_local_within_total(
        "local.retention.ms",
        cfg.local_retention_ms,
        "retention.ms",
        cfg.retention_ms,
    )
}

/// Local retention keeps a part of what total retention keeps (as in
/// Kafka): more, or unlimited (-1) under a limited total, contradicts it.
fn check_local_within_total(
    local_key: &str,
    local: i64,
    total_key: &str,
    total: i64,
) -> Result<(), BrokerError> {
    // -2: same as the total; -1 total: anything local fits.
    if local == -2 || total == -1 || (0..=total).contains(&local) {
        return Ok(());
    }
    Err(BrokerError::InvalidConfig(format!(
        "{local_key}={local} contradicts {total_key}={total}: local retention must be \
         at most the total ({total_key}) or -2 (same as {total_key})"
    )))
}

/// The effective value of every key.
pub fn effective(cfg: &LogConfig) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("retention.ms".to_string(), cfg.retention_ms.to_string()),
        (
            "retention.bytes".to_string(),
            cfg.retention_bytes.to_string(),
        ),
        ("segment.bytes".to_string(), cfg.segment_bytes.to_string()),
        ("segment.ms".to_string(), cfg.segment_ms.to_string()),
        (
            "max.message.bytes".to_string(),
            cfg.max_message_bytes.to_string(),
        ),
        (
            "remote.storage.enable".to_string(),
            cfg.remote_storage_enable.to_string(),
        ),
        (
            "local.retention.ms".to_string(),
            cfg.local_retention_ms.to_string(),
        ),
        (
            "local.retention.bytes".to_string(),
            cfg.local_retention_bytes.to_string(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_and_rejects() {
        let d = LogConfig {
            retention_bytes: 1000,
            retention_ms: 1000,
            ..LogConfig::default()
        };
        let o = BTreeMap::from([("segment.bytes".to_string(), "2048".to_string())]);
        assert_eq!(resolve(&d, &o).expect("ok").segment_bytes, 2048);
        for (k, v) in [
            ("segment.bytes", "10"),
            ("retention.ms", "-5"),
            ("retention.ms", "soon"),
            ("no.such.key", "1"),
            ("max.message.bytes", "999999999"),
            ("remote.storage.enable", "yes"),
            ("local.retention.ms", "-3"),
            ("local.retention.bytes", "5000"),
            ("local.retention.bytes", "-1"),
            ("local.retention.ms", "7000"),
        ] {
            let o = BTreeMap::from([(k.to_string(), v.to_string())]);
            assert!(
                matches!(
                    resolve_consistent(&d, &o),
                    Err(BrokerError::InvalidConfig(_))
                ),
                "{k}={v}"
            );
        }
    }
}
