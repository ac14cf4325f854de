//! The topic a run uses: created when missing, or taken as it is.

use tidelog::{Client, NewTopic};

use crate::{catchup, BenchError, Mode};

/// Creates the topic if missing (for `catchup` with tiered storage, see
/// [`catchup::tiered`]); returns its partition count.
pub(crate) async fn ensure(
    client: &Client,
    topic: &str,
    partitions: u32,
    mode: Mode,
) -> Result<u32, BenchError> {
    let mut new = NewTopic::new(topic, partitions);
    if matches!(mode, Mode::Catchup) {
        new = catchup::tiered(new);
    }
    match client.admin().create_topic(new).await {
        Ok(_) => {
            client.invalidate_metadata(topic);
            Ok(partitions)
        }
        Err(tidelog::Error::TopicAlreadyExists(_)) => {
            let n = client.partition_count(topic).await?;
            if n != partitions {
                eprintln!("note: topic {topic} exists with {n} partition(s); using those");
            }
            Ok(n)
        }
        Err(e) => Err(e.into()),
    }
}
