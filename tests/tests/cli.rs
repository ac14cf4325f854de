//! The `tidelog` command as scripts use it.

use tidelog_e2e::BrokerProcess;

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\nstdout: {}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails_with_one_line(out: &std::process::Output, needle: &str) {
    assert!(
        !out.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{err} should mention {needle}");
}

#[test]
fn topic_produce_consume_tour() {
    let broker = BrokerProcess::start();
    ok(&broker.cli(&[
        "topic",
        "create",
        "orders",
        "--partitions",
        "3",
        "--config",
        "retention.ms=3600000",
    ]));
    let list = ok(&broker.cli(&["topic", "list"]));
    assert!(list.contains("orders\t3"), "{list}");
    let d = ok(&broker.cli(&["topic", "describe", "orders"]));
    assert!(d.contains("retention.ms=3600000"), "{d}");
    assert!(d.contains("partitions: 3"), "{d}");

    let input = "alice:1\nbob:2\nalice:3\ncarol:4\n";
    ok(&broker.cli_with_stdin(
        &["produce", "orders", "--key-separator", ":"],
        input.as_bytes(),
    ));
    let out = ok(&broker.cli(&[
        "consume",
        "orders",
        "--from-beginning",
        "-n",
        "4",
        "--format",
        "kv",
    ]));
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["alice\t1", "alice\t3", "bob\t2", "carol\t4"]);
    // alice's records share a partition and keep their order.
    let json = ok(&broker.cli(&[
        "consume",
        "orders",
        "--from-beginning",
        "-n",
        "4",
        "--format",
        "json",
    ]));
    let recs: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let alice: Vec<_> = recs.iter().filter(|r| r["key"] == "alice").collect();
    assert_eq!(alice.len(), 2);
    assert_eq!(alice[0]["partition"], alice[1]["partition"]);
    assert_eq!(alice[0]["value"], "1");
    assert_eq!(alice[1]["value"], "3");

    // Pinned partition, offset and time starts.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before = chrono::Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(20));
    ok(&broker.cli_with_stdin(&["produce", "orders", "--partition", "2"], b"p2-a\np2-b\n"));
    let out = ok(&broker.cli(&[
        "consume",
        "orders",
        "--from-time",
        &before.to_rfc3339(),
        "--partition",
        "2",
        "-n",
        "2",
    ]));
    assert!(out.contains("p2-a") && out.contains("p2-b"), "{out}");

    ok(&broker.cli(&["topic", "alter", "orders", "--config", "retention.ms=60000"]));
    let d = ok(&broker.cli(&["topic", "describe", "orders"]));
    assert!(d.contains("retention.ms=60000"), "{d}");
    ok(&broker.cli(&["topic", "delete", "orders"]));
    let list = ok(&broker.cli(&["topic", "list"]));
    assert!(!list.contains("orders"), "{list}");
}

#[test]
fn cli_errors_are_one_plain_line() {
    let broker = BrokerProcess::start();
    fails_with_one_line(
        &broker.cli(&["topic", "describe", "missing"]),
        "unknown topic",
    );
    fails_with_one_line(
        &broker.cli(&["topic", "create", "bad name"]),
        "invalid topic name",
    );
    fails_with_one_line(
        &broker.cli(&["topic", "create", "t", "--config", "segment.bytes=1"]),
        "segment.bytes",
    );
    fails_with_one_line(
        &broker.cli(&["consume", "missing", "-n", "1"]),
        "unknown topic",
    );
    ok(&broker.cli(&["topic", "create", "t"]));
    fails_with_one_line(
        &broker.cli(&["consume", "t", "--from-time", "yesterday", "-n", "1"]),
        "RFC 3339",
    );
    fails_with_one_line(
        &broker.cli(&["consume", "t", "--partition", "5", "-n", "1"]),
        "partition",
    );
    let unreachable = std::process::Command::new(tidelog_e2e::tidelog_bin())
        .args(["topic", "list", "--broker", "127.0.0.1:1"])
        .output()
        .expect("run");
    fails_with_one_line(&unreachable, "cannot connect");
}

/// `--broker` goes before or after the subcommand (as `kcat -b` users
/// expect) and wins over `TIDELOG_BROKER`, which points at no broker here.
#[test]
fn broker_flag_before_or_after_the_subcommand() {
    let broker = BrokerProcess::start();
    ok(&broker.cli(&["topic", "create", "placed"]));
    let addr = broker.addr.as_str();
    let nobody = [("TIDELOG_BROKER", "127.0.0.1:1")];
    for args in [
        ["--broker", addr, "topic", "list"],
        ["topic", "--broker", addr, "list"],
        ["topic", "list", "--broker", addr],
    ] {
        let list = ok(&tidelog_e2e::tidelog_cmd(&args, &nobody));
        assert!(list.contains("placed\t1"), "{args:?}: {list}");
    }
    // The environment alone still works.
    let list = ok(&tidelog_e2e::tidelog_cmd(
        &["topic", "list"],
        &[("TIDELOG_BROKER", addr)],
    ));
    assert!(list.contains("placed\t1"), "{list}");
}

/// `tidelog --help` lists every command, `bench` included.
#[test]
fn help_lists_every_command() {
    let help = ok(&tidelog_e2e::tidelog_cmd(&["--help"], &[]));
    for command in [
        "serve", "topic", "group", "produce", "consume", "restore", "bench",
    ] {
        assert!(
            help.lines()
                .any(|l| l.split_whitespace().next() == Some(command)),
            "{command} missing from --help:\n{help}"
        );
    }
    assert!(help.contains("--broker"), "{help}");
    let bench = ok(&tidelog_e2e::tidelog_cmd(&["bench", "--help"], &[]));
    for mode in ["produce", "consume", "e2e", "catchup"] {
        assert!(bench.contains(mode), "{mode} missing:\n{bench}");
    }
}
