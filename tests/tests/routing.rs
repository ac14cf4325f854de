//! Cluster-aware clients against a real broker: bootstrapping from a list
//! whose first address is dead, and routing partition and group traffic to
//! the addresses `Metadata` and `FindCoordinator` name rather than the one
//! the client bootstrapped through.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use tidelog::{
    Client, ConsumerRecord, ErrorCode, GroupConsumerConfig, NewTopic, OffsetReset, ProducerRecord,
    SeekTo, TopicPartition,
};
use tidelog_e2e::{free_port, tidelog_bin, BrokerProcess, TcpProxy};

/// An address nothing listens on: a port just released.
fn dead_address() -> String {
    format!("127.0.0.1:{}", free_port())
}

async fn read_n(consumer: &mut tidelog::Consumer, n: usize) -> Vec<ConsumerRecord> {
    let mut out = Vec::with_capacity(n);
    let mut stream = std::pin::pin!(consumer.stream());
    while out.len() < n {
        let r = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("records arrive within 30s")
            .expect("stream open")
            .expect("record");
        out.push(r);
    }
    out
}

/// Produces `values` to partition `p` and reads them back from its start.
async fn round_trip(client: &Client, topic: &str, p: u32, values: &[&str]) {
    let producer = client.producer();
    let mut offsets = Vec::new();
    for v in values {
        let meta = producer
            .send(ProducerRecord::new(topic, v.to_string()).partition(p))
            .await
            .expect("send");
        assert_eq!(meta.partition, p);
        offsets.push(meta.offset);
    }
    let mut consumer = client.consumer();
    let tp = TopicPartition::new(topic, p);
    consumer.assign([tp.clone()]);
    consumer
        .seek(&tp, SeekTo::Offset(offsets[0]))
        .await
        .expect("seek");
    let got = read_n(&mut consumer, values.len()).await;
    let got: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(got, values);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_bootstrap_address_is_skipped() {
    let broker = BrokerProcess::start();
    let dead = dead_address();
    let client = Client::connect(format!("{dead},{}", broker.addr))
        .await
        .expect("the second address answers");
    client
        .admin()
        .create_topic(NewTopic::new("boot", 2))
        .await
        .expect("create");
    round_trip(&client, "boot", 1, &["a", "b", "c"]).await;

    // The list form of the config means the same.
    let config = tidelog::ClientConfig::with_brokers([dead.as_str(), broker.addr.as_str()]);
    let client = Client::connect_with(config).await.expect("connect");
    round_trip(&client, "boot", 0, &["d"]).await;

    // When nothing answers, the error names every address tried.
    let other = dead_address();
    let err = Client::connect(format!("{dead},{other}"))
        .await
        .expect_err("nothing listens");
    assert_eq!(err.code(), ErrorCode::ConnectionError);
    let text = err.to_string();
    assert!(
        text.contains(&dead) && text.contains(&other),
        "names both: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_and_group_traffic_follow_metadata_not_the_bootstrap_address() {
    let broker = BrokerProcess::start();
    let port: u16 = broker
        .addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("broker port");
    let proxy = TcpProxy::start(port);
    let client = Client::connect(format!("127.0.0.1:{}", proxy.port))
        .await
        .expect("connect through the proxy");
    client
        .admin()
        .create_topic(NewTopic::new("routed", 2))
        .await
        .expect("create");
    // Learns the leaders (the broker's advertised address) on first use.
    round_trip(&client, "routed", 0, &["before"]).await;

    // The bootstrap address goes away; the broker itself does not.
    proxy.set_down(true);
    round_trip(&client, "routed", 0, &["after-0"]).await;
    round_trip(&client, "routed", 1, &["after-1", "again"]).await;
    let producer = client.producer();
    let keyed = producer
        .send(ProducerRecord::new("routed", "keyed").key("k"))
        .await
        .expect("keyed send picks a partition from cached metadata");
    assert!(keyed.partition < 2);

    // Calls for any broker move to one the metadata named.
    let topics = client.admin().list_topics().await.expect("list topics");
    assert!(topics.iter().any(|t| t.name == "routed"), "{topics:?}");

    // A group's calls go to the coordinator FindCoordinator names.
    let mut config = GroupConsumerConfig::new("routed-group");
    config.auto_offset_reset = OffsetReset::Earliest;
    config.auto_commit = false;
    let mut member = client.group_consumer(config);
    member.subscribe(&["routed"]).await.expect("join");
    let mut seen = 0;
    while seen < 5 {
        let r = tokio::time::timeout(Duration::from_secs(30), member.next_record())
            .await
            .expect("records within 30s")
            .expect("member open")
            .expect("record");
        assert!(r.partition < 2);
        seen += 1;
    }
    member.commit().await.expect("commit");
    let described = client
        .admin()
        .describe_group("routed-group")
        .await
        .expect("describe");
    assert_eq!(described.members.len(), 1);
    assert!(
        described
            .partitions
            .iter()
            .any(|p| p.committed_offset.is_some()),
        "{described:?}"
    );
    member.close().await.expect("leave");
}

/// Runs the CLI with `TIDELOG_BROKER` set to `broker_env`.
fn cli(args: &[&str], broker_env: &str, stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(tidelog_bin())
        .args(args)
        .env("TIDELOG_BROKER", broker_env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tidelog");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).expect("write stdin");
    }
    child.wait_with_output().expect("tidelog output")
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\nstdout: {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_cli_takes_a_broker_list_with_a_dead_first_address() {
    let broker = BrokerProcess::start();
    let list = format!("{},{}", dead_address(), broker.addr);
    let nowhere = dead_address();
    // `--broker` (over an environment that points nowhere)...
    ok(&cli(
        &["topic", "create", "clilist", "--broker", &list],
        &nowhere,
        b"",
    ));
    ok(&cli(
        &["produce", "clilist", "--broker", &list],
        &nowhere,
        b"one\ntwo\n",
    ));
    // ...and `TIDELOG_BROKER` take the same list.
    let out = ok(&cli(
        &["consume", "clilist", "--from-beginning", "-n", "2"],
        &list,
        b"",
    ));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["one", "two"]);

    let out = cli(
        &["topic", "list"],
        &format!("{nowhere},{}", dead_address()),
        b"",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect") && err.contains(&nowhere),
        "{err}"
    );
}
