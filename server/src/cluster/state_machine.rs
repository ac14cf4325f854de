//! The metadata state machine: applies committed commands to
//! [`MetadataState`] and publishes each new state to the broker (a watch
//! channel). Durable through snapshots in `<data-dir>/meta/snapshot.json`
//! plus the log entries after them, which openraft re-applies at start.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Mutex, RwLock};

use super::log_store::{read_json, write_json};
use super::state::{CommandResult, MetadataState};
use super::types::{Entry, MetaNode, StorageError, TypeConfig};

const SNAPSHOT_FILE: &str = "snapshot.json";

/// What a snapshot holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, MetaNode>,
    state: MetadataState,
}

/// A snapshot as stored on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, MetaNode>,
    data: String,
}

/// The state machine; clones share it.
#[derive(Debug, Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    applied: RwLock<Applied>,
    snapshot: Mutex<Option<StoredSnapshot>>,
    seq: AtomicU64,
    changes: watch::Sender<Arc<MetadataState>>,
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}

impl StateMachine {
    /// Opens the state machine in `dir`, starting from the last snapshot.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let snapshot: Option<StoredSnapshot> = read_json(dir, SNAPSHOT_FILE)?;
        let applied = match &snapshot {
            Some(s) => serde_json::from_str(&s.data).map_err(std::io::Error::other)?,
            None => Applied::default(),
        };
        let (changes, _) = watch::channel(Arc::new(applied.state.clone()));
        Ok(StateMachine {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                applied: RwLock::new(applied),
                snapshot: Mutex::new(snapshot),
                seq: AtomicU64::new(0),
                changes,
            }),
        })
    }

    /// The metadata as last applied, and every later change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataState>> {
        self.inner.changes.subscribe()
    }

    /// The metadata as last applied.
    pub fn current(&self) -> Arc<MetadataState> {
        self.inner.changes.borrow().clone()
    }

    async fn store_snapshot(&self, snap: StoredSnapshot) -> Result<(), StorageError> {
        let dir = self.inner.dir.clone();
        let on_disk = snap.clone();
        tokio::task::spawn_blocking(move || write_json(&dir, SNAPSHOT_FILE, &on_disk))
            .await
            .map_err(sm_err)?
            .map_err(sm_err)?;
        *self.inner.snapshot.lock().await = Some(snap);
        Ok(())
    }
}

fn to_snapshot(s: &StoredSnapshot) -> Snapshot<TypeConfig> {
    Snapshot {
        meta: s.meta.clone(),
        snapshot: Box::new(Cursor::new(s.data.clone().into_bytes())),
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let applied = self.inner.applied.read().await.clone();
        let data = serde_json::to_string(&applied).map_err(sm_err)?;
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match applied.last_applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
            None => format!("empty-{seq}"),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.membership.clone(),
                snapshot_id,
            },
            data,
        };
        let snap = to_snapshot(&stored);
        self.store_snapshot(stored).await?;
        Ok(snap)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, MetaNode>), StorageError> {
        let a = self.inner.applied.read().await;
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut a = self.inner.applied.write().await;
        let mut out = Vec::new();
        let mut changed = false;
        for entry in entries {
            a.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(CommandResult::Ok),
                EntryPayload::Normal(command) => {
                    out.push(a.state.apply(&command));
                    changed = true;
                }
                EntryPayload::Membership(m) => {
                    a.membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(CommandResult::Ok);
                }
            }
        }
        if changed {
            self.inner.changes.send_replace(Arc::new(a.state.clone()));
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, MetaNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = String::from_utf8(snapshot.into_inner()).map_err(sm_err)?;
        let mut applied: Applied = serde_json::from_str(&data).map_err(sm_err)?;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        self.store_snapshot(StoredSnapshot {
            meta: meta.clone(),
            data,
        })
        .await?;
        let state = applied.state.clone();
        *self.inner.applied.write().await = applied;
        self.inner.changes.send_replace(Arc::new(state));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.inner.snapshot.lock().await.as_ref().map(to_snapshot))
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::{StoreBuilder, Suite};

    use super::super::log_store::LogStore;
    use super::*;

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::TempDir::new().map_err(sm_err)?;
            let log = LogStore::open(dir.path()).map_err(sm_err)?;
            let sm = StateMachine::open(dir.path()).map_err(sm_err)?;
            Ok((dir, log, sm))
        }
    }

    /// openraft's own conformance suite for storage implementations.
    #[test]
    fn openraft_storage_suite() {
        if let Err(e) = Suite::test_all(Builder) {
            panic!("openraft storage suite: {e}");
        }
    }
}
