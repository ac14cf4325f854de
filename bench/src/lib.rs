//! The engine of `tidelog bench produce|consume|e2e|catchup`: it measures
//! the data path through the Rust SDK, i.e. what users get. The `tidelog`
//! binary parses the command line (`BenchArgs` is flattened into it) and
//! calls [`run`]; this crate reaches the broker only through the SDK.
//!
//! - `produce`: producers send records as fast as allowed (or at `--rate`);
//!   latency is send → acknowledgement.
//! - `consume`: makes sure the topic holds `--records` records (producing
//!   the shortfall first), then times one or more fresh consumers reading
//!   them from the first offset.
//! - `e2e`: producers and consumers at once; every value carries its send
//!   time, latency is send → delivered by `Consumer::next_record`.
//! - `catchup`: a fresh client reads the whole topic from the beginning,
//!   from the bucket. A topic this mode creates has tiered storage on and
//!   `local.retention.bytes=0`, so once its sealed segments are uploaded
//!   only the active segment stays on the broker's disk; the bench waits
//!   for that (up to two minutes) and reports on stderr how many records
//!   are in the bucket only. A topic that already exists is read as it
//!   is, from whichever tier holds each offset.
//!
//! MB/s is 10^6 bytes of record value (payload) per second. A progress line
//! goes to stderr once per second; the summary goes to stdout, and with
//! `--json` the last stdout line is one JSON object.

mod args;
mod catchup;
mod consume;
mod e2e;
mod produce;
mod progress;
mod report;
mod sends;
mod tasks;
mod topic;

pub use args::BenchArgs;
pub(crate) use args::Mode;

use tidelog::Client;

/// Why a bench run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// From the client library.
    #[error(transparent)]
    Client(#[from] tidelog::Error),
    /// Bad flags.
    #[error("{0}")]
    Usage(String),
    /// A task died, or consumers fell behind for good.
    #[error("{0}")]
    Failed(String),
}

/// Runs the benchmark `args` describes against `broker` and prints its
/// summary on stdout.
pub async fn run(broker: &str, args: BenchArgs) -> Result<(), BenchError> {
    let s = args.settings()?;
    let client = Client::connect(broker.to_string()).await?;
    let partitions = topic::ensure(&client, &s.topic, args.partitions, s.mode).await?;
    let summary = match s.mode {
        Mode::Produce => produce::produce(broker, &s, partitions).await?,
        Mode::E2e => e2e::e2e(broker, &s, partitions).await?,
        Mode::Consume | Mode::Catchup => consume::consume(&client, broker, &s, partitions).await?,
    };
    println!("{}", summary.human());
    if args.json {
        println!("{}", summary.to_json());
    }
    Ok(())
}
