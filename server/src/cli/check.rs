//! `tidelog check`: verify a stopped broker's data directory offline —
//! every batch CRC-checked, indexes, gaps and recovery points — and print a
//! report. Exits non-zero when records cannot be read.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::broker::Broker;
use crate::log::check::{check_partition, PartitionCheck};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Data directory of a stopped broker.
    #[arg(long, env = "TIDELOG_DATA_DIR")]
    data_dir: PathBuf,
    /// Check only this topic (repeatable); default: every topic.
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: CheckArgs) -> Result<(), String> {
    let topics_dir = args.data_dir.join("topics");
    if !topics_dir.is_dir() {
        return Err(format!(
            "{} holds no topics directory: is it a tidelog data directory?",
            args.data_dir.display()
        ));
    }
    Broker::check_not_in_use(&args.data_dir).map_err(|e| {
        format!("{e} (a running broker checks its own sealed segments: see the tidelog_scrub_* metrics)")
    })?;
    let mut checks = Vec::new();
    for topic in sorted_dirs(&topics_dir)? {
        let name = topic
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !args.topics.is_empty() && !args.topics.contains(&name) {
            continue;
        }
        let mut parts: Vec<(u32, PathBuf)> = sorted_dirs(&topic)?
            .into_iter()
            .filter_map(|p| {
                let n = p.file_name()?.to_str()?.parse().ok()?;
                Some((n, p))
            })
            .collect();
        parts.sort_by_key(|(n, _)| *n);
        for (n, dir) in parts {
            let check = check_partition(&dir).map_err(|e| e.to_string())?;
            checks.push((format!("{name}/{n}"), check));
        }
    }
    for t in &args.topics {
        if !checks.iter().any(|(l, _)| l.starts_with(&format!("{t}/"))) {
            return Err(format!("topic '{t}' not found in {}", topics_dir.display()));
        }
    }
    let lossy = checks
        .iter()
        .filter(|(_, c)| c.problems.iter().any(|p| p.loses_data()))
        .count();
    if args.json {
        let parts: Vec<serde_json::Value> = checks
            .iter()
            .map(|(label, c)| {
                let mut v = serde_json::to_value(c).unwrap_or_default();
                v["partition"] = serde_json::Value::String(label.clone());
                v
            })
            .collect();
        let doc = serde_json::json!({ "partitions": parts, "partitions_with_data_loss": lossy });
        println!("{doc}");
    } else {
        for (label, c) in &checks {
            print_text(label, c);
        }
        println!(
            "checked {} partitions: {}",
            checks.len(),
            if lossy == 0 {
                "no data loss".to_string()
            } else {
                format!("{lossy} with data loss")
            }
        );
    }
    if lossy > 0 {
        return Err(format!(
            "{lossy} partition(s) hold records that cannot be read; start the broker to serve what the bucket still holds"
        ));
    }
    Ok(())
}

fn print_text(label: &str, c: &PartitionCheck) {
    println!(
        "{label}: {} segments, offsets {}..{}, {} batches, {} bytes: {}",
        c.segments,
        c.start,
        c.end,
        c.batches,
        c.bytes,
        if c.problems.is_empty() {
            "ok".to_string()
        } else {
            format!("{} problem(s)", c.problems.len())
        }
    );
    for p in &c.problems {
        println!("  {p}");
    }
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    Ok(out)
}
