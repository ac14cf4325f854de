//! `tidelog group ...`: list, describe, delete, reset offsets.

use clap::{Args, Subcommand};
use tidelog::ResetSpec;

use super::{parse_time, BrokerArgs, CliError};

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List consumer groups.
    List,
    /// Show a group's state, members, assignments, offsets and lag.
    Describe {
        /// Group id.
        group: String,
    },
    /// Delete a group's committed offsets (refused while it has members).
    Delete {
        /// Group id.
        group: String,
    },
    /// Move a group's committed offsets: shows the plan and applies it.
    ResetOffsets(ResetArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).multiple(false))]
pub struct ResetArgs {
    /// Group id.
    group: String,
    /// Topic whose offsets move.
    #[arg(long)]
    topic: String,
    /// Only this partition (repeatable; default: all).
    #[arg(long)]
    partition: Vec<u32>,
    /// To the log start.
    #[arg(long, group = "target")]
    to_earliest: bool,
    /// To the log end.
    #[arg(long, group = "target")]
    to_latest: bool,
    /// To this offset (clamped to the log).
    #[arg(long, group = "target")]
    to_offset: Option<i64>,
    /// To the first record at or after this time (RFC 3339).
    #[arg(long, group = "target")]
    to_datetime: Option<String>,
    /// Move the committed offsets by N (negative: back).
    #[arg(long, group = "target", allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// Only show the plan.
    #[arg(long)]
    dry_run: bool,
    /// Apply even while the group has members (they are fenced and rejoin).
    #[arg(long)]
    force: bool,
}

fn fmt_offset(o: Option<i64>) -> String {
    o.map_or_else(|| "-".to_string(), |o| o.to_string())
}

pub async fn run(cmd: GroupCommand, broker: &BrokerArgs) -> Result<(), CliError> {
    match cmd {
        GroupCommand::List => {
            for g in broker.connect().await?.admin().list_groups().await? {
                println!("{}\t{}\t{} member(s)", g.group_id, g.state, g.members);
            }
        }
        GroupCommand::Describe { group } => {
            let d = broker
                .connect()
                .await?
                .admin()
                .describe_group(&group)
                .await?;
            println!("group: {}", d.group_id);
            println!("state: {}", d.state);
            println!("members: {}", d.members.len());
            for m in &d.members {
                let parts: Vec<String> = m
                    .assignment
                    .iter()
                    .map(|tp| format!("{}/{}", tp.topic, tp.partition))
                    .collect();
                println!(
                    "  {} (client {}, epoch {}): {}",
                    m.member_id,
                    m.client_id,
                    m.member_epoch,
                    parts.join(" ")
                );
            }
            println!(
                "{:<24} {:>9} {:>14} {:>14} {:>10}  owner",
                "topic", "partition", "committed", "log_end", "lag"
            );
            for p in &d.partitions {
                println!(
                    "{:<24} {:>9} {:>14} {:>14} {:>10}  {}",
                    p.topic,
                    p.partition,
                    fmt_offset(p.committed_offset),
                    p.log_end_offset,
                    p.lag,
                    p.owner.as_deref().unwrap_or("-")
                );
            }
        }
        GroupCommand::Delete { group } => {
            broker.connect().await?.admin().delete_group(&group).await?;
            println!("deleted group {group}");
        }
        GroupCommand::ResetOffsets(a) => {
            let spec = if a.to_earliest {
                ResetSpec::Earliest
            } else if a.to_latest {
                ResetSpec::Latest
            } else if let Some(o) = a.to_offset {
                if o < 0 {
                    return Err(CliError::Usage(format!("--to-offset {o}: must be >= 0")));
                }
                ResetSpec::Offset(o)
            } else if let Some(t) = &a.to_datetime {
                ResetSpec::Timestamp(parse_time("--to-datetime", t)?)
            } else if let Some(d) = a.shift_by {
                ResetSpec::ShiftBy(d)
            } else {
                return Err(CliError::Usage(
                    "give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by".into(),
                ));
            };
            let plan = broker
                .connect()
                .await?
                .admin()
                .reset_offsets(&a.group, &a.topic, &a.partition, spec, a.dry_run, a.force)
                .await?;
            println!(
                "{:<24} {:>9} {:>14} {:>14}",
                "topic", "partition", "old", "new"
            );
            for e in &plan {
                println!(
                    "{:<24} {:>9} {:>14} {:>14}",
                    e.topic,
                    e.partition,
                    fmt_offset(e.old_offset),
                    e.new_offset
                );
            }
            if a.dry_run {
                println!("dry run: nothing changed");
            } else {
                println!("applied to group {}", a.group);
            }
        }
    }
    Ok(())
}
