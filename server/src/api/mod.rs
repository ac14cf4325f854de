//! gRPC services: translate requests into broker calls and broker errors
//! into statuses (`status`). No storage logic lives here.

pub mod admin;
pub mod consume;
pub mod produce;
pub mod status;

use std::sync::Arc;

use crate::broker::{Broker, BrokerError};

/// Largest gRPC message accepted or sent (a produce request may carry many
/// batches).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;

/// State shared by the services.
#[derive(Debug, Clone)]
pub struct Api {
    broker: Arc<Broker>,
}

impl Api {
    /// Services over a broker.
    pub fn new(broker: Arc<Broker>) -> Self {
        Api { broker }
    }

    /// Counts and converts an error.
    fn fail(&self, e: BrokerError) -> tonic::Status {
        let (_, reason) = status::classify(&e);
        self.broker
            .metrics()
            .errors
            .with_label_values(&[reason.as_str_name()])
            .inc();
        status::to_status(&e)
    }
}
