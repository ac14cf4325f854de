//! The group consumer: joins a consumer group, receives partitions from the
//! broker's coordinator, and commits offsets.
//!
//! A background task heartbeats (reporting the partitions this member
//! owns) and passes each new assignment to the consumer. The consumer
//! applies it on the caller's task, between records: revoked partitions are
//! committed (with auto-commit) and dropped before the next heartbeat
//! reports them gone, so the coordinator never gives a partition to two
//! members at once. Newly assigned partitions start at the group's
//! committed offset, or by `auto_offset_reset` when there is none.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::StreamExt;
use tidelog_proto::v1::{
    CommitOffsetsRequest, FetchOffsetsRequest, GroupHeartbeatRequest, OffsetCommit, TopicPartitions,
};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::connection::{groups, Connection, Resend};
use crate::consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, SeekTo};
use crate::error::{Error, Result};
use crate::types::{OffsetSpec, TopicPartition};

/// Group consumer settings.
#[derive(Debug, Clone)]
pub struct GroupConsumerConfig {
    /// The group to join.
    pub group_id: String,
    /// The coordinator removes this member when it hears nothing for this
    /// long (1 s to 300 s).
    pub session_timeout: Duration,
    /// Commit consumed positions periodically and on revocation/close.
    pub auto_commit: bool,
    /// How often auto-commit runs.
    pub auto_commit_interval: Duration,
    /// Start of a partition the group has no committed offset for.
    pub auto_offset_reset: OffsetReset,
    /// Bytes per pushed message from the broker.
    pub max_bytes: u32,
    /// Shown in `tidelog group describe`.
    pub client_id: String,
}

impl GroupConsumerConfig {
    /// Defaults: 10 s session, auto-commit every 5 s, start at the log end
    /// when nothing is committed (Kafka's defaults).
    pub fn new(group_id: impl Into<String>) -> Self {
        GroupConsumerConfig {
            group_id: group_id.into(),
            session_timeout: Duration::from_secs(10),
            auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            auto_offset_reset: OffsetReset::Latest,
            max_bytes: 1024 * 1024,
            client_id: "tidelog-rust".into(),
        }
    }
}

/// A change of this member's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// Partitions newly given to this member.
    Assigned(Vec<TopicPartition>),
    /// Partitions taken away (already committed when auto-commit is on).
    Revoked(Vec<TopicPartition>),
    /// Partitions lost without a chance to commit (the member was fenced or
    /// timed out); another member may already own them.
    Lost(Vec<TopicPartition>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct AssignmentUpdate {
    partitions: BTreeSet<TopicPartition>,
    /// The member was fenced: drop everything without committing.
    lost: bool,
    serial: u64,
}

#[derive(Debug, Default)]
struct Membership {
    member_id: String,
    epoch: i32,
    owned: BTreeSet<TopicPartition>,
    topics: Vec<String>,
    fatal: Option<Error>,
}

type Listener = Box<dyn FnMut(&RebalanceEvent) + Send + Sync>;

/// A consumer that is a member of a consumer group.
///
/// ```no_run
/// # async fn demo() -> tidelog::Result<()> {
/// use futures::StreamExt;
/// use tidelog::{Client, GroupConsumerConfig};
/// let client = Client::connect("127.0.0.1:7070").await?;
/// let mut consumer = client.group_consumer(GroupConsumerConfig::new("billing"));
/// consumer.subscribe(&["orders"]).await?;
/// while let Some(record) = consumer.next_record().await {
///     let record = record?;
///     println!("{}/{}@{}", record.topic, record.partition, record.offset);
///     consumer.commit().await?; // or rely on auto-commit
/// }
/// consumer.close().await?;
/// # Ok(()) }
/// ```
pub struct GroupConsumer {
    conn: Connection,
    config: GroupConsumerConfig,
    consumer: Consumer,
    membership: Arc<Mutex<Membership>>,
    updates: watch::Receiver<AssignmentUpdate>,
    applied_serial: u64,
    wake_heartbeat: Arc<Notify>,
    heartbeat: Option<JoinHandle<()>>,
    events: VecDeque<RebalanceEvent>,
    listener: Option<Listener>,
    last_commit: Instant,
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("group_id", &self.config.group_id)
            .field("assignment", &self.assignment())
            .finish()
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        // Without `close` the member just stops heartbeating; the coordinator
        // moves its partitions after the session timeout.
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

fn lock(m: &Mutex<Membership>) -> std::sync::MutexGuard<'_, Membership> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn to_wire(tps: &BTreeSet<TopicPartition>) -> Vec<TopicPartitions> {
    let mut out: Vec<TopicPartitions> = Vec::new();
    for tp in tps {
        match out.last_mut() {
            Some(last) if last.topic == tp.topic => last.partitions.push(tp.partition),
            _ => out.push(TopicPartitions {
                topic: tp.topic.clone(),
                partitions: vec![tp.partition],
            }),
        }
    }
    out
}

impl GroupConsumer {
    pub(crate) fn new(conn: Connection, config: GroupConsumerConfig) -> Self {
        let consumer = Consumer::new(
            conn.clone(),
            ConsumerConfig {
                auto_offset_reset: config.auto_offset_reset,
                max_bytes: config.max_bytes,
                ..ConsumerConfig::default()
            },
        );
        let (_, updates) = watch::channel(AssignmentUpdate::default());
        GroupConsumer {
            conn,
            config,
            consumer,
            membership: Arc::default(),
            updates,
            applied_serial: 0,
            wake_heartbeat: Arc::new(Notify::new()),
            heartbeat: None,
            events: VecDeque::new(),
            listener: None,
            last_commit: Instant::now(),
        }
    }

    /// Joins the group subscribed to `topics` (replacing any previous
    /// subscription). Returns once the coordinator accepted the member.
    pub async fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        if topics.is_empty() {
            return Err(Error::InvalidRequest(
                "subscribe needs at least one topic".into(),
            ));
        }
        for t in topics {
            // Fail fast on a topic that does not exist.
            self.conn.partition_count(t).await?;
        }
        lock(&self.membership).topics = topics.iter().map(|t| t.to_string()).collect();
        if self.heartbeat.is_none() {
            let (tx, rx) = watch::channel(AssignmentUpdate::default());
            self.updates = rx;
            self.applied_serial = 0;
            let task = HeartbeatTask {
                conn: self.conn.clone(),
                config: self.config.clone(),
                membership: Arc::clone(&self.membership),
                updates: tx,
                wake: Arc::clone(&self.wake_heartbeat),
            };
            // Join synchronously so errors (bad group id, ...) surface here.
            let first = task.beat().await?;
            task.publish(first, false);
            self.heartbeat = Some(tokio::spawn(task.run()));
        } else {
            self.wake_heartbeat.notify_one();
        }
        Ok(())
    }

    /// Calls `f` on every rebalance event (from the caller's task, between
    /// records). Events are also queued for [`GroupConsumer::take_events`].
    pub fn on_rebalance(&mut self, f: impl FnMut(&RebalanceEvent) + Send + Sync + 'static) {
        self.listener = Some(Box::new(f));
    }

    /// Drains the queued rebalance events.
    pub fn take_events(&mut self) -> Vec<RebalanceEvent> {
        self.events.drain(..).collect()
    }

    /// Partitions this member owns now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.consumer.assignment()
    }

    /// This member's id (empty before joining).
    pub fn member_id(&self) -> String {
        lock(&self.membership).member_id.clone()
    }

    fn emit(&mut self, e: RebalanceEvent) {
        if let Some(l) = self.listener.as_mut() {
            l(&e);
        }
        self.events.push_back(e);
    }

    /// Applies the latest assignment from the heartbeat task, if new.
    async fn reconcile(&mut self) -> Result<()> {
        let update = self.updates.borrow_and_update().clone();
        if update.serial == self.applied_serial {
            return Ok(());
        }
        let current: BTreeSet<TopicPartition> = self.consumer.assignment().into_iter().collect();
        let revoked: Vec<TopicPartition> =
            current.difference(&update.partitions).cloned().collect();
        let added: Vec<TopicPartition> = update.partitions.difference(&current).cloned().collect();
        // Look up where new partitions start before changing anything, so a
        // failed lookup leaves the update to be applied again.
        let starts = if added.is_empty() {
            Vec::new()
        } else {
            self.committed(&added).await?
        };
        self.applied_serial = update.serial;
        if !revoked.is_empty() {
            if update.lost {
                self.emit(RebalanceEvent::Lost(revoked.clone()));
            } else {
                if self.config.auto_commit {
                    let positions = self.positions_of(&revoked);
                    if let Err(e) = self.commit_offsets(&positions).await {
                        tracing::warn!(error = %e, "commit of revoked partitions failed");
                    }
                }
                self.emit(RebalanceEvent::Revoked(revoked.clone()));
            }
        }
        self.consumer.assign(update.partitions.iter().cloned());
        if !added.is_empty() {
            for (tp, offset) in starts {
                if let Some(o) = offset {
                    self.consumer.seek(&tp, SeekTo::Offset(o)).await?;
                }
            }
            self.emit(RebalanceEvent::Assigned(added));
        }
        lock(&self.membership).owned = update.partitions;
        // Report the new ownership promptly so moved partitions are freed.
        self.wake_heartbeat.notify_one();
        Ok(())
    }

    fn positions_of(&self, tps: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        tps.iter()
            .filter_map(|tp| self.consumer.position(tp).map(|p| (tp.clone(), p)))
            .collect()
    }

    /// The group's committed offsets for these partitions.
    pub async fn committed(
        &self,
        tps: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        let set: BTreeSet<TopicPartition> = tps.iter().cloned().collect();
        let request = FetchOffsetsRequest {
            group_id: self.config.group_id.clone(),
            partitions: to_wire(&set),
        };
        let resp = self
            .conn
            .on_coordinator(&self.config.group_id, Resend::Safe, |c| {
                let request = request.clone();
                async move { groups(c).fetch_offsets(request).await }
            })
            .await?;
        Ok(resp
            .offsets
            .into_iter()
            .map(|o| {
                let offset = (o.offset >= 0).then_some(o.offset);
                (TopicPartition::new(o.topic, o.partition), offset)
            })
            .collect())
    }

    /// The next record, waiting for one; applies rebalances and auto-commit
    /// in between. `None` after `close`.
    pub async fn next_record(&mut self) -> Option<Result<ConsumerRecord>> {
        self.next_record_until(std::future::pending()).await
    }

    /// Like [`GroupConsumer::next_record`], but gives up and returns `None`
    /// once `stop` completes while waiting for records. `stop` is only
    /// watched where abandoning the wait is safe (never in the middle of
    /// applying a rebalance or a commit), so a binding can interrupt an idle
    /// wait to seek, commit or close without losing an assignment change.
    pub async fn next_record_until(
        &mut self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Option<Result<ConsumerRecord>> {
        tokio::pin!(stop);
        loop {
            // Closed: no more records.
            self.heartbeat.as_ref()?;
            if let Some(e) = lock(&self.membership).fatal.take() {
                return Some(Err(e));
            }
            if let Err(e) = self.reconcile().await {
                return Some(Err(e));
            }
            if self.config.auto_commit
                && self.last_commit.elapsed() >= self.config.auto_commit_interval
            {
                if let Err(e) = self.commit().await {
                    tracing::warn!(error = %e, "auto-commit failed");
                }
            }
            let next_commit = self.last_commit + self.config.auto_commit_interval;
            let timer = tokio::time::sleep_until(next_commit.into());
            if self.consumer.assignment().is_empty() {
                tokio::select! {
                    _ = self.updates.changed() => {}
                    _ = timer => {}
                    _ = &mut stop => return None,
                }
                continue;
            }
            tokio::select! {
                r = self.consumer.next_record() => match r {
                    Some(r) => return Some(r),
                    None => continue,
                },
                _ = self.updates.changed() => {}
                _ = timer, if self.config.auto_commit => {}
                _ = &mut stop => return None,
            }
        }
    }

    /// The next record if one is already fetched and no rebalance or
    /// auto-commit is due, without waiting; otherwise `None` (then call
    /// [`GroupConsumer::next_record`]). For language bindings.
    pub fn try_next_record(&mut self) -> Option<ConsumerRecord> {
        if self.heartbeat.is_none() || self.updates.has_changed().unwrap_or(true) {
            return None;
        }
        if self.config.auto_commit && self.last_commit.elapsed() >= self.config.auto_commit_interval
        {
            return None;
        }
        self.consumer.try_next_record()
    }

    /// Records as an async stream (borrowing the consumer).
    pub fn stream(&mut self) -> BoxStream<'_, Result<ConsumerRecord>> {
        futures::stream::unfold(
            self,
            |c| async move { c.next_record().await.map(|r| (r, c)) },
        )
        .boxed()
    }

    /// Commits the current position (last returned record + 1) of every
    /// owned partition and waits for the broker to store it durably.
    pub async fn commit(&mut self) -> Result<()> {
        let positions = self.positions_of(&self.consumer.assignment());
        self.last_commit = Instant::now();
        self.commit_offsets(&positions).await
    }

    /// Commits specific offsets (each the next offset to consume).
    pub async fn commit_offsets(&self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let req = self.commit_request(offsets);
        commit(&self.conn, &self.config.group_id, req).await
    }

    /// A commit of `offsets` under this member's current id and epoch.
    fn commit_request(&self, offsets: &[(TopicPartition, i64)]) -> CommitOffsetsRequest {
        let m = lock(&self.membership);
        CommitOffsetsRequest {
            group_id: self.config.group_id.clone(),
            member_id: m.member_id.clone(),
            member_epoch: m.epoch,
            offsets: offsets
                .iter()
                .map(|(tp, o)| OffsetCommit {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: *o,
                    metadata: String::new(),
                })
                .collect(),
        }
    }

    /// Commits in the background; failures are logged.
    pub fn commit_in_background(&mut self) {
        let positions = self.positions_of(&self.consumer.assignment());
        self.last_commit = Instant::now();
        let conn = self.conn.clone();
        let req = self.commit_request(&positions);
        let group = self.config.group_id.clone();
        tokio::spawn(async move {
            if let Err(e) = commit(&conn, &group, req).await {
                tracing::warn!(error = %e, "background commit failed");
            }
        });
    }

    /// Moves the position of an owned partition.
    pub async fn seek(&mut self, tp: &TopicPartition, to: SeekTo) -> Result<i64> {
        self.consumer.seek(tp, to).await
    }

    /// Position (next offset to return) of an owned partition.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.consumer.position(tp)
    }

    /// Lag of every owned partition: log end minus position.
    pub async fn lag(&self) -> Result<Vec<(TopicPartition, i64)>> {
        let mut out = Vec::new();
        for tp in self.consumer.assignment() {
            let (end, _) = self
                .conn
                .list_offsets(&tp.topic, tp.partition, OffsetSpec::Latest)
                .await?;
            let pos = self.consumer.position(&tp).unwrap_or(end);
            out.push((tp, (end - pos).max(0)));
        }
        Ok(out)
    }

    /// Commits (with auto-commit), leaves the group so its partitions move
    /// at once, and stops.
    pub async fn close(mut self) -> Result<()> {
        let Some(task) = self.heartbeat.take() else {
            return Ok(());
        };
        task.abort();
        let commit = if self.config.auto_commit {
            self.commit().await
        } else {
            Ok(())
        };
        let (member_id, topics) = {
            let m = lock(&self.membership);
            (m.member_id.clone(), m.topics.clone())
        };
        let request = GroupHeartbeatRequest {
            group_id: self.config.group_id.clone(),
            member_id,
            member_epoch: -1,
            topics,
            owned: Vec::new(),
            session_timeout_ms: self.config.session_timeout.as_millis() as u32,
            client_id: self.config.client_id.clone(),
        };
        // Leaving twice is harmless: the second finds no member.
        let leave = self
            .conn
            .on_coordinator(&self.config.group_id, Resend::Safe, |c| {
                let request = request.clone();
                async move { groups(c).heartbeat(request).await }
            })
            .await;
        commit?;
        leave.map(|_| ())
    }
}

/// Commits on the group's coordinator. Committing the same offsets twice
/// changes nothing, so a commit whose connection broke is sent again.
async fn commit(conn: &Connection, group: &str, req: CommitOffsetsRequest) -> Result<()> {
    conn.on_coordinator(group, Resend::Safe, |c| {
        let req = req.clone();
        async move { groups(c).commit_offsets(req).await }
    })
    .await
    .map(|_| ())
}

/// The background heartbeat loop of one member.
struct HeartbeatTask {
    conn: Connection,
    config: GroupConsumerConfig,
    membership: Arc<Mutex<Membership>>,
    updates: watch::Sender<AssignmentUpdate>,
    wake: Arc<Notify>,
}

struct Beat {
    assignment: BTreeSet<TopicPartition>,
    interval: Duration,
}

impl HeartbeatTask {
    async fn beat(&self) -> Result<Beat> {
        let req = {
            let m = lock(&self.membership);
            GroupHeartbeatRequest {
                group_id: self.config.group_id.clone(),
                member_id: m.member_id.clone(),
                member_epoch: m.epoch,
                topics: m.topics.clone(),
                owned: to_wire(&m.owned),
                session_timeout_ms: self.config.session_timeout.as_millis() as u32,
                client_id: self.config.client_id.clone(),
            }
        };
        // Not sent again after a broken connection: a join the coordinator
        // took would leave a second member behind. The heartbeat loop
        // retries on its own schedule.
        let resp = self
            .conn
            .on_coordinator(&self.config.group_id, Resend::IfNotSent, |c| {
                let req = req.clone();
                async move { groups(c).heartbeat(req).await }
            })
            .await?;
        {
            let mut m = lock(&self.membership);
            m.member_id = resp.member_id;
            m.epoch = resp.member_epoch;
        }
        let assignment = resp
            .assignment
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic;
                t.partitions
                    .into_iter()
                    .map(move |p| TopicPartition::new(topic.clone(), p))
            })
            .collect();
        Ok(Beat {
            assignment,
            interval: Duration::from_millis(u64::from(resp.heartbeat_interval_ms.max(100))),
        })
    }

    fn publish(&self, beat: Beat, lost: bool) {
        self.updates.send_if_modified(|u| {
            if u.partitions == beat.assignment && !lost {
                return false;
            }
            u.partitions = beat.assignment;
            u.lost = lost;
            u.serial += 1;
            true
        });
    }

    async fn run(self) {
        let mut interval = Duration::from_millis(500);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.wake.notified() => {}
            }
            match self.beat().await {
                Ok(beat) => {
                    interval = beat.interval;
                    self.publish(beat, false);
                }
                Err(Error::UnknownMember(_) | Error::FencedMemberEpoch(_)) => {
                    // Fenced or timed out: everything owned is lost; rejoin.
                    tracing::warn!(group = %self.config.group_id, "member fenced; rejoining");
                    {
                        let mut m = lock(&self.membership);
                        m.epoch = 0;
                        m.member_id.clear();
                        m.owned.clear();
                    }
                    self.publish(
                        Beat {
                            assignment: BTreeSet::new(),
                            interval,
                        },
                        true,
                    );
                    interval = Duration::ZERO;
                }
                Err(e) if e.is_retriable() => {
                    tracing::debug!(error = %e, "heartbeat failed; retrying");
                    interval = Duration::from_millis(200);
                }
                Err(e) => {
                    lock(&self.membership).fatal = Some(e);
                    return;
                }
            }
        }
    }
}
