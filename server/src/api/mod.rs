//! gRPC services: translate requests into broker calls and broker errors
//! into statuses (`status`). No storage logic lives here.

pub mod admin;
pub mod consume;
pub mod groups;
pub mod produce;
pub mod status;

use std::sync::Arc;

use crate::cluster::node::ClusterNode;

use crate::broker::{Broker, BrokerError};
use crate::groups::{GroupCoordinator, GroupError};

/// State shared by the services.
#[derive(Debug, Clone)]
pub struct Api {
    broker: Arc<Broker>,
    groups: Arc<GroupCoordinator>,
    cluster: Arc<ClusterNode>,
}

impl Api {
    /// Services over a broker, its group coordinator and its membership of
    /// the cluster.
    pub fn new(
        broker: Arc<Broker>,
        groups: Arc<GroupCoordinator>,
        cluster: Arc<ClusterNode>,
    ) -> Self {
        Api {
            broker,
            groups,
            cluster,
        }
    }

    /// Counts and converts a group error.
    fn fail_group(&self, e: GroupError) -> tonic::Status {
        let (_, reason) = status::classify_group(&e);
        self.broker
            .metrics()
            .errors
            .with_label_values(&[reason.as_str_name()])
            .inc();
        status::group_status(&e)
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
