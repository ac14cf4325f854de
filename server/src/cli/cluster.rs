//! `tidelog cluster status`: the brokers, their liveness and roles in the
//! metadata quorum, and which one is the controller. Exits non-zero when
//! the quorum has no leader.

use clap::Subcommand;
use tidelog_proto::v1::admin_client::AdminClient;
use tidelog_proto::v1::{ClusterStatusRequest, ClusterStatusResponse};

use super::{BrokerArgs, CliError};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show the brokers, the quorum and the controller.
    Status {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: ClusterCommand, broker: &BrokerArgs) -> Result<(), CliError> {
    match cmd {
        ClusterCommand::Status { json } => {
            let status = fetch(broker).await?;
            if json {
                println!("{}", to_json(&status));
            } else {
                print_table(&status);
            }
            if status.controller_id.is_none() {
                return Err(CliError::Usage(
                    "the metadata quorum has no leader: a majority of the voters is not reachable"
                        .into(),
                ));
            }
            Ok(())
        }
    }
}

/// Asks the first broker of the list that answers.
async fn fetch(broker: &BrokerArgs) -> Result<ClusterStatusResponse, CliError> {
    let mut last = String::new();
    for address in broker
        .broker
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        let uri = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let connected =
            tokio::time::timeout(std::time::Duration::from_secs(5), AdminClient::connect(uri))
                .await;
        match connected {
            Ok(Ok(mut c)) => match c.cluster_status(ClusterStatusRequest {}).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) => last = format!("{address}: {}", s.message()),
            },
            Ok(Err(e)) => last = format!("{address}: {e}"),
            Err(_) => last = format!("{address}: no answer within 5s"),
        }
    }
    Err(CliError::Usage(format!("no broker answered ({last})")))
}

fn to_json(s: &ClusterStatusResponse) -> serde_json::Value {
    serde_json::json!({
        "cluster_id": s.cluster_id,
        "controller_id": s.controller_id,
        "answered_by": s.answered_by,
        "committed_index": s.committed_index,
        "applied_index": s.applied_index,
        "brokers": s.brokers.iter().map(|b| serde_json::json!({
            "id": b.id,
            "address": b.address,
            "cluster_address": b.cluster_address,
            "alive": b.alive,
            "quorum_role": b.quorum_role,
            "controller": b.controller,
            "partitions": b.partitions,
            "leaders": b.leaders,
            "epoch": b.epoch,
        })).collect::<Vec<_>>(),
    })
}

fn print_table(s: &ClusterStatusResponse) {
    println!(
        "cluster {}  controller: {}  (answered by broker {}, metadata applied to index {})",
        if s.cluster_id.is_empty() {
            "(not named yet)"
        } else {
            &s.cluster_id
        },
        s.controller_id
            .map_or_else(|| "NONE".to_string(), |c| c.to_string()),
        s.answered_by,
        s.applied_index
    );
    println!(
        "{:<4} {:<22} {:<22} {:<8} {:<7} {:>10} {:>8} {:>6}",
        "ID", "ADDRESS", "CLUSTER ADDRESS", "ROLE", "STATE", "PARTITIONS", "LEADERS", "EPOCH"
    );
    for b in &s.brokers {
        let id = if b.controller {
            format!("{}*", b.id)
        } else {
            b.id.to_string()
        };
        println!(
            "{:<4} {:<22} {:<22} {:<8} {:<7} {:>10} {:>8} {:>6}",
            id,
            b.address,
            b.cluster_address,
            b.quorum_role,
            if b.alive { "alive" } else { "fenced" },
            b.partitions,
            b.leaders,
            b.epoch
        );
    }
}
