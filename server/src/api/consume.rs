//! The Consumer service: fetch, subscribe (server push) and offset lookup.

use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::Stream;
use tidelog_proto::v1::{
    consumer_server, offset_spec::Spec, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, SubscribeRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::Api;
use crate::broker::{BrokerError, FetchResult, Partition};
use crate::log::LogError;

/// Default `max_bytes`.
const DEFAULT_MAX_BYTES: usize = 1024 * 1024;
/// Largest `max_bytes`: a response then fits the 4 MiB a default gRPC
/// client accepts (4 KiB left for the other fields and framing). Only a
/// single batch larger than this is sent whole and larger.
const LIMIT_MAX_BYTES: usize = 4 * 1024 * 1024 - 4 * 1024;
/// Longest long-poll wait.
const LIMIT_MAX_WAIT: Duration = Duration::from_secs(60);
/// How often an idle subscription reports the high watermark.
const SUBSCRIBE_KEEPALIVE: Duration = Duration::from_secs(5);
/// Pushed messages buffered per subscription.
const SUBSCRIBE_BUFFER: usize = 4;

fn max_bytes(requested: u32) -> usize {
    match requested {
        0 => DEFAULT_MAX_BYTES,
        n => (n as usize).min(LIMIT_MAX_BYTES),
    }
}

/// A negative offset is outside every log: OUT_OF_RANGE, as for any
/// offset outside `[log start, log end]`.
fn check_offset(partition: &Partition, offset: i64) -> Result<(), BrokerError> {
    if offset < 0 {
        return Err(BrokerError::Log(LogError::OffsetOutOfRange {
            offset,
            start: partition.log_start_offset(),
            end: partition.high_watermark(),
        }));
    }
    Ok(())
}

/// Kafka clients ask ListOffsets for timestamp -1 (latest) and -2
/// (earliest); Tidelog gives them the same meaning.
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;

fn response(r: FetchResult, requested: i64) -> FetchResponse {
    let next_offset = if r.read.bytes.is_empty() {
        requested
    } else {
        r.read.next_offset
    };
    FetchResponse {
        records: r.read.bytes,
        high_watermark: r.high_watermark,
        log_start_offset: r.log_start_offset,
        next_offset,
    }
}

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<FetchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl consumer_server::Consumer for Api {
    async fn fetch(
        &self,
        request: Request<FetchRequest>,
    ) -> Result<Response<FetchResponse>, Status> {
        let req = request.into_inner();
        let partition = self
            .partition_async(&req.topic, req.partition)
            .await
            .map_err(|e| self.fail(e))?;
        check_offset(&partition, req.offset).map_err(|e| self.fail(e))?;
        let wait = Duration::from_millis(u64::from(req.max_wait_ms)).min(LIMIT_MAX_WAIT);
        let started = Instant::now();
        let r = partition
            .fetch(req.offset, max_bytes(req.max_bytes), wait)
            .await
            .map_err(|e| self.fail(e))?;
        if !r.read.bytes.is_empty() {
            self.broker
                .metrics()
                .fetch_latency
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(Response::new(response(r, req.offset)))
    }

    type SubscribeStream = SubscribeStream;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let req = request.into_inner();
        let partition = self
            .partition_async(&req.topic, req.partition)
            .await
            .map_err(|e| self.fail(e))?;
        let topic = self.broker.topic(&req.topic).map_err(|e| self.fail(e))?;
        check_offset(&partition, req.offset).map_err(|e| self.fail(e))?;
        // Deleting the topic cancels this token: the stream then ends with
        // NOT_FOUND instead of idling on a partition that no longer exists.
        let deleted = topic.cancel_token().clone();
        let topic_name = req.topic.clone();
        // Fail fast on an out-of-range start rather than in the stream.
        let first = partition
            .fetch(req.offset, max_bytes(req.max_bytes), Duration::ZERO)
            .await
            .map_err(|e| self.fail(e))?;
        let (tx, rx) = mpsc::channel(SUBSCRIBE_BUFFER);
        let shutdown = self.broker.shutdown_token().clone();
        let api = self.clone();
        let limit = max_bytes(req.max_bytes);
        self.broker.spawn(async move {
            let mut offset = req.offset;
            let mut next = Some(first);
            loop {
                let result = match next.take() {
                    Some(r) => Ok(r),
                    None => tokio::select! {
                        r = partition.fetch(offset, limit, SUBSCRIBE_KEEPALIVE) => r,
                        _ = shutdown.cancelled() => Err(BrokerError::ShuttingDown),
                        _ = deleted.cancelled() => Err(BrokerError::TopicDeleted(topic_name.clone())),
                        _ = tx.closed() => return,
                    },
                };
                match result {
                    Ok(r) => {
                        let msg = response(r, offset);
                        offset = msg.next_offset;
                        if tx.send(Ok(msg)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(api.fail(e))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list_offsets(
        &self,
        request: Request<ListOffsetsRequest>,
    ) -> Result<Response<ListOffsetsResponse>, Status> {
        let req = request.into_inner();
        let partition = self
            .partition_async(&req.topic, req.partition)
            .await
            .map_err(|e| self.fail(e))?;
        let spec = req.spec.and_then(|s| s.spec).ok_or_else(|| {
            self.fail(BrokerError::InvalidRequest(
                "spec is required: earliest, latest or timestamp_ms".into(),
            ))
        })?;
        let (offset, timestamp_ms) = match spec {
            Spec::Earliest(true) | Spec::TimestampMs(EARLIEST_TIMESTAMP) => {
                (partition.log_start_offset(), -1)
            }
            Spec::Latest(true) | Spec::TimestampMs(LATEST_TIMESTAMP) => {
                (partition.high_watermark(), -1)
            }
            Spec::Earliest(false) | Spec::Latest(false) => {
                return Err(self.fail(BrokerError::InvalidRequest(
                    "earliest/latest must be true when set: set earliest = true, latest = true or timestamp_ms".into(),
                )))
            }
            Spec::TimestampMs(ts) if ts < 0 => {
                return Err(self.fail(BrokerError::InvalidRequest(format!(
                    "timestamp_ms {ts} is negative: use a time in ms since the Unix epoch, -1 for latest or -2 for earliest"
                ))))
            }
            Spec::TimestampMs(ts) => {
                let found = partition
                    .offset_for_timestamp(ts)
                    .await
                    .map_err(|e| self.fail(e))?;
                found.unwrap_or((partition.high_watermark(), -1))
            }
        };
        Ok(Response::new(ListOffsetsResponse {
            offset,
            timestamp_ms,
        }))
    }
}
