//! The `tidelog` command line: `serve`, `topic ...`, `group ...`,
//! `produce`, `consume`, `restore`, `bench`. Errors print one plain line
//! on stderr and exit non-zero.

mod check;
mod cluster;
mod consume;
mod group;
mod produce;
mod restore;
mod topic;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::ServeConfig;

/// Tidelog: a durable, tiered streaming log.
#[derive(Debug, Parser)]
#[command(name = "tidelog", version, about)]
pub struct Cli {
    #[command(flatten)]
    client: BrokerArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker.
    Serve(ServeArgs),
    /// Manage topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Manage consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Produce records from stdin, one per line.
    Produce(produce::ProduceArgs),
    /// Print records of a topic.
    Consume(consume::ConsumeArgs),
    /// Rebuild a data directory from the object store (tiered storage).
    Restore(restore::RestoreArgs),
    /// Measure produce/consume throughput and latency through the Rust SDK.
    Bench(tidelog_bench::BenchArgs),
    /// Inspect the cluster.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Check a stopped broker's data directory: every batch, index and
    /// recovery point (exits 1 when records cannot be read).
    Check(check::CheckArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Data directory [default: ./tidelog-data]. Env: TIDELOG_DATA_DIR.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:7070]. Env: TIDELOG_LISTEN.
    #[arg(long)]
    listen: Option<String>,
    /// HTTP listen address for /metrics, /healthz, /readyz [default: 127.0.0.1:7071]. Env: TIDELOG_HTTP_LISTEN.
    #[arg(long)]
    http_listen: Option<String>,
    /// TOML config file (keys as in ServeConfig). Env: TIDELOG_CONFIG.
    #[arg(long, env = "TIDELOG_CONFIG")]
    config: Option<PathBuf>,
    /// Object store for tiered storage: file:///path or s3://bucket/prefix
    /// [default: file://<data-dir>-bucket]. Env: TIDELOG_OBJECT_STORE.
    #[arg(long)]
    object_store: Option<String>,
    /// Open partitions whose log ends below its recovery point (segment
    /// files missing), continuing at the recovery point so no offset is
    /// reused; the lost offsets read as DATA_LOSS. For one start after an
    /// operator has looked. Env: TIDELOG_ACCEPT_DATA_LOSS=true.
    #[arg(long)]
    accept_data_loss: bool,
    /// This broker's id in the cluster. Env: TIDELOG_NODE_ID.
    #[arg(long)]
    node_id: Option<u32>,
    /// Address for broker-to-broker traffic (the metadata quorum).
    /// Env: TIDELOG_CLUSTER_LISTEN.
    #[arg(long)]
    cluster_listen: Option<String>,
    /// The quorum's voters: 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT, each that
    /// broker's --cluster-listen. Env: TIDELOG_VOTERS.
    #[arg(long)]
    voters: Option<String>,
    /// Address clients should dial for this broker when it differs from
    /// --listen (containers, NAT). Env: TIDELOG_ADVERTISED_ADDRESS.
    #[arg(long)]
    advertise: Option<String>,
}

/// Connection flags of the client commands (and `bench`). They are global
/// so that they go before or after the subcommand, as with `kcat -b`:
/// `tidelog --broker ADDR topic list` = `tidelog topic list --broker ADDR`.
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    /// Broker gRPC address (client commands and bench): `host:port`, or
    /// several separated by commas; the first that answers is used.
    #[arg(
        long,
        env = "TIDELOG_BROKER",
        default_value = "127.0.0.1:7070",
        global = true
    )]
    pub broker: String,
}

impl BrokerArgs {
    async fn connect(&self) -> Result<tidelog::Client, CliError> {
        Ok(tidelog::Client::connect(self.broker.clone()).await?)
    }
}

/// Errors of client commands.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// From the client library.
    #[error(transparent)]
    Client(#[from] tidelog::Error),
    /// Bad command-line input.
    #[error("{0}")]
    Usage(String),
    /// Local I/O (stdin/stdout).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let Cli { client, command } = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let is_serve = matches!(command, Command::Serve(_));
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(args) => serve(args).await,
            Command::Topic(cmd) => topic::run(cmd, &client).await.map_err(|e| e.to_string()),
            Command::Group(cmd) => group::run(cmd, &client).await.map_err(|e| e.to_string()),
            Command::Produce(args) => produce::run(args, &client).await.map_err(|e| e.to_string()),
            Command::Consume(args) => consume::run(args, &client).await.map_err(|e| e.to_string()),
            Command::Restore(args) => restore::run(args).await,
            Command::Check(args) => check::run(args),
            Command::Cluster(cmd) => cluster::run(cmd, &client).await.map_err(|e| e.to_string()),
            Command::Bench(args) => tidelog_bench::run(&client.broker, args)
                .await
                .map_err(|e| e.to_string()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if is_serve {
                // A failed start leaves background tasks (cache, uploads)
                // behind; dropping the runtime would cancel them and each
                // would log its closed channel after the one-line error.
                // Nothing is left to flush, so leave without dropping it.
                std::process::exit(1);
            }
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let mut cfg =
        ServeConfig::load(args.config.as_deref(), std::env::vars()).map_err(|e| e.to_string())?;
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(l) = args.http_listen {
        cfg.http_listen = l;
    }
    if let Some(o) = args.object_store {
        cfg.object_store = o;
    }
    if args.accept_data_loss {
        cfg.accept_data_loss = true;
    }
    if let Some(n) = args.node_id {
        cfg.node_id = n;
    }
    if let Some(c) = args.cluster_listen {
        cfg.cluster_listen = c;
    }
    if let Some(v) = args.voters {
        cfg.voters = v;
    }
    if let Some(a) = args.advertise {
        cfg.advertised_address = a;
    }
    // Flags override the file and environment: check the result again.
    cfg.validate().map_err(|e| e.to_string())?;
    init_tracing(&cfg.log_format);
    crate::serve::run(cfg).await.map_err(|e| e.to_string())
}

fn init_tracing(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Parses `k=v` pairs.
/// A key given twice is refused: which value wins would be a guess.
/// Refuses a `--partition` the topic does not have.
fn check_partition(topic: &str, p: u32, partitions: u32) -> Result<(), CliError> {
    if p >= partitions {
        return Err(CliError::Usage(format!(
            "--partition {p}: topic {topic} has {}",
            crate::broker::error::partition_range(partitions)
        )));
    }
    Ok(())
}

fn parse_kv(pairs: &[String]) -> Result<Vec<(String, String)>, CliError> {
    let mut seen = std::collections::HashSet::new();
    pairs
        .iter()
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| CliError::Usage(format!("--config {p}: expected key=value")))?;
            if !seen.insert(k.clone()) {
                return Err(CliError::Usage(format!(
                    "--config {k} given more than once; give each key once"
                )));
            }
            Ok((k, v))
        })
        .collect()
}

/// Parses the RFC 3339 time given to `flag`, in ms since the epoch.
fn parse_time(flag: &str, t: &str) -> Result<i64, CliError> {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|ts| ts.timestamp_millis())
        .map_err(|e| {
            CliError::Usage(format!(
                "{flag} {t}: {e}; use RFC 3339 like 2026-11-28T09:00:00Z"
            ))
        })
}
