//! The consume and catchup workloads: make sure enough records exist, then
//! time fresh consumers reading them from the first offset.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tidelog::{Client, ConsumerConfig, OffsetSpec, SeekTo, TopicPartition};

use crate::args::{Settings, DEFAULT_RECORDS};
use crate::produce::run_producers;
use crate::progress::{Counters, Progress};
use crate::report::Summary;
use crate::tasks::join_all;
use crate::{catchup, BenchError, Mode};

/// Deals partitions out to `consumers` consumers.
pub(crate) fn deal(partitions: u32, consumers: u32) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); consumers.min(partitions) as usize];
    for p in 0..partitions {
        let n = out.len();
        out[p as usize % n].push(p);
    }
    out
}

/// First and end offsets of each partition.
async fn offsets(
    client: &Client,
    topic: &str,
    partitions: u32,
) -> Result<Vec<(i64, i64)>, BenchError> {
    let admin = client.admin();
    let mut out = Vec::with_capacity(partitions as usize);
    for p in 0..partitions {
        let (start, _) = admin.list_offsets(topic, p, OffsetSpec::Earliest).await?;
        let (end, _) = admin.list_offsets(topic, p, OffsetSpec::Latest).await?;
        out.push((start, end.max(start)));
    }
    Ok(out)
}

/// Produces the `missing` records a short topic lacks, with a progress
/// line of its own.
async fn fill(broker: &str, s: &Settings, partitions: u32, missing: u64) -> Result<(), BenchError> {
    let counters = Arc::new(Counters::default());
    let prep = Settings {
        mode: Mode::Produce,
        duration: None,
        rate: None,
        ..s.clone()
    };
    let progress = Progress::start(Mode::Produce, Arc::clone(&counters), s.record_size);
    let produced = run_producers(broker, &prep, partitions, Some(missing), None, &counters).await;
    progress.stop().await;
    produced.map(|_| ())
}

/// `consume` and `catchup`.
pub(crate) async fn consume(
    client: &Client,
    broker: &str,
    s: &Settings,
    partitions: u32,
) -> Result<Summary, BenchError> {
    let mut ranges = offsets(client, &s.topic, partitions).await?;
    let available: u64 = ranges.iter().map(|(a, b)| (b - a) as u64).sum();
    let wanted = match (s.mode, s.records) {
        (_, Some(n)) => n,
        (Mode::Catchup, None) if available > 0 => available,
        _ => DEFAULT_RECORDS,
    };
    if available < wanted {
        let missing = wanted - available;
        eprintln!(
            "{} holds {available} record(s); producing {missing} more first",
            s.topic
        );
        fill(broker, s, partitions, missing).await?;
        ranges = offsets(client, &s.topic, partitions).await?;
    }
    if matches!(s.mode, Mode::Catchup) {
        catchup::wait_for_bucket(client, &s.topic).await?;
    }
    // Read `wanted` records: whole partitions in order, the last one cut.
    let mut left = wanted;
    let mut targets: HashMap<u32, (i64, i64)> = HashMap::new();
    for (p, (start, end)) in ranges.iter().enumerate() {
        let take = ((end - start) as u64).min(left);
        left -= take;
        if take > 0 {
            targets.insert(p as u32, (*start, start + take as i64));
        }
    }
    let counters = Arc::new(Counters::default());
    let progress = Progress::start(s.mode, Arc::clone(&counters), s.record_size);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let assigned: Vec<u32> = {
        let mut v: Vec<u32> = targets.keys().copied().collect();
        v.sort_unstable();
        v
    };
    for part in deal(assigned.len() as u32, s.consumers) {
        let mine: HashMap<u32, (i64, i64)> = part
            .iter()
            .filter_map(|i| {
                let p = assigned[*i as usize];
                targets.get(&p).map(|r| (p, *r))
            })
            .collect();
        let c = Client::connect(broker.to_string()).await?;
        let topic = s.topic.clone();
        let counters = Arc::clone(&counters);
        tasks.push(tokio::spawn(async move {
            read_ranges(&c, &topic, mine, &counters).await
        }));
    }
    let read = join_all(tasks, "consumer").await;
    let seconds = started.elapsed().as_secs_f64();
    progress.stop().await;
    let (mut records, mut bytes) = (0, 0);
    for (r, b) in read? {
        records += r;
        bytes += b;
    }
    Ok(Summary {
        mode: s.mode,
        records,
        bytes,
        seconds,
        latency: None,
        ack_latency: None,
    })
}

/// Reads each partition from its start to its end offset with one
/// consumer; returns (records, value bytes).
async fn read_ranges(
    client: &Client,
    topic: &str,
    ranges: HashMap<u32, (i64, i64)>,
    counters: &Counters,
) -> Result<(u64, u64), BenchError> {
    let mut consumer = client.consumer_with(ConsumerConfig::default());
    let tps: Vec<TopicPartition> = ranges
        .keys()
        .map(|p| TopicPartition::new(topic, *p))
        .collect();
    consumer.assign(tps.clone());
    let mut open = 0usize;
    for tp in &tps {
        if let Some((start, end)) = ranges.get(&tp.partition) {
            consumer.seek(tp, SeekTo::Offset(*start)).await?;
            if end > start {
                open += 1;
            }
        }
    }
    let mut records = 0u64;
    let mut bytes = 0u64;
    let mut finished: HashMap<u32, bool> = HashMap::new();
    while open > 0 {
        let Some(record) = consumer.next_record().await else {
            break;
        };
        let record = record?;
        let Some(&(_, end)) = ranges.get(&record.partition) else {
            continue;
        };
        if record.offset >= end {
            continue;
        }
        records += 1;
        bytes += record.value.as_ref().map_or(0, |v| v.len() as u64);
        counters.delivered.fetch_add(1, Ordering::Relaxed);
        if record.offset + 1 == end && !finished.contains_key(&record.partition) {
            finished.insert(record.partition, true);
            open -= 1;
        }
    }
    Ok((records, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deal_spreads_partitions() {
        assert_eq!(deal(5, 2), vec![vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(deal(1, 3), vec![vec![0]]);
    }
}
