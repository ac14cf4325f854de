//! One consumer for both ways of reading: a consumer-group member
//! (subscribe) or a consumer of partitions it is given (assign). The
//! language bindings sit on this type, so waiting with a deadline,
//! reading in batches and re-delivering records a handler did not finish
//! are written once, here.

use std::future::Future;

use crate::connection::Connection;
use crate::consumer::{Consumer, ConsumerConfig, ConsumerRecord, SeekTo};
use crate::error::{Error, Result};
use crate::group::{GroupConsumer, GroupConsumerConfig, RebalanceEvent};
use crate::types::TopicPartition;

/// How a [`UnifiedConsumer`] gets its partitions.
#[derive(Debug, Clone)]
pub enum ConsumerMode {
    /// Partitions are assigned by the caller (`assign`, or every partition
    /// of the topics given to `subscribe`).
    Assign(ConsumerConfig),
    /// The consumer joins a group, which assigns partitions.
    Subscribe(GroupConsumerConfig),
}

enum State {
    Assign(Box<Consumer>),
    Group {
        consumer: Box<GroupConsumer>,
        subscribed: bool,
    },
    Closed,
}

/// Records handed out by the last [`UnifiedConsumer::next_records_until`],
/// as runs of one partition in the order handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    tp: TopicPartition,
    first: i64,
    last: i64,
}

/// A consumer that either subscribes as a group member or reads assigned
/// partitions, behind one set of calls.
///
/// ```no_run
/// # async fn demo() -> tidelog::Result<()> {
/// use tidelog::{Client, ConsumerMode, GroupConsumerConfig};
/// let client = Client::connect("127.0.0.1:7070").await?;
/// let mut consumer =
///     client.unified_consumer(ConsumerMode::Subscribe(GroupConsumerConfig::new("billing")));
/// consumer.subscribe(&["orders"]).await?;
/// let deadline = tokio::time::sleep(std::time::Duration::from_secs(1));
/// let batch = consumer.next_records_until(500, deadline).await?;
/// if let Some(first) = batch.first() {
///     // The handler failed: read this record and every later one again.
///     consumer.redeliver_from(&first.topic, first.partition, first.offset).await?;
/// }
/// consumer.close().await?;
/// # Ok(()) }
/// ```
pub struct UnifiedConsumer {
    state: State,
    group: bool,
    handed_out: Vec<Run>,
}

impl std::fmt::Debug for UnifiedConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnifiedConsumer")
            .field("group", &self.group)
            .field("assignment", &self.assignment())
            .finish()
    }
}

fn needs_group(what: &str) -> Error {
    Error::InvalidRequest(format!(
        "{what} needs a consumer group: create the consumer with a group id"
    ))
}

impl UnifiedConsumer {
    pub(crate) fn new(conn: Connection, mode: ConsumerMode) -> Self {
        let (state, group) = match mode {
            ConsumerMode::Assign(config) => {
                (State::Assign(Box::new(Consumer::new(conn, config))), false)
            }
            ConsumerMode::Subscribe(config) => (
                State::Group {
                    consumer: Box::new(GroupConsumer::new(conn, config)),
                    subscribed: false,
                },
                true,
            ),
        };
        UnifiedConsumer {
            state,
            group,
            handed_out: Vec::new(),
        }
    }

    /// Whether this consumer was made to join a group.
    pub fn is_group(&self) -> bool {
        self.group
    }

    /// Whether [`UnifiedConsumer::close`] ran.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    fn group_mut(&mut self, what: &str) -> Result<&mut GroupConsumer> {
        match &mut self.state {
            State::Group { consumer, .. } => Ok(consumer),
            State::Assign(_) => Err(needs_group(what)),
            State::Closed => Err(Error::Closed),
        }
    }

    fn group_ref(&self, what: &str) -> Result<&GroupConsumer> {
        match &self.state {
            State::Group { consumer, .. } => Ok(consumer),
            State::Assign(_) => Err(needs_group(what)),
            State::Closed => Err(Error::Closed),
        }
    }

    /// A group member joins the group subscribed to `topics` (replacing the
    /// subscription); otherwise every partition of `topics` is added to the
    /// assignment.
    pub async fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        match &mut self.state {
            State::Assign(c) => c.assign_topics(topics).await,
            State::Group {
                consumer,
                subscribed,
            } => {
                consumer.subscribe(topics).await?;
                *subscribed = true;
                Ok(())
            }
            State::Closed => Err(Error::Closed),
        }
    }

    /// Replaces the assignment (not for group members: the group assigns).
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) -> Result<()> {
        match &mut self.state {
            State::Assign(c) => {
                c.assign(partitions);
                Ok(())
            }
            State::Group { .. } => Err(Error::InvalidRequest(
                "a group member gets its partitions from the group: use subscribe()".into(),
            )),
            State::Closed => Err(Error::Closed),
        }
    }

    /// The partitions read now, sorted.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        match &self.state {
            State::Assign(c) => c.assignment(),
            State::Group { consumer, .. } => consumer.assignment(),
            State::Closed => Vec::new(),
        }
    }

    /// Offset of the next record returned for a partition, once positioned.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        match &self.state {
            State::Assign(c) => c.position(tp),
            State::Group { consumer, .. } => consumer.position(tp),
            State::Closed => None,
        }
    }

    /// Moves a partition's position.
    pub async fn seek(&mut self, tp: &TopicPartition, to: SeekTo) -> Result<i64> {
        match &mut self.state {
            State::Assign(c) => c.seek(tp, to).await,
            State::Group { consumer, .. } => consumer.seek(tp, to).await,
            State::Closed => Err(Error::Closed),
        }
    }

    /// The next record if one is already fetched (and, for a member, no
    /// rebalance or auto-commit is due), without waiting.
    pub fn try_next_record(&mut self) -> Option<ConsumerRecord> {
        match &mut self.state {
            State::Assign(c) => c.try_next_record(),
            State::Group { consumer, .. } => consumer.try_next_record(),
            State::Closed => None,
        }
    }

    /// The next record, waiting for one until `stop` completes; `None` when
    /// `stop` came first or the consumer is closed. A member only gives up
    /// where that is safe (never while applying a rebalance or a commit),
    /// so `stop` can interrupt an idle wait without losing anything.
    pub async fn next_record_until(
        &mut self,
        stop: impl Future<Output = ()>,
    ) -> Option<Result<ConsumerRecord>> {
        match &mut self.state {
            State::Assign(c) => {
                tokio::select! {
                    r = c.next_record() => Some(r.unwrap_or_else(|| Err(Error::InvalidRequest(
                        "nothing is assigned to this consumer: call subscribe() or assign() first"
                            .into(),
                    )))),
                    _ = stop => None,
                }
            }
            State::Group {
                subscribed: false, ..
            } => Some(Err(Error::InvalidRequest(
                "this group consumer is not subscribed: call subscribe(topics) first".into(),
            ))),
            State::Group { consumer, .. } => consumer.next_record_until(stop).await,
            State::Closed => None,
        }
    }

    /// Up to `max` records in the order read: those already fetched at once,
    /// else the first to arrive before `stop` and any fetched with it
    /// (empty when `stop` came first). They are remembered for
    /// [`UnifiedConsumer::redeliver_from`] until the next call.
    pub async fn next_records_until(
        &mut self,
        max: usize,
        stop: impl Future<Output = ()>,
    ) -> Result<Vec<ConsumerRecord>> {
        let max = max.max(1);
        let mut records = Vec::new();
        self.drain(&mut records, max);
        if records.is_empty() {
            if let Some(r) = self.next_record_until(stop).await {
                records.push(r?);
            }
            self.drain(&mut records, max);
        }
        self.handed_out = runs(&records);
        Ok(records)
    }

    fn drain(&mut self, into: &mut Vec<ConsumerRecord>, max: usize) {
        while into.len() < max {
            match self.try_next_record() {
                Some(r) => into.push(r),
                None => break,
            }
        }
    }

    /// Reads again, from `offset` of `topic`/`partition`, the records the
    /// last [`UnifiedConsumer::next_records_until`] handed out from that one
    /// on: every partition handed out later moves back to its first record
    /// then, so a failed handler loses nothing and nothing unprocessed is
    /// committed. A partition not in that batch just moves.
    pub async fn redeliver_from(&mut self, topic: &str, partition: u32, offset: i64) -> Result<()> {
        let runs = std::mem::take(&mut self.handed_out);
        let tp = TopicPartition::new(topic, partition);
        // The run holding `offset`, else the partition's first run (an
        // offset the caller resolved oddly still rewinds what came later).
        let from = runs
            .iter()
            .position(|r| r.tp == tp && offset <= r.last)
            .or_else(|| runs.iter().position(|r| r.tp == tp));
        let mut targets = vec![(tp, offset)];
        if let Some(i) = from {
            for r in &runs[i + 1..] {
                if !targets.iter().any(|(t, _)| *t == r.tp) {
                    targets.push((r.tp.clone(), r.first));
                }
            }
        }
        for (tp, offset) in targets {
            self.seek(&tp, SeekTo::Offset(offset)).await?;
        }
        Ok(())
    }

    /// Moves back to one record fetched but not delivered, so it is read
    /// again (a binding whose caller gave up waiting for it).
    pub async fn rewind(&mut self, record: &ConsumerRecord) -> Result<()> {
        let tp = TopicPartition::new(&*record.topic, record.partition);
        self.seek(&tp, SeekTo::Offset(record.offset))
            .await
            .map(|_| ())
    }

    /// Commits the position of every owned partition (group members).
    pub async fn commit(&mut self) -> Result<()> {
        self.group_mut("commit")?.commit().await
    }

    /// Commits specific offsets, each the next offset to read (group
    /// members).
    pub async fn commit_offsets(&self, offsets: &[(TopicPartition, i64)]) -> Result<()> {
        self.group_ref("commit")?.commit_offsets(offsets).await
    }

    /// Commits the positions in the background (group members); must run
    /// inside a Tokio runtime.
    pub fn commit_in_background(&mut self) -> Result<()> {
        self.group_mut("commit")?.commit_in_background();
        Ok(())
    }

    /// The group's committed offsets of these partitions.
    pub async fn committed(
        &self,
        tps: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<i64>)>> {
        self.group_ref("committed")?.committed(tps).await
    }

    /// Log end minus position of every owned partition (group members).
    pub async fn lag(&self) -> Result<Vec<(TopicPartition, i64)>> {
        self.group_ref("lag")?.lag().await
    }

    /// Rebalance events since the last call (none without a group).
    pub fn take_events(&mut self) -> Vec<RebalanceEvent> {
        match &mut self.state {
            State::Group { consumer, .. } => consumer.take_events(),
            _ => Vec::new(),
        }
    }

    /// Stops reading; a member commits (with auto-commit) and leaves its
    /// group. Later calls fail with [`Error::Closed`] or return nothing.
    pub async fn close(&mut self) -> Result<()> {
        self.handed_out.clear();
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Group { consumer, .. } => consumer.close().await,
            State::Assign(_) | State::Closed => Ok(()),
        }
    }
}

/// The runs of one partition in `records`, in order.
fn runs(records: &[ConsumerRecord]) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for r in records {
        match out.last_mut() {
            Some(run) if run.tp.partition == r.partition && *run.tp.topic == *r.topic => {
                run.last = r.offset;
            }
            _ => out.push(Run {
                tp: TopicPartition::new(&*r.topic, r.partition),
                first: r.offset,
                last: r.offset,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn record(topic: &str, partition: u32, offset: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: Arc::from(topic),
            partition,
            offset,
            timestamp: 0,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn runs_group_consecutive_records_of_a_partition() {
        let rs = [
            record("a", 0, 5),
            record("a", 0, 6),
            record("a", 1, 2),
            record("a", 0, 7),
        ];
        let got = runs(&rs);
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].first, got[0].last), (5, 6));
        assert_eq!(got[2].tp, TopicPartition::new("a", 0));
    }
}
