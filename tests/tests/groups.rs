//! Consumer groups against a real broker: balanced assignment, exactly-once
//! consumption with commits, failover on member death, durable offsets,
//! rewind by time, fencing, and the `tidelog group` / `consume --group` CLI.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidelog::{
    Client, Error, GroupConsumer, GroupConsumerConfig, NewTopic, OffsetReset, ProducerRecord,
    ResetSpec, TopicPartition,
};
use tidelog_e2e::BrokerProcess;
use tidelog_proto::v1::{
    groups_client::GroupsClient, CommitOffsetsRequest, GroupHeartbeatRequest, OffsetCommit,
    ResetOffsetsRequest,
};

fn config(group: &str) -> GroupConsumerConfig {
    let mut c = GroupConsumerConfig::new(group);
    c.session_timeout = Duration::from_secs(3);
    c.auto_offset_reset = OffsetReset::Earliest;
    c.auto_commit = false;
    c
}

async fn produce(client: &Client, topic: &str, round: &str, n: usize, ts: impl Fn(usize) -> i64) {
    let producer = client.producer();
    for i in 0..n {
        producer
            .enqueue(
                ProducerRecord::new(topic, format!("{round}{i}"))
                    .key(format!("k{i}"))
                    .timestamp(ts(i)),
            )
            .await
            .expect("enqueue");
    }
    producer.flush().await.expect("flush");
}

type Seen = Arc<Mutex<Vec<(String, u32, i64, String)>>>;
type Owned = Arc<Mutex<HashMap<usize, BTreeSet<TopicPartition>>>>;

/// Runs a member that commits after every record until `stop`.
fn spawn_member(
    mut consumer: GroupConsumer,
    id: usize,
    seen: Seen,
    owned: Owned,
    stop: Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<GroupConsumer> {
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                r = tokio::time::timeout(Duration::from_millis(200), consumer.next_record()) => r,
                _ = stop.notified() => return consumer,
            };
            owned
                .lock()
                .expect("lock")
                .insert(id, consumer.assignment().into_iter().collect());
            if let Ok(Some(r)) = next {
                let r = r.expect("record");
                let value =
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
                seen.lock().expect("lock").push((
                    r.topic.to_string(),
                    r.partition,
                    r.offset,
                    value,
                ));
                consumer.commit().await.expect("commit after processing");
            }
        }
    })
}

fn assert_disjoint(owned: &Owned) {
    let owned = owned.lock().expect("lock");
    let mut all = BTreeSet::new();
    for set in owned.values() {
        for tp in set {
            assert!(
                all.insert(tp.clone()),
                "{tp:?} owned by two members at once: {owned:?}"
            );
        }
    }
}

async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_share_six_partitions_exactly_once_and_survive_a_death() {
    let broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("g6", 6))
        .await
        .expect("create");
    produce(&client, "g6", "a", 600, |_| tidelog_e2e::now_ms()).await;

    let seen: Seen = Arc::default();
    let owned: Owned = Arc::default();
    let mut members = Vec::new();
    for id in 0..3 {
        let mut c = client.group_consumer(config("workers"));
        c.subscribe(&["g6"]).await.expect("subscribe");
        let stop = Arc::new(tokio::sync::Notify::new());
        members.push((
            spawn_member(c, id, seen.clone(), owned.clone(), stop.clone()),
            stop,
        ));
    }
    wait_until("600 records consumed", Duration::from_secs(30), || {
        assert_disjoint(&owned);
        seen.lock().expect("lock").len() >= 600
    })
    .await;
    wait_until("balanced assignment", Duration::from_secs(15), || {
        assert_disjoint(&owned);
        let o = owned.lock().expect("lock");
        o.len() == 3 && o.values().all(|s| s.len() == 2)
    })
    .await;
    {
        let seen = seen.lock().expect("lock");
        let distinct: BTreeSet<_> = seen.iter().map(|s| (s.1, s.2)).collect();
        assert_eq!(distinct.len(), seen.len(), "no record consumed twice");
        let values: BTreeSet<_> = seen.iter().map(|s| s.3.clone()).collect();
        assert_eq!(values.len(), 600, "every record consumed");
    }
    // A member records what it saw before committing it, so the last
    // commits may still be on their way: give them a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = client
            .admin()
            .describe_group("workers")
            .await
            .expect("describe");
        assert_eq!(d.members.len(), 3);
        let caught_up = d
            .partitions
            .iter()
            .all(|p| p.lag == 0 && p.committed_offset.is_some());
        if caught_up {
            break;
        }
        assert!(Instant::now() < deadline, "{d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Kill member 2 without leaving: its partitions move within the session
    // timeout (3 s), never owned twice.
    let (dead, dead_stop) = members.pop().expect("member");
    dead_stop.notify_one();
    let dead_consumer = dead.await.expect("join");
    let killed_at = Instant::now();
    drop(dead_consumer);
    owned.lock().expect("lock").remove(&2);
    produce(&client, "g6", "b", 300, |_| tidelog_e2e::now_ms()).await;
    wait_until("survivors own all six", Duration::from_secs(10), || {
        assert_disjoint(&owned);
        let o = owned.lock().expect("lock");
        o.values().map(BTreeSet::len).sum::<usize>() == 6 && o.values().all(|s| s.len() == 3)
    })
    .await;
    assert!(
        killed_at.elapsed() < Duration::from_secs(9),
        "moved within the session timeout"
    );
    wait_until("900 records consumed", Duration::from_secs(20), || {
        seen.lock().expect("lock").len() >= 900
    })
    .await;
    let seen_now = seen.lock().expect("lock").clone();
    let values: BTreeSet<_> = seen_now.iter().map(|s| s.3.clone()).collect();
    assert_eq!(values.len(), 900);
    let distinct: BTreeSet<_> = seen_now.iter().map(|s| (s.1, s.2)).collect();
    assert_eq!(
        distinct.len(),
        seen_now.len(),
        "still exactly once: commits after processing"
    );
    for (task, stop) in members {
        stop.notify_one();
        task.await
            .expect("join")
            .close()
            .await
            .expect("close leaves the group");
    }
    let d = client
        .admin()
        .describe_group("workers")
        .await
        .expect("describe");
    assert_eq!(d.state, "EMPTY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_restart_and_consumers_resume() {
    let mut broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("dur", 2))
        .await
        .expect("create");
    produce(&client, "dur", "", 200, |_| tidelog_e2e::now_ms()).await;
    let mut c = client.group_consumer(config("resumers"));
    c.subscribe(&["dur"]).await.expect("subscribe");
    let mut first = BTreeSet::new();
    while first.len() < 120 {
        let r = c.next_record().await.expect("open").expect("record");
        first.insert(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned());
    }
    c.commit().await.expect("commit");
    drop(c); // crash-like: no leave

    broker.restart();
    let client = broker.client().await;
    let d = client
        .admin()
        .describe_group("resumers")
        .await
        .expect("describe after restart");
    let committed: i64 = d.partitions.iter().filter_map(|p| p.committed_offset).sum();
    assert_eq!(
        committed, 120,
        "committed offsets survived the restart: {d:?}"
    );
    let mut c = client.group_consumer(config("resumers"));
    c.subscribe(&["dur"]).await.expect("subscribe");
    let mut rest = BTreeSet::new();
    while rest.len() < 80 {
        let r = tokio::time::timeout(Duration::from_secs(20), c.next_record())
            .await
            .expect("in time")
            .expect("open")
            .expect("record");
        let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
        assert!(
            !first.contains(&v),
            "record {v} delivered again after resume"
        );
        rest.insert(v);
    }
    assert_eq!(first.len() + rest.len(), 200, "nothing lost");
    c.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_to_timestamp_redelivers_exactly_the_later_records() {
    let broker = BrokerProcess::start();
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .create_topic(NewTopic::new("rw", 2))
        .await
        .expect("create");
    let t0 = 1_750_000_000_000i64;
    produce(&client, "rw", "", 400, |i| t0 + i as i64 * 1000).await;
    let mut c = client.group_consumer(config("replay"));
    c.subscribe(&["rw"]).await.expect("subscribe");
    for _ in 0..400 {
        c.next_record().await.expect("open").expect("record");
    }
    // Active member: the reset is refused without --force.
    match admin
        .reset_offsets(
            "replay",
            "rw",
            &[],
            ResetSpec::Timestamp(t0 + 250_000),
            false,
            false,
        )
        .await
    {
        Err(Error::GroupNotEmpty(m)) => assert!(m.contains("--force"), "{m}"),
        other => panic!("{other:?}"),
    }
    c.commit().await.expect("commit");
    c.close().await.expect("close leaves");
    let d = admin.describe_group("replay").await.expect("describe");
    assert!(
        d.partitions.iter().all(|p| p.lag == 0),
        "all consumed: {d:?}"
    );

    let plan = admin
        .reset_offsets(
            "replay",
            "rw",
            &[],
            ResetSpec::Timestamp(t0 + 250_000),
            true,
            false,
        )
        .await
        .expect("dry run");
    assert_eq!(plan.len(), 2);
    assert!(plan.iter().all(|e| e.old_offset.is_some()));
    let still = admin.describe_group("replay").await.expect("describe");
    assert!(
        still.partitions.iter().all(|p| p.lag == 0),
        "dry run changed nothing"
    );
    admin
        .reset_offsets(
            "replay",
            "rw",
            &[],
            ResetSpec::Timestamp(t0 + 250_000),
            false,
            false,
        )
        .await
        .expect("reset");

    let mut c = client.group_consumer(config("replay"));
    c.subscribe(&["rw"]).await.expect("subscribe");
    let mut again = BTreeSet::new();
    while again.len() < 150 {
        let r = tokio::time::timeout(Duration::from_secs(20), c.next_record())
            .await
            .expect("in time")
            .expect("open")
            .expect("record");
        assert!(
            r.timestamp >= t0 + 250_000,
            "record at {} is before the reset time",
            r.timestamp
        );
        assert!(again.insert(r.timestamp), "delivered once");
    }
    // Nothing else arrives: exactly the records from that time on.
    let extra = tokio::time::timeout(Duration::from_millis(700), c.next_record()).await;
    assert!(extra.is_err(), "unexpected extra record: {extra:?}");
    c.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_and_foreign_commits_are_rejected() {
    let broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("f", 2))
        .await
        .expect("create");
    let mut g = GroupsClient::connect(format!("http://{}", broker.addr))
        .await
        .expect("connect");
    let join = |member_id: &str, epoch: i32| GroupHeartbeatRequest {
        group_id: "fence".into(),
        member_id: member_id.into(),
        member_epoch: epoch,
        topics: vec!["f".into()],
        owned: vec![],
        session_timeout_ms: 1500,
        client_id: "raw".into(),
    };
    let a = g.heartbeat(join("", 0)).await.expect("join").into_inner();
    assert_eq!(
        a.assignment
            .iter()
            .map(|t| t.partitions.len())
            .sum::<usize>(),
        2
    );
    let commit = |member: &str, epoch: i32, partition: u32| CommitOffsetsRequest {
        group_id: "fence".into(),
        member_id: member.into(),
        member_epoch: epoch,
        offsets: vec![OffsetCommit {
            topic: "f".into(),
            partition,
            offset: 0,
            metadata: String::new(),
        }],
    };
    let reason = |s: &tonic::Status| {
        s.metadata()
            .get("x-tidelog-error")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    g.commit_offsets(commit(&a.member_id, a.member_epoch, 0))
        .await
        .expect("owner commits");
    let s = g
        .commit_offsets(commit(&a.member_id, a.member_epoch + 7, 0))
        .await
        .expect_err("stale epoch");
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (tonic::Code::FailedPrecondition, "FENCED_MEMBER_EPOCH")
    );
    // A second member joins; after the first acknowledges its revocation,
    // the first may no longer commit the moved partition.
    let b = g.heartbeat(join("", 0)).await.expect("join b").into_inner();
    let mut a_now = g
        .heartbeat(GroupHeartbeatRequest {
            owned: a.assignment.clone(),
            ..join(&a.member_id, a.member_epoch)
        })
        .await
        .expect("a heartbeat")
        .into_inner();
    a_now = g
        .heartbeat(GroupHeartbeatRequest {
            owned: a_now.assignment.clone(),
            ..join(&a.member_id, a_now.member_epoch)
        })
        .await
        .expect("a acknowledges")
        .into_inner();
    let a_parts: Vec<u32> = a_now
        .assignment
        .iter()
        .flat_map(|t| t.partitions.clone())
        .collect();
    assert_eq!(a_parts.len(), 1, "a gave one partition up");
    let moved = 1 - a_parts[0];
    let s = g
        .commit_offsets(commit(&a.member_id, a_now.member_epoch, moved))
        .await
        .expect_err("not assigned");
    assert_eq!(reason(&s), "NOT_ASSIGNED");
    // A member that stops heartbeating is removed; its commits are refused.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let s = g
        .commit_offsets(commit(&b.member_id, b.member_epoch, moved))
        .await
        .expect_err("expired member");
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (tonic::Code::NotFound, "UNKNOWN_MEMBER")
    );
    // Unknown group, invalid reset spec, bad group id.
    let admin = client.admin();
    assert!(matches!(
        admin.describe_group("nobody").await,
        Err(Error::UnknownGroup(_))
    ));
    let s = g
        .reset_offsets(ResetOffsetsRequest {
            group_id: "fence".into(),
            topic: "f".into(),
            partitions: vec![],
            spec: None,
            dry_run: false,
            force: false,
        })
        .await
        .expect_err("no spec");
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    assert!(matches!(
        admin
            .reset_offsets("fence", "nope", &[], ResetSpec::Earliest, false, true)
            .await,
        Err(Error::UnknownTopic(_))
    ));
    assert!(matches!(
        admin.describe_group("").await,
        Err(Error::InvalidGroupId(_))
    ));
}

#[test]
fn cli_group_consume_describe_reset_and_delete() {
    let broker = BrokerProcess::start();
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(broker.cli(&["topic", "create", "cli-g", "--partitions", "2"]));
    let lines: String = (0..10).map(|i| format!("line-{i}\n")).collect();
    ok(broker.cli_with_stdin(&["produce", "cli-g"], lines.as_bytes()));
    // Two runs of 5 records: the second continues where the first committed.
    let a = ok(broker.cli(&["consume", "cli-g", "--group", "cg", "-n", "5"]));
    let b = ok(broker.cli(&["consume", "cli-g", "--group", "cg", "-n", "5"]));
    let all: BTreeSet<&str> = a.lines().chain(b.lines()).collect();
    assert_eq!(all.len(), 10, "first:\n{a}\nsecond:\n{b}");
    let list = ok(broker.cli(&["group", "list"]));
    assert!(list.contains("cg\tEMPTY"), "{list}");
    let d = ok(broker.cli(&["group", "describe", "cg"]));
    assert!(d.contains("state: EMPTY"), "{d}");
    let plan = ok(broker.cli(&[
        "group",
        "reset-offsets",
        "cg",
        "--topic",
        "cli-g",
        "--to-earliest",
        "--dry-run",
    ]));
    assert!(plan.contains("dry run"), "{plan}");
    ok(broker.cli(&[
        "group",
        "reset-offsets",
        "cg",
        "--topic",
        "cli-g",
        "--to-earliest",
    ]));
    let again = ok(broker.cli(&["consume", "cli-g", "--group", "cg", "-n", "10"]));
    assert_eq!(
        again.lines().collect::<BTreeSet<_>>(),
        all,
        "rewound to the beginning"
    );
    let shifted = ok(broker.cli(&[
        "group",
        "reset-offsets",
        "cg",
        "--topic",
        "cli-g",
        "--partition",
        "0",
        "--shift-by",
        "-2",
    ]));
    assert!(shifted.contains("applied"), "{shifted}");
    let bad = broker.cli(&["group", "reset-offsets", "cg", "--topic", "cli-g"]);
    assert!(!bad.status.success(), "a reset needs a target");
    let bad = broker.cli(&["group", "describe", "missing"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown group"));
    ok(broker.cli(&["group", "delete", "cg"]));
    let list = ok(broker.cli(&["group", "list"]));
    assert!(!list.contains("cg"), "{list}");
}
