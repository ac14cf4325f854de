//! The recovery point of a partition: the highest offset it has made
//! durable, in a small file beside its segments (`recovery-point`, one
//! decimal number). Recovery trusts it as the floor of the log end: bytes
//! below it were acknowledged, so damage there is reported, never cut off,
//! and a log found ending below it (a segment file cut short or removed
//! behind the broker's back) does not open unless the operator accepts the
//! loss — offsets already handed out are never handed out again.
//!
//! It is written after fsyncs at most once per [`INTERVAL`] and at a clean
//! stop, so it may lag the true durable end by that much (as Kafka's
//! recovery-point checkpoint does); see ARCHITECTURE.md.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::LogError;
use super::partition_log::sync_dir;

/// How often a partition that takes writes refreshes its recovery point.
pub const INTERVAL: Duration = Duration::from_secs(1);

const FILE: &str = "recovery-point";

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The recovery point stored in `dir`, if any. An unreadable file is
/// reported and treated as absent (it only ever protects, never holds
/// data).
pub fn read(dir: &Path) -> Option<i64> {
    let p = path(dir);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %p.display(), error = %e, "cannot read the recovery point; recovering without it");
            return None;
        }
    };
    match text.trim().parse::<i64>() {
        Ok(v) if v >= 0 => Some(v),
        _ => {
            tracing::warn!(path = %p.display(), "the recovery point is not a number; recovering without it");
            None
        }
    }
}

/// Durably records `offset` as the recovery point of `dir` (write a
/// temporary file, fsync, rename over, fsync the directory).
pub fn write(dir: &Path, offset: i64) -> Result<(), LogError> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(|e| LogError::io(&tmp, e))?;
    f.write_all(format!("{offset}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| LogError::io(&tmp, e))?;
    let p = path(dir);
    std::fs::rename(&tmp, &p).map_err(|e| LogError::io(&p, e))?;
    sync_dir(dir)
}
