//! The fault matrix (issue 16, first slice): a workload of idempotent
//! producers writing uniquely numbered records with `acks=all` to several
//! partitions, and a consumer reading them live, runs while a fault is
//! injected into real broker processes and files; after healing, every
//! partition is read from offset 0 and compared with what the producers
//! were told was acknowledged. Each scenario reports acknowledged, lost,
//! duplicated, reordered, read-then-vanished, application errors and
//! recovery time, and passes only with 0 lost, 0 duplicated, 0 reordered
//! and 0 vanished. With `TIDELOG_RELIABILITY_OUT=FILE` the table is written
//! there (`tests/write-reliability.sh` makes `RELIABILITY.md`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidelog::{NewTopic, ProducerConfig, ProducerRecord, SeekTo, TopicPartition};
use tidelog_e2e::{batch_positions, flip_byte, segment_bases, BrokerProcess};

const PARTITIONS: u32 = 4;
const PRODUCERS: usize = 2;
const TOPIC: &str = "matrix";

/// What one scenario found.
#[derive(Debug, Default, Clone)]
struct Outcome {
    name: String,
    acknowledged: usize,
    lost: usize,
    duplicated: usize,
    reordered: usize,
    vanished: usize,
    app_errors: u64,
    recovery: Duration,
    /// Acknowledged records the final read reported as DATA_LOSS (the
    /// fault destroyed them; reported, not silent).
    reported_lost: usize,
    /// Why the scenario could not run here, if it could not.
    not_run: Option<String>,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.reordered == 0 && self.vanished == 0
    }

    fn row(&self) -> String {
        if let Some(why) = &self.not_run {
            return format!("| {} | not run here: {why} | | | | | | | | |", self.name);
        }
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s | {} |",
            self.name,
            self.acknowledged,
            self.lost,
            self.reported_lost,
            self.duplicated,
            self.reordered,
            self.vanished,
            self.app_errors,
            self.recovery.as_secs_f64(),
            if self.passed() { "pass" } else { "FAIL" }
        )
    }
}

/// Value of record `seq` of producer `p`, padded with `pad` bytes.
fn value(p: usize, seq: u64, pad: usize) -> String {
    format!("p{p}-{seq:08}:{}", "x".repeat(pad))
}

fn parse(v: &[u8]) -> Option<(usize, u64)> {
    let s = std::str::from_utf8(v).ok()?;
    let (p, rest) = s.strip_prefix('p')?.split_once('-')?;
    let seq = rest.split(':').next()?;
    Some((p.parse().ok()?, seq.parse().ok()?))
}

/// The range `A..B` a DATA_LOSS message names ("offsets A..B").
fn reported_range(message: &str) -> Option<(i64, i64)> {
    let rest = &message[message.find("offsets ")? + 8..];
    let (a, rest) = rest.split_once("..")?;
    let b: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The running workload.
struct Workload {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(u32, i64, String)>>>,
    seen: Arc<Mutex<Vec<(u32, i64, String)>>>,
    errors: Arc<AtomicU64>,
    last_ack: Arc<Mutex<Instant>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    async fn start(bootstrap: String) -> Workload {
        Self::start_padded(bootstrap, 0).await
    }

    async fn start_padded(bootstrap: String, pad: usize) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(AtomicU64::new(0));
        let last_ack = Arc::new(Mutex::new(Instant::now()));
        let mut tasks = Vec::new();
        for p in 0..PRODUCERS {
            let (stop, acked, errors, last_ack, bootstrap) = (
                stop.clone(),
                acked.clone(),
                errors.clone(),
                last_ack.clone(),
                bootstrap.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let client = tidelog::Client::connect(bootstrap).await.expect("connect");
                let producer = client.producer_with(ProducerConfig {
                    delivery_timeout: Duration::from_secs(60),
                    batch_bytes: 4096,
                    ..ProducerConfig::default()
                });
                let mut seq = 0u64;
                let mut pending = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let v = value(p, seq, pad);
                    let record = ProducerRecord::new(TOPIC, v.clone())
                        .partition((seq % u64::from(PARTITIONS)) as u32);
                    match producer.enqueue(record).await {
                        Ok(f) => pending.push((v, f)),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    }
                    seq += 1;
                    if pending.len() >= 64 {
                        for (v, f) in pending.drain(..) {
                            match f.await {
                                Ok(m) => {
                                    acked.lock().expect("lock").push((m.partition, m.offset, v));
                                    *last_ack.lock().expect("lock") = Instant::now();
                                }
                                Err(_) => {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                }
                for (v, f) in pending {
                    match f.await {
                        Ok(m) => acked.lock().expect("lock").push((m.partition, m.offset, v)),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        let (stop2, seen2, bootstrap2) = (stop.clone(), seen.clone(), bootstrap.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(client) = tidelog::Client::connect(bootstrap2).await else {
                return;
            };
            let mut consumer = client.consumer();
            let tps: Vec<TopicPartition> = (0..PARTITIONS)
                .map(|p| TopicPartition::new(TOPIC, p))
                .collect();
            consumer.assign(tps.clone());
            for tp in &tps {
                let _ = consumer.seek(tp, SeekTo::Beginning).await;
            }
            while !stop2.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), consumer.next_record()).await
                {
                    Ok(Some(Ok(r))) => {
                        let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                            .into_owned();
                        seen2.lock().expect("lock").push((r.partition, r.offset, v));
                    }
                    // A fault makes reads fail for a while: keep reading.
                    Ok(Some(Err(_))) => tokio::time::sleep(Duration::from_millis(50)).await,
                    _ => {}
                }
            }
        }));
        Workload {
            stop,
            acked,
            seen,
            errors,
            last_ack,
            tasks,
        }
    }

    /// Waits until records are acknowledged again after `healed` (when the
    /// healing began: the restart or the resume); returns how long that
    /// took.
    async fn recovered_since(&self, healed: Instant) -> Duration {
        let deadline = healed + Duration::from_secs(60);
        loop {
            let last = *self.last_ack.lock().expect("lock");
            if last > healed {
                return last - healed;
            }
            assert!(
                Instant::now() < deadline,
                "no acknowledgement within 60 s of healing"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the workload and compares with every partition read from 0.
    async fn finish(self, name: &str, bootstrap: String, recovery: Duration) -> Outcome {
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(90), t).await;
        }
        let client = tidelog::Client::connect(bootstrap).await.expect("connect");
        let mut log: BTreeMap<u32, Vec<(i64, String)>> = BTreeMap::new();
        let mut reported: Vec<(u32, i64, i64)> = Vec::new();
        for p in 0..PARTITIONS {
            let mut consumer = client.consumer();
            let tp = TopicPartition::new(TOPIC, p);
            consumer.assign([tp.clone()]);
            consumer.seek(&tp, SeekTo::Beginning).await.expect("seek");
            let (end, _) = client
                .admin()
                .list_offsets(TOPIC, p, tidelog::OffsetSpec::Latest)
                .await
                .expect("end");
            let (mut next, _) = client
                .admin()
                .list_offsets(TOPIC, p, tidelog::OffsetSpec::Earliest)
                .await
                .expect("start");
            let mut records = Vec::new();
            while next < end {
                let r = tokio::time::timeout(Duration::from_secs(30), consumer.next_record())
                    .await
                    .expect("final read in time")
                    .expect("assigned");
                match r {
                    Ok(r) => {
                        let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                            .into_owned();
                        next = r.offset + 1;
                        records.push((r.offset, v));
                    }
                    // Destroyed data must be reported, with its range.
                    Err(tidelog::Error::DataLoss(m)) => {
                        let (a, b) = reported_range(&m)
                            .unwrap_or_else(|| panic!("DATA_LOSS without a range: {m}"));
                        reported.push((p, a, b));
                        next = b;
                        consumer
                            .seek(&tp, SeekTo::Offset(b))
                            .await
                            .expect("seek past");
                    }
                    Err(e) => panic!("final read of {TOPIC}/{p}: {e}"),
                }
            }
            log.insert(p, records);
        }
        let in_reported =
            |p: u32, o: i64| reported.iter().any(|&(q, a, b)| q == p && a <= o && o < b);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut at: HashMap<(u32, i64), &str> = HashMap::new();
        let mut reordered = 0;
        for (p, records) in &log {
            let mut last: HashMap<usize, u64> = HashMap::new();
            for (o, v) in records {
                *counts.entry(v.as_str()).or_default() += 1;
                at.insert((*p, *o), v.as_str());
                if let Some((producer, seq)) = parse(v.as_bytes()) {
                    if last.get(&producer).is_some_and(|&prev| seq <= prev) {
                        reordered += 1;
                    }
                    last.insert(producer, seq);
                }
            }
        }
        let acked = self.acked.lock().expect("lock").clone();
        let absent: Vec<&(u32, i64, String)> = acked
            .iter()
            .filter(|(_, _, v)| !counts.contains_key(v.as_str()))
            .collect();
        let reported_lost = absent
            .iter()
            .filter(|(p, o, _)| in_reported(*p, *o))
            .count();
        let lost = absent.len() - reported_lost;
        let duplicated = counts.values().filter(|&&n| n > 1).count();
        let vanished = self
            .seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, o, v)| at.get(&(*p, *o)) != Some(&v.as_str()) && !in_reported(*p, *o))
            .count();
        Outcome {
            name: name.to_string(),
            acknowledged: acked.len(),
            lost,
            duplicated,
            reordered,
            vanished,
            app_errors: self.errors.load(Ordering::Relaxed),
            recovery,
            reported_lost,
            not_run: None,
        }
    }
}

async fn create_topic(broker: &BrokerProcess, segment_bytes: Option<&str>) {
    let client = broker.client().await;
    let mut t = NewTopic::new(TOPIC, PARTITIONS);
    if let Some(b) = segment_bytes {
        t = t.config("segment.bytes", b);
    }
    client.admin().create_topic(t).await.expect("create");
}

/// `kill -9` of the broker under load, three times.
async fn kill_9_repeated() -> Outcome {
    let mut broker = BrokerProcess::start();
    create_topic(&broker, None).await;
    let w = Workload::start(broker.addr.clone()).await;
    let mut recovery = Duration::ZERO;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        broker.kill9();
        let healing = Instant::now();
        broker.start_again();
        recovery = recovery.max(w.recovered_since(healing).await);
    }
    w.finish(
        "kill -9 of the broker under load (×3)",
        broker.addr.clone(),
        recovery,
    )
    .await
}

/// The broker paused for 3 s (`SIGSTOP`), then resumed.
async fn pause_3s() -> Outcome {
    let broker = BrokerProcess::start();
    create_topic(&broker, None).await;
    let w = Workload::start(broker.addr.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    broker.signal("STOP");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let healing = Instant::now();
    broker.signal("CONT");
    let recovery = w.recovered_since(healing).await;
    w.finish(
        "SIGSTOP of the broker for 3 s",
        broker.addr.clone(),
        recovery,
    )
    .await
}

/// A crash that leaves half a write at the end of a segment.
async fn torn_write() -> Outcome {
    let mut broker = BrokerProcess::start();
    create_topic(&broker, None).await;
    let w = Workload::start(broker.addr.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    broker.kill9();
    let dir = broker.data_dir.join(format!("topics/{TOPIC}/0"));
    let last = *segment_bases(&dir).last().expect("a segment");
    let seg = dir.join(format!("{last:020}.log"));
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&seg)
            .expect("segment");
        f.write_all(&[0x5a; 37]).expect("torn bytes");
    }
    let healing = Instant::now();
    broker.start_again();
    let recovery = w.recovered_since(healing).await;
    w.finish(
        "torn write at the end of a segment (kill -9)",
        broker.addr.clone(),
        recovery,
    )
    .await
}

/// A bit flipped in a sealed segment the bucket already holds: the copy
/// there is served, nothing is lost.
async fn flipped_bit_in_an_uploaded_segment() -> Outcome {
    let mut broker = BrokerProcess::start();
    create_topic(&broker, Some("65536")).await;
    let w = Workload::start(broker.addr.clone()).await;
    let client = broker.client().await;
    // Until partition 0 has two sealed segments in the bucket.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = client
            .admin()
            .describe_topic(TOPIC)
            .await
            .expect("describe");
        if d.partitions[0].remote_segments >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "uploads in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    broker.kill9();
    let dir = broker.data_dir.join(format!("topics/{TOPIC}/0"));
    let seg = dir.join(format!("{:020}.log", segment_bases(&dir)[0]));
    let positions = batch_positions(&seg);
    flip_byte(&seg, positions[positions.len() / 2] + 80, 0x10);
    let healing = Instant::now();
    broker.start_again();
    let recovery = w.recovered_since(healing).await;
    w.finish(
        "bit flipped in a sealed, uploaded segment",
        broker.addr.clone(),
        recovery,
    )
    .await
}

/// `kill -9` of one broker of three (the controller) under load, then its
/// restart: partitions it hosts wait for it; nothing is lost.
async fn kill_9_of_the_controller_in_a_cluster() -> Outcome {
    let mut brokers = BrokerProcess::start_cluster(3, &[]);
    create_topic(&brokers[0], None).await;
    let all = brokers
        .iter()
        .map(|b| b.addr.clone())
        .collect::<Vec<_>>()
        .join(",");
    let w = Workload::start(all.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = brokers[0].cli(&["cluster", "status", "--json"]);
    let controller = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|s| s["controller_id"].as_u64())
        .unwrap_or(1) as usize;
    brokers[controller - 1].kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let healing = Instant::now();
    brokers[controller - 1].start_again();
    let recovery = w.recovered_since(healing).await;
    w.finish(
        "cluster: kill -9 of the controller, restarted after 2 s",
        all,
        recovery,
    )
    .await
}

/// A segment object deleted from the bucket after the broker dropped its
/// local copy: the records it held are gone, and every read of them must
/// say so (DATA_LOSS naming the range), never skip them silently.
async fn object_lost_from_the_bucket() -> Outcome {
    let broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(
            NewTopic::new(TOPIC, PARTITIONS)
                .config("segment.bytes", "65536")
                .config("local.retention.bytes", "0")
                .config("retention.ms", "-1"),
        )
        .await
        .expect("create");
    let w = Workload::start(broker.addr.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = client
            .admin()
            .describe_topic(TOPIC)
            .await
            .expect("describe");
        let p = &d.partitions[0];
        if p.remote_segments >= 3 && p.local_start_offset > p.remote_start_offset {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "uploads and local deletion in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bucket = broker
        .data_dir
        .with_file_name("data-bucket")
        .join(format!("topics/{TOPIC}"));
    let mut objects: Vec<std::path::PathBuf> = walk(&bucket)
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "log")
                && p.to_string_lossy().contains("/0/segments/")
        })
        .collect();
    objects.sort();
    std::fs::remove_file(&objects[1]).expect("delete a segment object");
    w.finish(
        "segment object deleted from the bucket",
        broker.addr.clone(),
        Duration::ZERO,
    )
    .await
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The data directory's disk fills up under load (a 24 MiB tmpfs), then
/// gets room again (remounted larger): produce is refused with a
/// retriable error meanwhile, and nothing acknowledged is lost.
async fn disk_full() -> Outcome {
    let name = "disk full (tmpfs), then room again";
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir_all(&mnt).expect("mount point");
    let mount = |opts: &str| {
        std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !mount("size=24m") {
        return Outcome {
            name: name.into(),
            not_run: Some("cannot mount a tmpfs (needs root)".into()),
            ..Outcome::default()
        };
    }
    let bucket = tmp.path().join("bucket");
    std::fs::create_dir_all(&bucket).expect("bucket");
    let store = format!("file://{}", bucket.display());
    let broker = BrokerProcess::start_in(&mnt.join("data"), &[("TIDELOG_OBJECT_STORE", &store)]);
    broker
        .client()
        .await
        .admin()
        .create_topic(NewTopic::new(TOPIC, PARTITIONS).config("remote.storage.enable", "false"))
        .await
        .expect("create");
    let w = Workload::start_padded(broker.addr.clone(), 1000).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let used = || {
        std::process::Command::new("df")
            .args(["--output=pcent"])
            .arg(&mnt)
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .nth(1)?
                    .trim()
                    .trim_end_matches('%')
                    .parse::<u32>()
                    .ok()
            })
            .unwrap_or(0)
    };
    while used() < 99 {
        assert!(
            Instant::now() < deadline,
            "the disk filled up in time ({}%)",
            used()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let healing = Instant::now();
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=512m"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    assert!(grown, "remount the tmpfs larger");
    let recovery = w.recovered_since(healing).await;
    let outcome = w.finish(name, broker.addr.clone(), recovery).await;
    drop(broker);
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fault_matrix() {
    let outcomes = vec![
        kill_9_repeated().await,
        pause_3s().await,
        torn_write().await,
        flipped_bit_in_an_uploaded_segment().await,
        object_lost_from_the_bucket().await,
        disk_full().await,
        kill_9_of_the_controller_in_a_cluster().await,
    ];
    let mut table = String::from(
        "| scenario | acknowledged | lost silently | lost, reported as DATA_LOSS | duplicated | reordered | read, then gone | app errors | recovery | result |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for o in &outcomes {
        table.push_str(&o.row());
        table.push('\n');
    }
    println!("{table}");
    if let Ok(path) = std::env::var("TIDELOG_RELIABILITY_OUT") {
        std::fs::write(path, &table).expect("write the table");
    }
    for o in outcomes.iter().filter(|o| o.not_run.is_none()) {
        assert!(o.acknowledged > 0, "{o:?}");
        assert!(o.passed(), "{o:?}");
    }
}
