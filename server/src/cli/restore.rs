//! `tidelog restore`: rebuild a data directory from the object store.

use std::path::PathBuf;

use clap::Args;

use crate::tiering::store::RemoteStore;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Object store holding the topics: file:///path or s3://bucket/prefix
    /// (AWS_* variables for credentials, region, endpoint).
    #[arg(long, env = "TIDELOG_OBJECT_STORE")]
    object_store: String,
    /// Data directory to rebuild; must hold no topics.
    #[arg(long, env = "TIDELOG_DATA_DIR")]
    data_dir: PathBuf,
    /// Restore only this topic (repeatable); default: every topic.
    #[arg(long = "topic")]
    topics: Vec<String>,
}

pub async fn run(args: RestoreArgs) -> Result<(), String> {
    let store = RemoteStore::open(&args.object_store).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout();
    crate::restore::restore(&store, &args.data_dir, &args.topics, &mut out)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
