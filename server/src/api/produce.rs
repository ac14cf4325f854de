//! The Producer service: unary `Produce` and pipelined `ProduceStream`.
//!
//! Both validate a request the same way and append it at once. The unary
//! call then waits for durability itself; the stream hands that wait to an
//! answering task, so the next request on the stream is appended while the
//! previous one is still being fsynced. Requests on one stream are appended
//! and answered strictly in the order they arrived: HTTP/2 keeps a stream's
//! messages in order, which is what makes pipelining safe for idempotent
//! producers without any reordering on the broker.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use tidelog_proto::batch::{validate_batch, validate_records, DEFAULT_MAX_DECOMPRESSED};
use tidelog_proto::limits::MAX_REQUEST_DECOMPRESSED;
use tidelog_proto::v1::{
    producer_server, Acks, BatchResult, ProduceError, ProduceRequest, ProduceResponse,
    ProduceStreamResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{status, Api};
use crate::broker::{AckMode, Appended, BrokerError, Partition};
use crate::log::{IncomingBatch, LogError};

/// Requests of one stream appended but not yet answered. Bounds what a
/// client can pile up; beyond it the broker stops reading the stream and
/// HTTP/2 flow control holds the client back.
const STREAM_WINDOW: usize = 32;
/// How long answers may still take after shutdown began.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A request appended (or refused) and waiting for its answer.
struct Started {
    partition: Arc<Partition>,
    appended: Appended,
    mode: AckMode,
    label: &'static str,
    received: Instant,
}

/// A validated request, ready to append.
struct Prepared {
    partition: Arc<Partition>,
    batches: Vec<IncomingBatch>,
    mode: AckMode,
    label: &'static str,
}

impl Api {
    /// Checks a request and its batches; nothing is appended on error.
    fn prepare(&self, req: ProduceRequest) -> Result<Prepared, BrokerError> {
        let (mode, label) = match Acks::try_from(req.acks) {
            Ok(Acks::Unspecified | Acks::All) => (AckMode::Durable, "all"),
            Ok(Acks::Leader | Acks::None) => (AckMode::Written, "leader"),
            Err(_) => {
                return Err(BrokerError::InvalidRequest(format!(
                    "acks={} is not one of ACKS_ALL, ACKS_LEADER, ACKS_NONE",
                    req.acks
                )))
            }
        };
        let partition = self.partition(&req.topic, req.partition)?;
        // Local disk past the high-water mark (uploads behind): a retriable
        // refusal instead of filling the disk.
        self.broker.check_disk_space()?;
        if req.batches.is_empty() {
            return Err(BrokerError::InvalidRequest(
                "a produce request needs at least one batch".into(),
            ));
        }
        let mut batches = Vec::with_capacity(req.batches.len());
        // What the request's compressed sections may inflate to in all: a
        // request of highly compressed batches cannot make the broker
        // inflate more than this, whatever each one claims.
        let mut budget = MAX_REQUEST_DECOMPRESSED;
        for (i, raw) in req.batches.into_iter().enumerate() {
            // The header and CRC, then every record: a CRC proves only
            // that the client meant these bytes, not that consumers can
            // decode them.
            let header = validate_batch(&raw)
                .and_then(|h| {
                    let inflated =
                        validate_records(&h, &raw, DEFAULT_MAX_DECOMPRESSED.min(budget))?;
                    budget -= inflated;
                    Ok(h)
                })
                .map_err(|e| {
                    tracing::debug!(batch = i, error = %e, "rejected batch");
                    BrokerError::Log(LogError::Corrupt(e))
                })?;
            // No copy: the log writes a stamped copy of the header and then
            // these bytes after it.
            batches.push(IncomingBatch { bytes: raw, header });
        }
        Ok(Prepared {
            partition,
            batches,
            mode,
            label,
        })
    }

    /// Validates and appends (to the page cache) one request.
    fn start(&self, req: ProduceRequest, received: Instant) -> Result<Started, BrokerError> {
        let p = self.prepare(req)?;
        let appended = p.partition.append_now(&p.batches)?;
        Ok(Started {
            partition: p.partition,
            appended,
            mode: p.mode,
            label: p.label,
            received,
        })
    }

    /// Waits as the request's acks say and builds its answer.
    async fn finish(&self, s: Started) -> Result<ProduceResponse, BrokerError> {
        if s.mode == AckMode::Durable {
            s.partition.wait_durable(s.appended.end).await?;
        }
        self.broker
            .metrics()
            .produce_latency
            .with_label_values(&[s.label])
            .observe(s.received.elapsed().as_secs_f64());
        Ok(ProduceResponse {
            results: s
                .appended
                .results
                .into_iter()
                .map(|r| BatchResult {
                    base_offset: r.base_offset,
                    duplicate: r.duplicate,
                })
                .collect(),
            log_start_offset: s.partition.log_start_offset(),
        })
    }

    /// A stream answer for a failed request (counted like a failed call).
    fn stream_error(&self, request_id: u64, e: BrokerError) -> ProduceStreamResponse {
        let (code, reason) = status::classify(&e);
        let message = e.to_string();
        // Counted in the error metrics like a failed call.
        let _ = self.fail(e);
        ProduceStreamResponse {
            request_id,
            response: None,
            error: Some(ProduceError {
                code: code as i32,
                reason: reason as i32,
                message,
            }),
        }
    }
}

/// Waits for a request's answer, but not forever once the broker stops: the
/// flushers' last fsync covers everything appended before shutdown, so the
/// grace only matters for an append that raced with it.
async fn finish_or_give_up(
    api: &Api,
    s: Started,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<ProduceResponse, BrokerError> {
    tokio::select! {
        r = api.finish(s) => r,
        _ = shutdown_grace(shutdown) => Err(BrokerError::ShuttingDown),
    }
}

/// Resolves [`SHUTDOWN_GRACE`] after shutdown began.
async fn shutdown_grace(shutdown: &tokio_util::sync::CancellationToken) {
    shutdown.cancelled().await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}

type AnswerStream = Pin<Box<dyn Stream<Item = Result<ProduceStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl producer_server::Producer for Api {
    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        let started = self
            .start(request.into_inner(), Instant::now())
            .map_err(|e| self.fail(e))?;
        let response = self.finish(started).await.map_err(|e| self.fail(e))?;
        Ok(Response::new(response))
    }

    type ProduceStreamStream = AnswerStream;

    async fn produce_stream(
        &self,
        request: Request<Streaming<ProduceRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        let mut inbound = request.into_inner();
        let (pending_tx, mut pending_rx) =
            mpsc::channel::<(u64, Result<Started, BrokerError>)>(STREAM_WINDOW);
        let (out_tx, out_rx) = mpsc::channel(STREAM_WINDOW);
        let shutdown = self.broker.shutdown_token().clone();
        // Reader: appends each request as it arrives, in order.
        let api = self.clone();
        self.broker.spawn(async move {
            loop {
                let next = tokio::select! {
                    // Shutdown first: nothing is appended after the flushers'
                    // last fsync began.
                    biased;
                    _ = shutdown.cancelled() => break,
                    m = inbound.message() => m,
                };
                match next {
                    Ok(Some(req)) => {
                        let id = req.request_id;
                        let started = api.start(req, Instant::now());
                        let queued = tokio::select! {
                            biased;
                            _ = shutdown.cancelled() => false,
                            sent = pending_tx.send((id, started)) => sent.is_ok(),
                        };
                        if !queued {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(%status, "produce stream ended by the client");
                        break;
                    }
                }
            }
        });
        // Answerer: answers in arrival order once each request is durable.
        let api = self.clone();
        let shutdown = self.broker.shutdown_token().clone();
        self.broker.spawn(async move {
            while let Some((id, started)) = pending_rx.recv().await {
                let answer = match started {
                    Ok(s) => match finish_or_give_up(&api, s, &shutdown).await {
                        Ok(response) => ProduceStreamResponse {
                            request_id: id,
                            response: Some(response),
                            error: None,
                        },
                        Err(e) => api.stream_error(id, e),
                    },
                    Err(e) => api.stream_error(id, e),
                };
                // A client that stops reading answers cannot hold up
                // shutdown beyond the grace period.
                let sent = tokio::select! {
                    sent = out_tx.send(Ok(answer)) => sent.is_ok(),
                    _ = shutdown_grace(&shutdown) => false,
                };
                if !sent {
                    return;
                }
            }
            if api.broker.shutdown_token().is_cancelled() {
                let _ = out_tx.send(Err(api.fail(BrokerError::ShuttingDown))).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}
