//! The topic registry's changes: create, delete, alter config. Each one
//! tells the topic listener (the cluster snapshot publisher), create and
//! delete waiting for it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::topic::TopicMeta;
use super::{now_ms, storage, topic, topic_config, Broker, BrokerError, Topic};

impl Broker {
    /// Checks a topic to be created: name, partition count, config.
    pub fn validate_new_topic(
        &self,
        name: &str,
        partitions: u32,
        config: &BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        topic::validate_name(name)?;
        if partitions == 0 || partitions > topic::MAX_PARTITIONS {
            return Err(BrokerError::InvalidRequest(format!(
                "partitions={partitions}: must be between 1 and {}",
                topic::MAX_PARTITIONS
            )));
        }
        topic_config::resolve_consistent(&self.settings.log_defaults, config)?;
        Ok(())
    }

    /// Creates the local part of a topic the cluster placed (partitions in
    /// `meta.hosted`): writes partition directories, then `topic.json`
    /// last, so a crash mid-way leaves nothing half-visible.
    pub async fn create_local_topic(&self, meta: TopicMeta) -> Result<Arc<Topic>, BrokerError> {
        let name = meta.name.clone();
        let _guard = self.admin.lock().await;
        if self.topics.read().contains_key(&name) {
            return Err(BrokerError::TopicExists(name));
        }
        let dir = Topic::dir_for(&self.topics_dir, &name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| storage(&dir, e))?;
        }
        for p in meta.hosted() {
            let pdir = dir.join(p.to_string());
            std::fs::create_dir_all(&pdir).map_err(|e| storage(&pdir, e))?;
        }
        Topic::write_meta(&dir, &meta)?;
        crate::log::partition_log::sync_dir(&self.topics_dir)?;
        let partitions = meta.partitions;
        let topic = self.open_topic(meta, dir)?;
        self.topics.write().insert(name.clone(), Arc::clone(&topic));
        tracing::info!(topic = %name, partitions, hosted = topic.partitions().len(), "created topic");
        let _ = self.load_remote_state_of(&topic).await;
        if let Some(l) = self.topic_listener() {
            l.topics_changed().await;
        }
        Ok(topic)
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        let _guard = self.admin.lock().await;
        let topic = self
            .topics
            .write()
            .remove(name)
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))?;
        topic.cancel_token().cancel();
        let deleted = self.settings.data_dir.join("deleted");
        std::fs::create_dir_all(&deleted).map_err(|e| storage(&deleted, e))?;
        let target = deleted.join(format!("{name}.{}", now_ms()));
        // The rename is the commit point: once it is durable the topic is
        // gone even if the removal below is interrupted.
        std::fs::rename(topic.dir(), &target).map_err(|e| storage(topic.dir(), e))?;
        crate::log::partition_log::sync_dir(&self.topics_dir)?;
        let removal = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&target)).await;
        if let Ok(Err(e)) | Err(e) = removal.map_err(std::io::Error::other) {
            tracing::warn!(topic = name, error = %e, "could not remove deleted topic data; retried at start-up");
        }
        self.metrics.segments.remove_label_values(&[name]).ok();
        self.metrics.log_size.remove_label_values(&[name]).ok();
        self.metrics
            .tiering
            .remote_size
            .remove_label_values(&[name])
            .ok();
        tracing::info!(topic = name, "deleted topic");
        // The snapshot stops listing the topic before its objects go.
        if let Some(l) = self.topic_listener() {
            l.topics_changed().await;
        }
        self.delete_remote_objects(&topic);
        Ok(())
    }

    /// Replaces a topic's config overrides with `config` (as the cluster
    /// decided them).
    pub fn set_topic_config(
        &self,
        name: &str,
        config: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, BrokerError> {
        let topic = self.topic(name)?;
        let current = topic.meta().config;
        if current == config {
            return Ok(topic);
        }
        let delete: Vec<String> = current
            .keys()
            .filter(|k| !config.contains_key(*k))
            .cloned()
            .collect();
        self.alter_topic_config(name, config, &delete)
    }

    /// Changes a topic's config.
    pub fn alter_topic_config(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<Arc<Topic>, BrokerError> {
        let topic = self.topic(name)?;
        topic.alter_config(&self.settings.log_defaults, set, delete)?;
        if let Some(l) = self.topic_listener() {
            self.spawn(l.topics_changed());
        }
        Ok(topic)
    }

    /// Effective config of a topic.
    pub fn effective_config(&self, topic: &Topic) -> BTreeMap<String, String> {
        match topic_config::resolve(&self.settings.log_defaults, &topic.meta().config) {
            Ok(cfg) => topic_config::effective(&cfg),
            Err(_) => topic.meta().config,
        }
    }
}
