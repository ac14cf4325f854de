//! `tidelog topic ...`

use clap::Subcommand;
use tidelog::{NewTopic, TopicDescription};

use super::{parse_kv, BrokerArgs, CliError};

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Config override key=value (repeatable), e.g. retention.ms=86400000.
        #[arg(long = "config")]
        config: Vec<String>,
    },
    /// List topics.
    List,
    /// Show a topic's config and partitions.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Change topic config.
    Alter {
        /// Topic name.
        name: String,
        /// key=value to set (repeatable).
        #[arg(long = "config")]
        config: Vec<String>,
        /// Key to reset to the broker default (repeatable).
        #[arg(long = "delete-config")]
        delete_config: Vec<String>,
    },
}

fn print_description(d: &TopicDescription) {
    println!("topic: {}", d.name);
    println!("partitions: {}", d.partitions.len());
    println!("config:");
    for (k, v) in &d.config {
        println!("  {k}={v}");
    }
    println!(
        "{:>9}  {:>6}  {:>14}  {:>14}  {:>25}  {:>12}  {:>8}  {:>25}  {:>12}  {:>8}",
        "partition",
        "leader",
        "start_offset",
        "end_offset",
        "local_offsets",
        "local_bytes",
        "local_seg",
        "remote_offsets",
        "remote_bytes",
        "remote_seg"
    );
    for p in &d.partitions {
        let local = format!("{}..{}", p.local_start_offset, p.log_end_offset);
        let remote = if p.remote_segments == 0 {
            "-".to_string()
        } else {
            format!("{}..{}", p.remote_start_offset, p.remote_end_offset)
        };
        println!(
            "{:>9}  {:>6}  {:>14}  {:>14}  {:>25}  {:>12}  {:>8}  {:>25}  {:>12}  {:>8}",
            p.partition,
            p.leader,
            p.log_start_offset,
            p.log_end_offset,
            local,
            p.size_bytes,
            p.segments,
            remote,
            p.remote_size_bytes,
            p.remote_segments
        );
    }
}

pub async fn run(cmd: TopicCommand, broker: &BrokerArgs) -> Result<(), CliError> {
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            config,
        } => {
            let mut t = NewTopic::new(name.clone(), partitions);
            for (k, v) in parse_kv(&config)? {
                t = t.config(k, v);
            }
            broker.connect().await?.admin().create_topic(t).await?;
            println!("created topic {name} with {partitions} partition(s)");
        }
        TopicCommand::List => {
            for t in broker.connect().await?.admin().list_topics().await? {
                println!("{}\t{}", t.name, t.partitions);
            }
        }
        TopicCommand::Describe { name } => {
            let d = broker
                .connect()
                .await?
                .admin()
                .describe_topic(&name)
                .await?;
            print_description(&d);
        }
        TopicCommand::Delete { name } => {
            broker.connect().await?.admin().delete_topic(&name).await?;
            println!("deleted topic {name}");
        }
        TopicCommand::Alter {
            name,
            config,
            delete_config,
        } => {
            if config.is_empty() && delete_config.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give --config key=value or --delete-config key".into(),
                ));
            }
            let set = parse_kv(&config)?;
            let d = broker
                .connect()
                .await?
                .admin()
                .alter_topic_config(&name, set, delete_config)
                .await?;
            print_description(&d);
        }
    }
    Ok(())
}
