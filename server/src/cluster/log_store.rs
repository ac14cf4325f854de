//! The metadata quorum's log on local disk, as openraft's `RaftLogStorage`
//! wants it: entries appended to `<data-dir>/meta/raft.log` as records
//! `[len u32][crc32c u32][JSON entry]` and fsynced before openraft is told
//! they are durable; the vote, the purge point and the committed index in
//! small files replaced atomically (temp file, fsync, rename, fsync dir).
//! Metadata is small, so every live entry is also kept in memory; a
//! truncation or purge rewrites the file.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{LogId, OptionalSend, RaftLogReader, StorageIOError, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

use super::types::{Entry, StorageError, TypeConfig};

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote.json";
const PURGED_FILE: &str = "purged.json";
const COMMITTED_FILE: &str = "committed.json";

/// The log store; clones share one log.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    file: Arc<File>,
    len: u64,
    entries: BTreeMap<u64, Entry>,
    vote: Option<Vote<u64>>,
    purged: Option<LogId<u64>>,
    committed: Option<LogId<u64>>,
}

fn io_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

/// Writes `value` as JSON to `dir/name` durably (temp file, fsync, rename,
/// fsync the directory).
pub(super) fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let mut f = File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// Reads JSON from `dir/name`; `None` when the file does not exist.
pub(super) fn read_json<T: DeserializeOwned>(dir: &Path, name: &str) -> std::io::Result<Option<T>> {
    match std::fs::read(dir.join(name)) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("{name}: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn encode(entry: &Entry, out: &mut Vec<u8>) -> std::io::Result<()> {
    let json = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    let len = u32::try_from(json.len()).map_err(std::io::Error::other)?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&json).to_le_bytes());
    out.extend_from_slice(&json);
    Ok(())
}

/// Entries of a log file, and the length of its intact prefix (a torn last
/// record — a crash mid-append, never acknowledged — ends the read).
fn decode_all(bytes: &[u8]) -> (Vec<Entry>, u64) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let crc = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        let Some(body) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(body) else {
            break;
        };
        out.push(entry);
        pos += 8 + len;
    }
    (out, pos as u64)
}

impl LogStore {
    /// Opens (or creates) the log in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let bytes = std::fs::read(&path)?;
        let (entries, len) = decode_all(&bytes);
        if len < bytes.len() as u64 {
            tracing::warn!(path = %path.display(), bytes = bytes.len() as u64 - len, "cut a torn record off the metadata log");
            file.set_len(len)?;
            file.sync_all()?;
        }
        let purged: Option<LogId<u64>> = read_json(dir, PURGED_FILE)?;
        let entries = entries
            .into_iter()
            .filter(|e| purged.is_none_or(|p| e.log_id.index > p.index))
            .map(|e| (e.log_id.index, e))
            .collect();
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                file: Arc::new(file),
                len,
                entries,
                vote: read_json(dir, VOTE_FILE)?,
                purged,
                committed: read_json(dir, COMMITTED_FILE)?,
            })),
        })
    }
}

impl Inner {
    /// Rewrites the log file with the entries in memory (after a
    /// truncation or purge).
    async fn rewrite(&mut self) -> Result<(), StorageError> {
        let mut bytes = Vec::new();
        for e in self.entries.values() {
            encode(e, &mut bytes).map_err(io_err)?;
        }
        let dir = self.dir.clone();
        let len = bytes.len() as u64;
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<File> {
            let tmp = dir.join(format!("{LOG_FILE}.tmp"));
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, dir.join(LOG_FILE))?;
            File::open(&dir)?.sync_all()?;
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(dir.join(LOG_FILE))
        })
        .await
        .map_err(io_err)?
        .map_err(io_err)?;
        self.file = Arc::new(file);
        self.len = len;
        Ok(())
    }

    async fn save<T: Serialize + Send + 'static>(
        &self,
        name: &'static str,
        value: T,
    ) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_json(&dir, name, &value))
            .await
            .map_err(io_err)?
            .map_err(io_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let inner = self.inner.lock().await;
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.inner.lock().await;
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.purged);
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let mut inner = self.inner.lock().await;
        inner.save(VOTE_FILE, *vote).await?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        Ok(self.inner.lock().await.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), StorageError> {
        let mut inner = self.inner.lock().await;
        // A lost update only means re-applying a few entries after a crash.
        inner.save(COMMITTED_FILE, committed).await?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError> {
        Ok(self.inner.lock().await.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        let mut bytes = Vec::new();
        let mut added = Vec::new();
        for e in entries {
            encode(&e, &mut bytes).map_err(io_err)?;
            added.push(e);
        }
        let file = Arc::clone(&inner.file);
        let at = inner.len;
        let n = bytes.len() as u64;
        let written = tokio::task::spawn_blocking(move || {
            file.write_all_at(&bytes, at)?;
            file.sync_data()
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        if let Err(e) = written {
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(io_err(e));
        }
        inner.len += n;
        for e in added {
            inner.entries.insert(e.log_id.index, e);
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError> {
        let mut inner = self.inner.lock().await;
        let _ = inner.entries.split_off(&log_id.index);
        inner.rewrite().await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError> {
        let mut inner = self.inner.lock().await;
        // The purge point is durable before any entry goes.
        inner.save(PURGED_FILE, log_id).await?;
        inner.purged = Some(log_id);
        let keep = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = keep;
        inner.rewrite().await
    }
}
