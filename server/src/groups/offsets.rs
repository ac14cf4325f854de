//! Durable committed offsets: one small JSON file per group under
//! `<data-dir>/groups/`, replaced atomically (temp file, fsync, rename,
//! directory fsync) on every commit, so an acknowledged commit survives a
//! crash.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::error::GroupError;

/// A topic and partition.
pub type Tp = (String, u32);

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// Next offset to consume.
    pub offset: i64,
    /// Application metadata.
    pub metadata: String,
    /// Commit time (ms).
    pub commit_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct GroupFile {
    version: u32,
    group_id: String,
    offsets: Vec<FileEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileEntry {
    topic: String,
    partition: u32,
    offset: i64,
    metadata: String,
    commit_ms: i64,
}

const FILE_VERSION: u32 = 1;

/// The committed offsets of every group.
#[derive(Debug)]
pub struct OffsetStore {
    dir: PathBuf,
    groups: Mutex<HashMap<String, BTreeMap<Tp, Committed>>>,
    /// Serialises file writes so a later commit never loses to an earlier one.
    write_lock: Mutex<()>,
}

fn file_name(group: &str) -> String {
    let hex: String = group.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.json")
}

fn storage(path: &Path, e: impl std::fmt::Display) -> GroupError {
    GroupError::Storage(format!("{}: {e}", path.display()))
}

impl OffsetStore {
    /// Loads every group file in `dir`.
    pub fn open(dir: &Path) -> Result<Self, GroupError> {
        std::fs::create_dir_all(dir).map_err(|e| storage(dir, e))?;
        let mut groups = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(|e| storage(dir, e))? {
            let path = entry.map_err(|e| storage(dir, e))?.path();
            if path.extension().is_some_and(|x| x == "tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| storage(&path, e))?;
            let file: GroupFile = serde_json::from_slice(&bytes).map_err(|e| storage(&path, e))?;
            if file.version != FILE_VERSION {
                return Err(storage(
                    &path,
                    format!("unsupported version {}", file.version),
                ));
            }
            let offsets = file
                .offsets
                .into_iter()
                .map(|e| {
                    (
                        (e.topic, e.partition),
                        Committed {
                            offset: e.offset,
                            metadata: e.metadata,
                            commit_ms: e.commit_ms,
                        },
                    )
                })
                .collect();
            groups.insert(file.group_id, offsets);
        }
        Ok(OffsetStore {
            dir: dir.to_path_buf(),
            groups: Mutex::new(groups),
            write_lock: Mutex::new(()),
        })
    }

    /// Applies commits and persists the group's file before returning.
    pub fn commit(&self, group: &str, entries: Vec<(Tp, Committed)>) -> Result<(), GroupError> {
        let _w = self.write_lock.lock();
        // The file first, the map after: a commit that could not be made
        // durable (a full disk) changes nothing anyone can see.
        let mut next = self.groups.lock().get(group).cloned().unwrap_or_default();
        for (tp, c) in entries {
            next.insert(tp, c);
        }
        self.write_file(group, &next)?;
        self.groups.lock().insert(group.to_string(), next);
        Ok(())
    }

    fn write_file(&self, group: &str, offsets: &BTreeMap<Tp, Committed>) -> Result<(), GroupError> {
        let file = GroupFile {
            version: FILE_VERSION,
            group_id: group.to_string(),
            offsets: offsets
                .iter()
                .map(|((topic, partition), c)| FileEntry {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: c.offset,
                    metadata: c.metadata.clone(),
                    commit_ms: c.commit_ms,
                })
                .collect(),
        };
        let path = self.dir.join(file_name(group));
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(&file).map_err(|e| storage(&path, e))?;
        let written = (|| {
            let mut f = std::fs::File::create(&tmp).map_err(|e| storage(&tmp, e))?;
            f.write_all(&bytes).map_err(|e| storage(&tmp, e))?;
            f.sync_all().map_err(|e| storage(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| storage(&path, e))
        })();
        if written.is_err() {
            // Leave no partial file behind on a full disk.
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        crate::log::partition_log::sync_dir(&self.dir).map_err(|e| storage(&self.dir, e))
    }

    /// Every group's committed offsets, for the bucket's cluster snapshot.
    pub fn snapshot(&self) -> Vec<(String, BTreeMap<Tp, Committed>)> {
        let groups = self.groups.lock();
        let mut out: Vec<_> = groups
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(g, m)| (g.clone(), m.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Committed offsets of a group (empty when none).
    pub fn get(&self, group: &str) -> BTreeMap<Tp, Committed> {
        self.groups.lock().get(group).cloned().unwrap_or_default()
    }

    /// Whether the group has committed offsets.
    pub fn contains(&self, group: &str) -> bool {
        self.groups.lock().get(group).is_some_and(|m| !m.is_empty())
    }

    /// Ids of groups with committed offsets.
    pub fn groups(&self) -> Vec<String> {
        self.groups
            .lock()
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// Removes a group's offsets.
    pub fn delete(&self, group: &str) -> Result<(), GroupError> {
        let _w = self.write_lock.lock();
        let path = self.dir.join(file_name(group));
        match std::fs::remove_file(&path) {
            Ok(()) => {
                crate::log::partition_log::sync_dir(&self.dir).map_err(|e| storage(&self.dir, e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(storage(&path, e)),
        }
        self.groups.lock().remove(group);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reopen_and_delete_removes_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = OffsetStore::open(dir.path()).expect("open");
        let c = |o| Committed {
            offset: o,
            metadata: "m".into(),
            commit_ms: 1,
        };
        store
            .commit(
                "g/1 ü",
                vec![(("t".into(), 0), c(5)), (("t".into(), 1), c(7))],
            )
            .expect("commit");
        store
            .commit("g/1 ü", vec![(("t".into(), 0), c(9))])
            .expect("commit");
        drop(store);
        let store = OffsetStore::open(dir.path()).expect("reopen");
        let got = store.get("g/1 ü");
        assert_eq!(got[&("t".to_string(), 0)].offset, 9);
        assert_eq!(got[&("t".to_string(), 1)].offset, 7);
        assert_eq!(store.groups(), vec!["g/1 ü".to_string()]);
        store.delete("g/1 ü").expect("delete");
        drop(store);
        let store = OffsetStore::open(dir.path()).expect("reopen");
        assert!(!store.contains("g/1 ü"));
    }

    #[test]
    fn a_commit_that_cannot_be_written_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = OffsetStore::open(dir.path()).expect("open");
        let c = |o| Committed {
            offset: o,
            metadata: String::new(),
            commit_ms: 1,
        };
        store
            .commit("g", vec![(("t".into(), 0), c(5))])
            .expect("commit");
        // A directory where the temp file goes: the write fails, as on a
        // full disk.
        let blocker = dir.path().join(file_name("g")).with_extension("tmp");
        std::fs::create_dir(&blocker).expect("blocker");
        assert!(store.commit("g", vec![(("t".into(), 0), c(9))]).is_err());
        assert!(store.commit("h", vec![(("t".into(), 0), c(1))]).is_ok());
        assert_eq!(store.get("g")[&("t".to_string(), 0)].offset, 5, "unchanged");
        std::fs::remove_dir(&blocker).expect("unblock");
        drop(store);
        let store = OffsetStore::open(dir.path()).expect("reopen");
        assert_eq!(store.get("g")[&("t".to_string(), 0)].offset, 5);
    }
}
