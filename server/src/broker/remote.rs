//! The broker's side of tiering: it hands tiering its partitions (for the
//! upload task), asks it to load remote state and to delete a deleted
//! topic's objects. How any of that is done is tiering's business.

use std::sync::Arc;

use super::{Broker, Topic};
use crate::tiering::upload_loop::{self, UploadTarget};
use crate::tiering::{LocalLog, Tiering, TieringError};

impl Broker {
    /// The tiering service, if on.
    pub fn tiering(&self) -> Option<&Arc<Tiering>> {
        self.tiering.as_ref()
    }

    /// Every partition with a remote side, for an upload round.
    fn upload_targets(&self) -> Vec<UploadTarget> {
        self.topics()
            .iter()
            .flat_map(|t| t.partitions().to_vec())
            .filter_map(|p| {
                let rp = Arc::clone(p.remote()?);
                Some((rp, p as Arc<dyn LocalLog>))
            })
            .collect()
    }

    /// Starts tiering's upload task over this broker's partitions.
    pub(super) fn spawn_uploads(self: &Arc<Self>, t: Arc<Tiering>) {
        let b = Arc::clone(self);
        let interval = self.settings.retention_check_interval;
        let shutdown = self.shutdown.clone();
        self.spawn(upload_loop::run(
            t,
            move || b.upload_targets(),
            interval,
            shutdown,
        ));
    }

    /// Reads the manifests of a topic's partitions; stops at the first
    /// failure (the store is likely unreachable: the upload task retries).
    pub(super) async fn load_remote_state_of(&self, topic: &Topic) -> Result<(), TieringError> {
        for p in topic.partitions() {
            if let Some(rp) = p.remote() {
                if let Err(e) = rp.load(p.local_start_offset()).await {
                    tracing::warn!(partition = %rp.label(), error = %e, "could not read the manifest; the uploader retries");
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Reads every partition's manifest (at start, before serving). When
    /// the store is unreachable the broker serves local data and the
    /// upload task loads the manifests later.
    pub async fn load_remote_state(&self) {
        for t in self.topics() {
            if self.load_remote_state_of(&t).await.is_err() {
                return;
            }
        }
    }

    /// Deletes a deleted topic's objects in the background (a failure
    /// leaves unreachable objects, logged).
    pub(super) fn delete_remote_objects(&self, topic: &Topic) {
        let Some(t) = self.tiering.clone() else {
            return;
        };
        let (name, incarnation) = (topic.name(), topic.meta().created_ms);
        let parts: Vec<_> = topic
            .partitions()
            .iter()
            .filter_map(|p| p.remote().cloned())
            .collect();
        self.spawn(async move { t.delete_topic(&name, incarnation, &parts).await });
    }
}
