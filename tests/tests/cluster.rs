//! A Tidelog cluster: three real brokers on loopback form one metadata
//! quorum, spread partitions, route clients to leaders, survive the
//! controller's `kill -9` and a full restart.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use tidelog_e2e::{error_reason, BrokerProcess};
use tidelog_proto::v1::admin_client::AdminClient;
use tidelog_proto::v1::consumer_client::ConsumerClient;
use tidelog_proto::v1::producer_client::ProducerClient;
use tidelog_proto::v1::{
    CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest, FetchRequest, MetadataRequest,
    ProduceRequest,
};

/// `tidelog cluster status --json` through `broker`.
fn status(broker: &BrokerProcess) -> Option<serde_json::Value> {
    let out = broker.cli(&["cluster", "status", "--json"]);
    serde_json::from_slice(&out.stdout).ok()
}

/// Waits until `broker` reports a controller among `allowed` and returns it.
fn wait_controller(broker: &BrokerProcess, allowed: &[u64], secs: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(c) = status(broker).and_then(|s| s["controller_id"].as_u64()) {
            if allowed.contains(&c) {
                return c;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no controller among {allowed:?} within {secs}s");
}

async fn admin(b: &BrokerProcess) -> AdminClient<tonic::transport::Channel> {
    AdminClient::connect(format!("http://{}", b.addr))
        .await
        .expect("connect")
}

async fn create(b: &BrokerProcess, name: &str, partitions: u32) -> Result<(), tonic::Status> {
    admin(b)
        .await
        .create_topic(CreateTopicRequest {
            name: name.into(),
            partitions,
            ..CreateTopicRequest::default()
        })
        .await
        .map(|_| ())
}

/// Leader broker id of each partition, as `b` describes the topic.
async fn leaders(b: &BrokerProcess, name: &str) -> Vec<u32> {
    let d = admin(b)
        .await
        .describe_topic(DescribeTopicRequest {
            name: name.into(),
            local_only: false,
        })
        .await
        .expect("describe")
        .into_inner()
        .topic
        .expect("topic");
    d.partitions.iter().map(|p| p.leader).collect()
}

fn one_record_batch(value: &[u8]) -> bytes::Bytes {
    let mut b = tidelog_proto::batch::BatchBuilder::new(
        tidelog_proto::batch::Compression::None,
        1_700_000_000_000,
    );
    b.push(1_700_000_000_000, None, Some(value), &[]);
    b.finish(-1, -1, -1)
}

async fn produce(
    addr: &str,
    topic: &str,
    partition: u32,
    value: &[u8],
) -> Result<i64, tonic::Status> {
    let mut c = ProducerClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    c.produce(ProduceRequest {
        topic: topic.into(),
        partition,
        batches: vec![one_record_batch(value)],
        ..ProduceRequest::default()
    })
    .await
    .map(|r| r.into_inner().results.first().map_or(-1, |b| b.base_offset))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_form_a_cluster_spread_partitions_and_route_to_leaders() {
    let brokers = BrokerProcess::start_cluster(3, &[]);
    let s = status(&brokers[1]).expect("status");
    let ids: BTreeSet<u64> = s["brokers"]
        .as_array()
        .expect("brokers")
        .iter()
        .filter(|b| b["alive"] == true && b["quorum_role"] == "voter")
        .filter_map(|b| b["id"].as_u64())
        .collect();
    assert_eq!(ids, BTreeSet::from([1, 2, 3]), "{s}");
    let controller = s["controller_id"].as_u64().expect("a controller");
    let controllers = s["brokers"]
        .as_array()
        .expect("brokers")
        .iter()
        .filter(|b| b["controller"] == true)
        .count();
    assert_eq!(controllers, 1);
    assert!(ids.contains(&controller));

    // Created through one broker, spread over all three, seen alike by each.
    create(&brokers[2], "spread", 6).await.expect("create");
    let placed = leaders(&brokers[0], "spread").await;
    let mut per_broker: BTreeMap<u32, usize> = BTreeMap::new();
    for l in &placed {
        *per_broker.entry(*l).or_default() += 1;
    }
    assert_eq!(
        per_broker,
        BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
        "{placed:?}"
    );
    for b in &brokers {
        assert_eq!(leaders(b, "spread").await, placed);
        let m = admin(b)
            .await
            .metadata(MetadataRequest {
                topics: vec!["spread".into()],
            })
            .await
            .expect("metadata")
            .into_inner();
        assert_eq!(m.brokers.len(), 3);
        assert_eq!(m.topics[0].leaders, placed);
    }

    // Produce to each partition's leader; a broker that does not lead it
    // says NOT_LEADER and names the leader.
    let addr_of = |id: u32| brokers[(id - 1) as usize].addr.clone();
    for (p, &leader) in placed.iter().enumerate() {
        let offset = produce(
            &addr_of(leader),
            "spread",
            p as u32,
            format!("v{p}").as_bytes(),
        )
        .await
        .expect("produce to the leader");
        assert_eq!(offset, 0);
        let other = if leader == 1 { 2 } else { 1 };
        let refused = produce(&addr_of(other), "spread", p as u32, b"x")
            .await
            .expect_err("not the leader");
        assert_eq!(
            error_reason(&refused),
            "NOT_LEADER",
            "{}",
            refused.message()
        );
        let hint = refused
            .metadata()
            .get(tidelog_proto::LEADER_ADDRESS_KEY)
            .and_then(|v| v.to_str().ok());
        assert_eq!(hint, Some(addr_of(leader).as_str()));
        let mut c = ConsumerClient::connect(format!("http://{}", addr_of(leader)))
            .await
            .expect("connect");
        let r = c
            .fetch(FetchRequest {
                topic: "spread".into(),
                partition: p as u32,
                offset: 0,
                ..FetchRequest::default()
            })
            .await
            .expect("fetch from the leader")
            .into_inner();
        assert_eq!(r.high_watermark, 1);
    }

    // Admin calls through any broker; deletion removes the data wherever
    // it lives.
    let err = create(&brokers[0], "spread", 1).await.expect_err("exists");
    assert_eq!(error_reason(&err), "TOPIC_ALREADY_EXISTS");
    admin(&brokers[1])
        .await
        .delete_topic(DeleteTopicRequest {
            name: "spread".into(),
        })
        .await
        .expect("delete");
    let deadline = Instant::now() + Duration::from_secs(10);
    while brokers
        .iter()
        .any(|b| b.data_dir.join("topics/spread").exists())
    {
        assert!(
            Instant::now() < deadline,
            "every broker removed its partitions"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_controller_elects_another_and_it_rejoins_when_restarted() {
    let mut brokers = BrokerProcess::start_cluster(3, &[]);
    let controller = wait_controller(&brokers[0], &[1, 2, 3], 10);
    let idx = (controller - 1) as usize;
    brokers[idx].kill9();
    let survivor = &brokers[(idx + 1) % 3];
    let others: Vec<u64> = (1..=3).filter(|&i| i != controller).collect();
    let started = Instant::now();
    wait_controller(survivor, &others, 15);
    let elected_in = started.elapsed();
    assert!(elected_in < Duration::from_secs(10), "{elected_in:?}");
    // Metadata changes go on with two of three.
    create(survivor, "after-failover", 3)
        .await
        .expect("create after failover");

    brokers[idx].start_again_in_background();
    brokers[idx].wait_ready();
    let s = status(&brokers[idx]).expect("status");
    let me = s["brokers"]
        .as_array()
        .expect("brokers")
        .iter()
        .find(|b| b["id"].as_u64() == Some(controller))
        .cloned()
        .expect("the restarted broker");
    assert_eq!(me["alive"], true);
    // Registered again (fenced first too, if the restart outlasted its
    // session timeout).
    assert!(me["epoch"].as_u64() >= Some(2), "registered again: {me}");
    assert_eq!(leaders(&brokers[idx], "after-failover").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cluster_restart_keeps_topics_configs_and_placement() {
    let mut brokers = BrokerProcess::start_cluster(3, &[]);
    admin(&brokers[0])
        .await
        .create_topic(CreateTopicRequest {
            name: "kept".into(),
            partitions: 4,
            config: [("retention.ms".to_string(), "3600000".to_string())].into(),
        })
        .await
        .expect("create");
    let before = leaders(&brokers[1], "kept").await;
    for b in &mut brokers {
        assert!(b.terminate());
    }
    for b in &mut brokers {
        b.start_again_in_background();
    }
    for b in &mut brokers {
        b.wait_ready();
    }
    assert_eq!(leaders(&brokers[2], "kept").await, before);
    let d = admin(&brokers[0])
        .await
        .describe_topic(DescribeTopicRequest {
            name: "kept".into(),
            local_only: false,
        })
        .await
        .expect("describe")
        .into_inner()
        .topic
        .expect("topic");
    assert_eq!(
        d.config.get("retention.ms").map(String::as_str),
        Some("3600000")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_voter_list_disagrees_with_its_cluster_is_refused() {
    let mut brokers = BrokerProcess::start_cluster(3, &[]);
    let b = &mut brokers[2];
    assert!(b.terminate());
    let voters = b.env_value("TIDELOG_VOTERS").expect("voters").to_string();
    let listen = b
        .env_value("TIDELOG_CLUSTER_LISTEN")
        .expect("listen")
        .to_string();
    // Drop broker 1 from the list this broker is started with.
    let fewer: String = voters
        .split(',')
        .filter(|v| !v.starts_with("1="))
        .collect::<Vec<_>>()
        .join(",");
    let data = b.data_dir.clone();
    let out = tidelog_e2e::tidelog_cmd(
        &[
            "serve",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--node-id",
            "3",
            "--cluster-listen",
            &listen,
            "--voters",
            &fewer,
        ],
        &[],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("voters"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_broker_joins_as_a_learner_and_receives_new_partitions() {
    let brokers = BrokerProcess::start_cluster(3, &[]);
    let voters = brokers[0]
        .env_value("TIDELOG_VOTERS")
        .expect("voters")
        .to_string();
    let tmp = tempfile::tempdir().expect("tempdir");
    let listen = format!("127.0.0.1:{}", tidelog_e2e::free_port());
    let fourth = BrokerProcess::start_in(
        &tmp.path().join("broker-4"),
        &[
            ("TIDELOG_NODE_ID", "4"),
            ("TIDELOG_CLUSTER_LISTEN", &listen),
            ("TIDELOG_VOTERS", &voters),
        ],
    );
    let s = status(&brokers[0]).expect("status");
    let four = s["brokers"]
        .as_array()
        .expect("brokers")
        .iter()
        .find(|b| b["id"] == 4)
        .cloned()
        .expect("broker 4 registered");
    assert_eq!(
        (four["quorum_role"].as_str(), four["alive"].as_bool()),
        (Some("learner"), Some(true)),
        "{s}"
    );
    create(&fourth, "grown", 8)
        .await
        .expect("create through the new broker");
    let placed = leaders(&brokers[1], "grown").await;
    assert_eq!(placed.iter().filter(|&&l| l == 4).count(), 2, "{placed:?}");
    assert!(fourth.data_dir.join("topics/grown").exists());
}

/// 100k records through an SDK bootstrapped with one broker of three: each
/// partition's records reach its leader and read back byte for byte; a
/// consumer group spanning the brokers commits, and its offsets are there
/// after the members leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_bootstrapped_with_one_broker_uses_the_whole_cluster() {
    use tidelog::{
        GroupConsumerConfig, NewTopic, OffsetReset, ProducerRecord, SeekTo, TopicPartition,
    };
    let brokers = BrokerProcess::start_cluster(3, &[]);
    let client = tidelog::Client::connect(brokers[1].addr.clone())
        .await
        .expect("connect");
    client
        .admin()
        .create_topic(NewTopic::new("bulk", 6))
        .await
        .expect("create");
    const N: usize = 100_000;
    let producer = client.producer();
    for i in 0..N {
        producer
            .enqueue(ProducerRecord::new("bulk", format!("value-{i:06}")).partition((i % 6) as u32))
            .await
            .expect("enqueue");
    }
    producer.flush().await.expect("flush");
    // Each broker holds the partitions placed on it, and only those.
    let placed = leaders(&brokers[0], "bulk").await;
    for (p, leader) in placed.iter().enumerate() {
        for b in &brokers {
            let here = b.data_dir.join(format!("topics/bulk/{p}")).exists();
            assert_eq!(
                here,
                b.addr == brokers[(*leader - 1) as usize].addr,
                "partition {p}"
            );
        }
    }
    let mut consumer = client.consumer();
    let tps: Vec<TopicPartition> = (0..6).map(|p| TopicPartition::new("bulk", p)).collect();
    consumer.assign(tps.clone());
    for tp in &tps {
        consumer.seek(tp, SeekTo::Beginning).await.expect("seek");
    }
    let mut next = [0usize; 6];
    for _ in 0..N {
        let r = tokio::time::timeout(Duration::from_secs(30), consumer.next_record())
            .await
            .expect("in time")
            .expect("assigned")
            .expect("record");
        let p = r.partition as usize;
        let i = next[p] * 6 + p;
        assert_eq!(r.offset as usize, next[p]);
        assert_eq!(r.value.as_deref(), Some(format!("value-{i:06}").as_bytes()));
        next[p] += 1;
    }

    // A group across the brokers: two members share the six partitions.
    let mut config = GroupConsumerConfig::new("spanning");
    config.auto_offset_reset = OffsetReset::Earliest;
    config.auto_commit = false;
    let mut a = client.group_consumer(config.clone());
    let mut b = client.group_consumer(config);
    a.subscribe(&["bulk"]).await.expect("subscribe");
    b.subscribe(&["bulk"]).await.expect("subscribe");
    let mut seen = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < N {
        assert!(Instant::now() < deadline, "group consumed {seen} of {N}");
        for m in [&mut a, &mut b] {
            while let Some(_r) = m.try_next_record() {
                seen += 1;
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), m.next_record())
                .await
                .map(|r| {
                    if let Some(Ok(_)) = r {
                        seen += 1;
                    }
                });
        }
    }
    a.commit().await.expect("commit a");
    b.commit().await.expect("commit b");
    let committed = a.committed(&tps).await.expect("committed");
    let total: i64 = committed.iter().map(|(_, o)| o.unwrap_or(0)).sum();
    assert_eq!(total, N as i64, "{committed:?}");
    drop((a, b));

    // The coordinator knows every partition's end, wherever it lives.
    let d = client
        .admin()
        .describe_group("spanning")
        .await
        .expect("describe");
    assert_eq!(d.partitions.len(), 6);
    for p in &d.partitions {
        let records = (N + 5 - p.partition as usize) / 6;
        assert_eq!((p.log_end_offset, p.lag), (records as i64, 0), "{p:?}");
    }
    // And rewinds partitions hosted on other brokers too.
    let plan = client
        .admin()
        .reset_offsets(
            "spanning",
            "bulk",
            &[],
            tidelog::ResetSpec::Earliest,
            false,
            true,
        )
        .await
        .expect("reset");
    assert_eq!(plan.len(), 6);
    assert!(plan.iter().all(|e| e.new_offset == 0), "{plan:?}");
    let d = client
        .admin()
        .describe_group("spanning")
        .await
        .expect("describe");
    let lag: i64 = d.partitions.iter().map(|p| p.lag).sum();
    assert_eq!(lag, N as i64);
    // Every broker lists the group, though one coordinates it.
    for b in &brokers {
        let mut g =
            tidelog_proto::v1::groups_client::GroupsClient::connect(format!("http://{}", b.addr))
                .await
                .expect("connect");
        let listed = g
            .list_groups(tidelog_proto::v1::ListGroupsRequest::default())
            .await
            .expect("list")
            .into_inner()
            .groups;
        assert!(
            listed.iter().any(|l| l.group_id == "spanning"),
            "{listed:?}"
        );
    }
}

/// Liveness: a paused broker misses its session timeout and is fenced
/// (epoch bumped, no new partitions); resumed, it registers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_broker_is_fenced_and_registers_again_when_it_returns() {
    let brokers = BrokerProcess::start_cluster(3, &[("TIDELOG_BROKER_SESSION_TIMEOUT_MS", "1500")]);
    let controller = wait_controller(&brokers[0], &[1, 2, 3], 10);
    let paused = if controller == 3 { 2 } else { 3 };
    let watcher = &brokers[(controller - 1) as usize];
    let state_of = |id: u64| {
        status(watcher).and_then(|s| {
            s["brokers"]
                .as_array()?
                .iter()
                .find(|b| b["id"].as_u64() == Some(id))
                .map(|b| (b["alive"].as_bool(), b["epoch"].as_u64()))
        })
    };
    brokers[(paused - 1) as usize].signal("STOP");
    let deadline = Instant::now() + Duration::from_secs(15);
    while state_of(paused).map(|s| s.0) != Some(Some(false)) {
        assert!(Instant::now() < deadline, "the paused broker was fenced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state_of(paused).and_then(|s| s.1), Some(2));
    // New partitions go to live brokers only.
    create(watcher, "while-fenced", 4).await.expect("create");
    let placed = leaders(watcher, "while-fenced").await;
    assert!(placed.iter().all(|&l| u64::from(l) != paused), "{placed:?}");
    brokers[(paused - 1) as usize].signal("CONT");
    let deadline = Instant::now() + Duration::from_secs(15);
    while state_of(paused).map(|s| s.0) != Some(Some(true)) {
        assert!(
            Instant::now() < deadline,
            "the resumed broker registered again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state_of(paused).and_then(|s| s.1), Some(3));
}

/// A second broker started with a node id the cluster already has (its
/// own cluster address differs from the one `--voters` names for that id)
/// is refused with one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_broker_with_a_node_id_in_use_is_refused() {
    let brokers = BrokerProcess::start_cluster(3, &[]);
    let voters = brokers[0]
        .env_value("TIDELOG_VOTERS")
        .expect("voters")
        .to_string();
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tidelog_e2e::tidelog_cmd(
        &[
            "serve",
            "--data-dir",
            tmp.path().join("dup").to_str().expect("utf-8"),
            "--listen",
            &format!("127.0.0.1:{}", tidelog_e2e::free_port()),
            "--http-listen",
            &format!("127.0.0.1:{}", tidelog_e2e::free_port()),
            "--node-id",
            "2",
            "--cluster-listen",
            &format!("127.0.0.1:{}", tidelog_e2e::free_port()),
            "--voters",
            &voters,
        ],
        &[],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("node id 2"), "{stderr}");
    // The cluster is untouched.
    let s = status(&brokers[0]).expect("status");
    assert_eq!(s["brokers"].as_array().map(Vec::len), Some(3));
}

/// Two clusters pointed at one bucket prefix: the second is refused at
/// start with one line naming the cluster that owns the prefix, before it
/// writes anything there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_cluster_on_the_same_bucket_prefix_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bucket = tmp.path().join("bucket");
    std::fs::create_dir_all(&bucket).expect("bucket");
    let url = format!("file://{}", bucket.display());
    let first = BrokerProcess::start_in(&tmp.path().join("a"), &[("TIDELOG_OBJECT_STORE", &url)]);
    let owner = status(&first).expect("status")["cluster_id"]
        .as_str()
        .expect("cluster id")
        .to_string();
    let second =
        BrokerProcess::try_start_in(&tmp.path().join("b"), &[("TIDELOG_OBJECT_STORE", &url)]);
    let log = match second {
        Ok(_) => panic!("a second cluster on the same prefix must be refused"),
        Err(log) => log,
    };
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains(&owner) && errors[0].contains("another cluster"),
        "{log}"
    );
    // The first one's claim is untouched, and its cluster.json names its
    // cluster.
    let claim = std::fs::read_to_string(bucket.join("owner.json")).expect("owner.json");
    assert!(claim.contains(&owner), "{claim}");
    let snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bucket.join("cluster.json")).expect("cluster.json"))
            .expect("json");
    assert_eq!(snapshot["cluster_id"].as_str(), Some(owner.as_str()));
}

/// Without a majority the quorum refuses metadata changes with a retriable
/// QUORUM_UNAVAILABLE; produce and fetch on the surviving broker's
/// partition go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_majority_metadata_changes_are_refused_and_data_flows_on() {
    let mut brokers = BrokerProcess::start_cluster(3, &[]);
    create(&brokers[0], "onward", 3).await.expect("create");
    let placed = leaders(&brokers[0], "onward").await;
    let survivor = 1u32;
    let p = placed
        .iter()
        .position(|&l| l == survivor)
        .expect("a partition on broker 1") as u32;
    brokers[1].kill9();
    brokers[2].kill9();
    let started = Instant::now();
    let refused = create(&brokers[0], "no-majority", 1)
        .await
        .expect_err("no majority");
    assert_eq!(
        refused.code(),
        tonic::Code::Unavailable,
        "{}",
        refused.message()
    );
    assert_eq!(
        error_reason(&refused),
        "QUORUM_UNAVAILABLE",
        "{}",
        refused.message()
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let offset = produce(&brokers[0].addr, "onward", p, b"still here")
        .await
        .expect("produce on a healthy partition");
    let mut c = ConsumerClient::connect(format!("http://{}", brokers[0].addr))
        .await
        .expect("connect");
    let r = c
        .fetch(FetchRequest {
            topic: "onward".into(),
            partition: p,
            offset,
            ..FetchRequest::default()
        })
        .await
        .expect("fetch on a healthy partition")
        .into_inner();
    assert_eq!(r.high_watermark, offset + 1);
}
