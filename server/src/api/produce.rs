//! The Producer service.

use std::time::Instant;

use tidelog_proto::batch::validate_batch;
use tidelog_proto::v1::{producer_server, Acks, BatchResult, ProduceRequest, ProduceResponse};
use tonic::{Request, Response, Status};

use super::Api;
use crate::broker::{AckMode, BrokerError};
use crate::log::{IncomingBatch, LogError};

#[tonic::async_trait]
impl producer_server::Producer for Api {
    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let (mode, label) = match Acks::try_from(req.acks) {
            Ok(Acks::Unspecified | Acks::All) => (AckMode::Durable, "all"),
            Ok(Acks::Leader | Acks::None) => (AckMode::Written, "leader"),
            Err(_) => {
                return Err(self.fail(BrokerError::InvalidRequest(format!(
                    "acks={} is not one of ACKS_ALL, ACKS_LEADER, ACKS_NONE",
                    req.acks
                ))))
            }
        };
        let partition = self
            .broker
            .partition(&req.topic, req.partition)
            .map_err(|e| self.fail(e))?;
        // Local disk past the high-water mark (uploads behind): a retriable
        // refusal instead of filling the disk.
        self.broker.check_disk_space().map_err(|e| self.fail(e))?;
        if req.batches.is_empty() {
            return Err(self.fail(BrokerError::InvalidRequest(
                "a produce request needs at least one batch".into(),
            )));
        }
        let mut incoming = Vec::with_capacity(req.batches.len());
        for (i, raw) in req.batches.into_iter().enumerate() {
            let header = validate_batch(&raw).map_err(|e| {
                tracing::debug!(batch = i, error = %e, "rejected batch");
                self.fail(LogError::Corrupt(e).into())
            })?;
            // No copy: the log writes a stamped copy of the header and then
            // these bytes after it.
            incoming.push(IncomingBatch { bytes: raw, header });
        }
        let results = partition
            .append(incoming, mode)
            .await
            .map_err(|e| self.fail(e))?;
        self.broker
            .metrics()
            .produce_latency
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        Ok(Response::new(ProduceResponse {
            results: results
                .into_iter()
                .map(|r| BatchResult {
                    base_offset: r.base_offset,
                    duplicate: r.duplicate,
                })
                .collect(),
            log_start_offset: partition.log_start_offset(),
        }))
    }
}
