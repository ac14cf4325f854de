//! The per-partition sender: takes batches from the partition's queue,
//! stamps them with the producer id and sequence numbers, and keeps up to
//! `max_in_flight` requests outstanding on one `ProduceStream`.
//!
//! The stream keeps requests in order end to end: the broker appends and
//! answers them in the order sent. A refused request appends nothing, and
//! the requests sent after it are refused as out of sequence (appending
//! nothing either): they are sent again, in order, behind it (retriable
//! errors; the retry carries the same sequence numbers, so a request the
//! broker did append before failing is recognised) or re-stamped under a
//! new producer epoch (failed for good), so no acknowledged record lands
//! twice or out of order. A broken stream is reopened and everything
//! unanswered is sent again; the broker recognises what it already has by
//! the sequence numbers. Streams go to the partition's leader; when it
//! answers `NOT_LEADER` or its stream breaks, the window is sent again the
//! same way to the leader the metadata names next (`connection.rs`).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidelog_proto::batch::restamp_producer;
use tidelog_proto::limits::DEDUPE_WINDOW_BATCHES;
use tidelog_proto::v1::{Acks as WireAcks, ProduceRequest, ProduceStreamResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::accumulator::{PartitionQueue, Ready, ReadyBatch};
use super::delivery::{BatchOutcome, OutcomeGuard};
use super::{Acks, Shared};
use crate::connection::producer;
use crate::error::{Error, Result};

/// A batch on the wire.
struct SentBatch {
    bytes: Bytes,
    outcome: OutcomeGuard,
    records: u32,
    permits: usize,
}

/// A produce request on its way.
struct InFlight {
    batches: Vec<SentBatch>,
    epoch: i16,
    first_seq: i32,
    request_id: u64,
    /// The sender's failure count when this was (last) sent: a refusal as
    /// out of sequence is expected if an earlier request failed since.
    sent_after_failures: u64,
    sent_at: Instant,
    /// When its records' delivery timeout runs out.
    give_up_at: Instant,
}

/// One `ProduceStream` call, to the partition's leader.
struct Session {
    requests: mpsc::Sender<ProduceRequest>,
    answers: tonic::Streaming<ProduceStreamResponse>,
    /// The leader's address, to report what a broken stream says about it.
    address: String,
}

impl Session {
    async fn open(shared: &Shared, topic: &str, partition: u32) -> Result<Session> {
        let route = shared.conn.leader(topic, partition).await?;
        // Room for the whole window: sending never waits on the channel.
        let (tx, rx) = mpsc::channel(shared.window() + 1);
        let answers = shared
            .conn
            .on_route(
                topic,
                partition,
                &route,
                producer(route.channel.clone()).produce_stream(ReceiverStream::new(rx)),
            )
            .await?;
        Ok(Session {
            requests: tx,
            answers,
            address: route.address,
        })
    }
}

/// What the sender loop woke up for.
enum Event {
    Answer(Result<ProduceStreamResponse>),
    Woken,
    /// The oldest request went unanswered for the request timeout.
    Stalled,
}

/// The per-partition sender's state.
pub(crate) struct Sender {
    shared: Arc<Shared>,
    queue: Arc<PartitionQueue>,
    partition: u32,
    acks: i32,
    /// The producer's id, until this partition ran out of epochs for it.
    producer_id: i64,
    sequence: i32,
    epoch: i16,
    next_request_id: u64,
    /// Requests that failed or were refused so far.
    failures: u64,
    in_flight: VecDeque<InFlight>,
    session: Option<Session>,
    /// Set after a failure: send nothing new until the window is empty, so
    /// records re-sent under a new epoch keep their place in line.
    draining: bool,
    backoff: Duration,
    /// This sender reported a retry that no success has cleared yet.
    retrying: bool,
}

impl Sender {
    pub(crate) fn new(shared: Arc<Shared>, queue: Arc<PartitionQueue>, partition: u32) -> Self {
        let acks = match shared.config.acks {
            Acks::All => WireAcks::All as i32,
            Acks::Leader => WireAcks::Leader as i32,
        };
        let backoff = shared.config.retry_backoff;
        let producer_id = shared.producer_id;
        Sender {
            shared,
            queue,
            partition,
            acks,
            producer_id,
            sequence: 0,
            epoch: 0,
            next_request_id: 0,
            failures: 0,
            in_flight: VecDeque::new(),
            session: None,
            draining: false,
            backoff,
            retrying: false,
        }
    }

    /// Runs until the producer is closed and everything is answered.
    pub(crate) async fn run(mut self) {
        let max_in_flight = self.shared.window();
        loop {
            if self.in_flight.is_empty() {
                self.draining = false;
            } else if self.session.is_none() {
                if let Err(e) = self.reconnect().await {
                    self.connection_failed(e).await;
                    continue;
                }
            }
            let can_send = !self.draining && self.in_flight.len() < max_in_flight;
            // Registered before looking at the queue so a record arriving in
            // between still wakes the loop.
            let queue = Arc::clone(&self.queue);
            let woken = queue.wake.notified();
            let mut deadline = None;
            if can_send {
                let hurry = self.shared.flushing.load(Ordering::Acquire) > 0
                    || self.shared.closed.load(Ordering::Acquire);
                match queue.readiness(hurry, self.shared.config.linger) {
                    Ready::Now => {
                        if self.session.is_none() {
                            if let Err(e) = self.reconnect().await {
                                self.cannot_connect(e).await;
                                continue;
                            }
                        }
                        let batches = queue.take(
                            self.shared.config.max_request_bytes,
                            self.max_batches_per_request(),
                            true,
                        );
                        if !batches.is_empty() {
                            self.send_new(batches);
                        }
                        continue;
                    }
                    Ready::At(d) => deadline = Some(d),
                    Ready::Empty => {
                        if self.in_flight.is_empty() && self.shared.closed.load(Ordering::Acquire) {
                            return;
                        }
                    }
                }
            }
            let stall_at = self
                .in_flight
                .front()
                .map(|f| f.sent_at + self.shared.conn.config().request_timeout);
            let event = match (&mut self.session, self.in_flight.is_empty()) {
                (Some(session), false) => tokio::select! {
                    answer = session.answers.message() => Event::Answer(match answer {
                        Ok(Some(a)) => Ok(a),
                        Ok(None) => Err(Error::Unavailable("the broker ended the produce stream".into())),
                        Err(status) => Err(self.shared.conn.partition_failed(
                            self.queue.topic(),
                            self.partition,
                            &session.address,
                            status,
                        )),
                    }),
                    _ = woken, if can_send => Event::Woken,
                    _ = sleep_until(deadline) => Event::Woken,
                    _ = sleep_until(stall_at) => Event::Stalled,
                },
                _ => {
                    tokio::select! {
                        _ = woken => {},
                        _ = sleep_until(deadline) => {},
                    }
                    Event::Woken
                }
            };
            match event {
                Event::Woken => {}
                Event::Stalled => {
                    let e = Error::Timeout(format!(
                        "no produce answer within {:?}",
                        self.shared.conn.config().request_timeout
                    ));
                    // A leader that stopped answering may have been
                    // replaced: look it up again before reconnecting.
                    self.shared.conn.forget_leaders(self.queue.topic());
                    self.connection_failed(e).await;
                }
                Event::Answer(Err(e)) => self.connection_failed(e).await,
                Event::Answer(Ok(answer)) => self.answered(answer).await,
            }
        }
    }

    /// Keeps the whole window within what the broker remembers for
    /// recognising retries.
    fn max_batches_per_request(&self) -> usize {
        DEDUPE_WINDOW_BATCHES / self.shared.window()
    }

    /// Stamps new batches with the next sequence numbers and sends them.
    fn send_new(&mut self, batches: Vec<ReadyBatch>) {
        let first_seq = self.sequence;
        let batches = batches
            .into_iter()
            .map(|b| {
                let bytes = b
                    .builder
                    .finish(self.producer_id, self.epoch, self.sequence);
                self.sequence = next_sequence(self.sequence, b.records);
                SentBatch {
                    bytes,
                    outcome: b.outcome,
                    records: b.records,
                    permits: b.permits,
                }
            })
            .collect();
        let now = Instant::now();
        self.transmit(InFlight {
            batches,
            epoch: self.epoch,
            first_seq,
            request_id: 0,
            sent_after_failures: self.failures,
            sent_at: now,
            give_up_at: now + self.shared.config.delivery_timeout,
        });
    }

    /// Sends a request on the current stream (if any) and puts it at the
    /// back of the window; without a stream it waits for the reconnect,
    /// which sends the whole window again.
    fn transmit(&mut self, mut request: InFlight) {
        request.request_id = self.next_request_id;
        self.next_request_id += 1;
        request.sent_at = Instant::now();
        if let Some(session) = &self.session {
            let sent = session.requests.try_send(ProduceRequest {
                topic: self.queue.topic().to_string(),
                partition: self.partition,
                acks: self.acks,
                batches: request.batches.iter().map(|b| b.bytes.clone()).collect(),
                request_id: request.request_id,
            });
            if sent.is_err() {
                self.session = None;
            }
        }
        self.in_flight.push_back(request);
    }

    /// Opens a new stream and sends every unanswered request again, in
    /// order.
    async fn reconnect(&mut self) -> Result<()> {
        self.session = None;
        let session = Session::open(&self.shared, self.queue.topic(), self.partition).await?;
        self.session = Some(session);
        let window: Vec<InFlight> = self.in_flight.drain(..).collect();
        for request in window {
            self.transmit(request);
        }
        Ok(())
    }

    /// Publishes that this partition retries `e` (see `Producer::retries`).
    fn report_retry(&mut self, e: &Error) {
        self.retrying = true;
        self.shared.retrying.send_replace(Some(super::Retrying {
            topic: self.queue.topic().to_string(),
            partition: self.partition,
            error: e.clone(),
        }));
    }

    async fn sleep_backoff(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
    }

    /// No stream could be opened for queued records (nothing in flight):
    /// fails them when the error is final or their delivery timeout ran
    /// out, otherwise waits a back-off before the next try.
    async fn cannot_connect(&mut self, e: Error) {
        let expired = self
            .queue
            .oldest()
            .is_some_and(|t| t + self.shared.config.delivery_timeout <= Instant::now());
        if expired || !e.is_retriable() {
            for b in self.queue.take(usize::MAX, usize::MAX, true) {
                self.settle(&b.outcome, b.records, b.permits, Err(e.clone()));
            }
            return;
        }
        self.report_retry(&e);
        self.sleep_backoff().await;
    }

    /// The stream broke, could not be opened, or stalled: the outcome of
    /// everything in flight is unknown. Gives up on the window once its
    /// oldest request is past its delivery timeout (under a new epoch,
    /// since some of it may have been written); otherwise sends it all
    /// again on a new stream after a back-off.
    async fn connection_failed(&mut self, e: Error) {
        tracing::debug!(error = %e, topic = %self.queue.topic(), partition = self.partition, "produce stream failed; reconnecting");
        self.session = None;
        self.failures += 1;
        let now = Instant::now();
        let expired = self
            .in_flight
            .front()
            .is_some_and(|f| f.give_up_at <= now + self.backoff);
        if expired || (!e.is_retriable() && !self.in_flight.is_empty()) {
            // The whole window: re-sending only part of it could reorder.
            let window: Vec<InFlight> = self.in_flight.drain(..).collect();
            self.new_epoch();
            for request in window {
                self.fail_request(request, &e);
            }
            return;
        }
        self.report_retry(&e);
        self.sleep_backoff().await;
        if let Err(e) = self.reconnect().await {
            tracing::debug!(error = %e, "produce stream reconnect failed");
        }
    }

    /// Handles the answer to the oldest request in flight.
    async fn answered(&mut self, answer: ProduceStreamResponse) {
        let Some(done) = self.in_flight.pop_front() else {
            return;
        };
        if answer.request_id != done.request_id {
            // Answers come in request order; anything else means the stream
            // is not what we think it is. Start over on a new one.
            let e = Error::Unavailable(format!(
                "produce answer {} arrived while {} was expected",
                answer.request_id, done.request_id
            ));
            self.in_flight.push_front(done);
            self.connection_failed(e).await;
            return;
        }
        let outcome = match (answer.response, answer.error) {
            (_, Some(error)) => Err(Error::from(error)),
            (Some(resp), None) if resp.results.len() == done.batches.len() => Ok(resp),
            (resp, None) => Err(Error::Broker {
                code: tonic::Code::Internal,
                message: format!(
                    "broker answered {} results for {} batches",
                    resp.map_or(0, |r| r.results.len()),
                    done.batches.len()
                ),
            }),
        };
        match outcome {
            Ok(resp) => {
                self.backoff = self.shared.config.retry_backoff;
                if std::mem::take(&mut self.retrying) {
                    self.shared.retrying.send_replace(None);
                }
                for (b, r) in done.batches.iter().zip(&resp.results) {
                    self.settle(&b.outcome, b.records, b.permits, Ok(r.base_offset));
                }
            }
            // Refused without appending because an earlier request failed
            // after this one was sent, or because a failure changed the
            // epoch: send it again behind the earlier ones.
            Err(Error::OutOfOrderSequence(_) | Error::ProducerFenced(_))
                if done.sent_after_failures < self.failures || done.epoch != self.epoch =>
            {
                let mut request = done;
                if request.epoch != self.epoch {
                    self.restamp(&mut request);
                }
                request.sent_after_failures = self.failures;
                self.transmit(request);
            }
            // Retriable: send it again with the same numbers (should the
            // broker have appended it before failing, it recognises the
            // retry), behind what is in flight; those are refused as out of
            // sequence and follow it. Not once the epoch changed: re-stamped
            // it could be written twice, and sent as it is it would land
            // behind records sent after it.
            // The stream's broker no longer leads the partition, and every
            // request behind this one gets the same answer: send the whole
            // window again, in order and with the same numbers, on a stream
            // to the leader the metadata names now (a produce answer carries
            // no leader hint, so the metadata is asked again).
            Err(e @ Error::NotLeader(_))
                if done.epoch == self.epoch && Instant::now() + self.backoff < done.give_up_at =>
            {
                tracing::debug!(error = %e, topic = %self.queue.topic(), partition = self.partition, "leader moved; rerouting produce");
                self.shared.conn.forget_leaders(self.queue.topic());
                self.in_flight.push_front(done);
                self.connection_failed(e).await;
            }
            Err(e)
                if e.is_retriable()
                    && done.epoch == self.epoch
                    && Instant::now() + self.backoff < done.give_up_at =>
            {
                tracing::debug!(error = %e, topic = %self.queue.topic(), partition = self.partition, "retrying produce");
                self.report_retry(&e);
                self.failures += 1;
                self.sleep_backoff().await;
                let mut request = done;
                request.sent_after_failures = self.failures;
                self.transmit(request);
            }
            Err(e) => {
                self.failures += 1;
                match &e {
                    // Nothing of the request was appended and nothing else
                    // is in flight: reuse the numbers.
                    Error::RecordTooLarge(_)
                    | Error::CorruptBatch(_)
                    | Error::InvalidRequest(_)
                        if self.in_flight.is_empty() && done.epoch == self.epoch =>
                    {
                        self.sequence = done.first_seq;
                    }
                    // Unknown outcome or sequence trouble: a new epoch resets
                    // the broker's expectations for this producer.
                    _ => self.new_epoch(),
                }
                self.fail_request(done, &e);
            }
        }
    }

    /// Gives a refused request the current epoch and fresh sequence numbers.
    fn restamp(&mut self, request: &mut InFlight) {
        request.first_seq = self.sequence;
        for b in &mut request.batches {
            b.bytes = restamp_producer(&b.bytes, self.producer_id, self.epoch, self.sequence);
            self.sequence = next_sequence(self.sequence, b.records);
        }
        request.epoch = self.epoch;
    }

    fn new_epoch(&mut self) {
        (self.producer_id, self.epoch) = next_epoch(self.producer_id, self.epoch);
        self.sequence = 0;
        self.draining = true;
    }

    fn fail_request(&self, request: InFlight, e: &Error) {
        for b in &request.batches {
            self.settle(&b.outcome, b.records, b.permits, Err(e.clone()));
        }
    }

    /// Settles a batch: its futures resolve, its buffer space is returned.
    fn settle(&self, outcome: &BatchOutcome, records: u32, permits: usize, r: Result<i64>) {
        outcome.complete(r);
        self.shared.release(records as usize, permits);
    }
}

/// The identity after a failure: the next epoch, or — epochs only grow on
/// the broker — a new random producer id once they are used up.
fn next_epoch(producer_id: i64, epoch: i16) -> (i64, i16) {
    if epoch == i16::MAX {
        ((rand::random::<u64>() >> 1) as i64, 0)
    } else {
        (producer_id, epoch + 1)
    }
}

/// Sequence numbers wrap to 0 after `i32::MAX`, as the broker expects.
fn next_sequence(seq: i32, records: u32) -> i32 {
    let next = i64::from(seq) + i64::from(records);
    if next > i64::from(i32::MAX) {
        (next - i64::from(i32::MAX) - 1) as i32
    } else {
        next as i32
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::{next_epoch, next_sequence};

    #[test]
    fn epochs_grow_and_a_used_up_producer_id_is_replaced() {
        assert_eq!(next_epoch(7, 0), (7, 1));
        assert_eq!(next_epoch(7, i16::MAX - 1), (7, i16::MAX));
        let (id, epoch) = next_epoch(7, i16::MAX);
        assert_eq!(epoch, 0);
        assert!(id >= 0 && id != 7, "a fresh non-negative id: {id}");
    }

    #[test]
    fn sequences_wrap_like_the_broker_expects() {
        assert_eq!(next_sequence(0, 10), 10);
        assert_eq!(next_sequence(i32::MAX - 1, 1), i32::MAX);
        assert_eq!(next_sequence(i32::MAX, 1), 0);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(next_sequence(i32::MAX - 1, 5), 3);
    }
}
