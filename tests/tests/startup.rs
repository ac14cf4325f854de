//! Start-up refuses bad data directories, buckets and configs with one
//! clear line, and creates nothing while doing so.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tidelog_e2e::{free_port, tidelog_bin, tidelog_cmd, BrokerProcess};

/// Runs `tidelog serve` on `data_dir` (plus `extra` args, through `sh -c`
/// with `prefix` when given) and expects it to exit non-zero within 60 s;
/// returns its stderr.
fn serve_fails(data_dir: &Path, extra: &[&str], env: &[(&str, &str)], prefix: &str) -> String {
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{}", free_port()),
        "--http-listen".into(),
        format!("127.0.0.1:{}", free_port()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut cmd = if prefix.is_empty() {
        let mut c = Command::new(tidelog_bin());
        c.args(&args);
        c
    } else {
        // `exec "$0" "$@"` keeps the arguments intact after the prefix.
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("{prefix}; exec \"$0\" \"$@\""))
            .arg(tidelog_bin())
            .args(&args);
        c
    };
    let mut child = cmd
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tidelog serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(!status.success(), "serve should fail");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "serve did not exit: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The error is printed once, mentions `needle`, and nothing but
/// informational log lines follows it (a library may still log its own
/// orderly close, e.g. the cache's; no warning or error comes after).
fn ends_with_one_error(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    let errors: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    let at = errors[0];
    assert!(
        lines[at + 1..].iter().all(|l| l.contains(" INFO")),
        "only informational lines after the error: {stderr}"
    );
    assert!(
        lines[at].contains(needle),
        "{} should mention {needle}",
        lines[at]
    );
}

/// A client command failed with one stderr line mentioning `needle`.
fn fails_with_one_line(out: &std::process::Output, needle: &str) {
    assert!(!out.status.success(), "should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{stderr} should mention {needle}");
}

#[test]
fn a_missing_file_bucket_is_refused_not_created() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bucket = tmp.path().join("no").join("bucket");
    let url = format!("file://{}", bucket.display());
    let err = serve_fails(&tmp.path().join("data"), &["--object-store", &url], &[], "");
    ends_with_one_error(&err, "does not exist");
    assert!(!bucket.exists(), "bucket directory created");

    let restored = tmp.path().join("restored");
    let out = tidelog_cmd(
        &[
            "restore",
            "--object-store",
            &url,
            "--data-dir",
            restored.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    fails_with_one_line(&out, "does not exist");
    assert!(!bucket.exists(), "bucket directory created by restore");
}

#[test]
fn a_data_dir_that_is_a_file_is_refused_before_creating_anything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::write(&data, b"not a directory").expect("write file");
    let err = serve_fails(&data, &[], &[], "");
    ends_with_one_error(&err, "not a directory");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read tmp")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("data")], "{left:?}");
}

#[test]
fn contradictory_and_absurd_configs_are_refused_with_one_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (env, needle) in [
        (
            vec![
                ("TIDELOG_LOG_RETENTION_BYTES", "1000"),
                ("TIDELOG_LOG_LOCAL_RETENTION_BYTES", "2000"),
            ],
            "local.retention.bytes",
        ),
        (
            vec![("TIDELOG_LOG_INDEX_INTERVAL_BYTES", "0")],
            "log_index_interval_bytes",
        ),
        (
            vec![("TIDELOG_GROUP_HEARTBEAT_INTERVAL_MS", "99999999999")],
            "group_heartbeat_interval_ms",
        ),
        (
            vec![("TIDELOG_RETENTION_CHECK_INTERVAL_MS", "99999999999")],
            "retention_check_interval_ms",
        ),
    ] {
        let data = tmp.path().join("data");
        let err = serve_fails(&data, &[], &env, "");
        assert_eq!(err.trim_end().lines().count(), 1, "{env:?}: {err}");
        ends_with_one_error(&err, needle);
        assert!(!data.exists(), "{env:?} created the data directory");
    }

    let broker = BrokerProcess::start();
    let twice = broker.cli(&[
        "topic",
        "create",
        "t",
        "--config",
        "retention.ms=1000",
        "--config",
        "retention.ms=2000",
    ]);
    fails_with_one_line(&twice, "more than once");

    let local = broker.cli(&[
        "topic",
        "create",
        "t",
        "--config",
        "retention.bytes=1000",
        "--config",
        "local.retention.bytes=5000",
    ]);
    fails_with_one_line(&local, "local.retention.bytes");

    let created = broker.cli(&["topic", "create", "t", "--config", "retention.bytes=1000"]);
    assert!(created.status.success(), "{created:?}");
    let alter = broker.cli(&[
        "topic",
        "alter",
        "t",
        "--config",
        "local.retention.bytes=5000",
    ]);
    assert!(!alter.status.success(), "alter to a contradiction");
    let alter_twice = broker.cli(&[
        "topic",
        "alter",
        "t",
        "--config",
        "segment.ms=1000",
        "--config",
        "segment.ms=2000",
    ]);
    assert!(!alter_twice.status.success(), "alter with a key twice");
}

#[test]
fn running_out_of_file_descriptors_says_what_to_raise() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mut broker = BrokerProcess::start_in(&data, &[]);
    let out = broker.cli(&["topic", "create", "wide", "--partitions", "300"]);
    assert!(out.status.success(), "{out:?}");
    assert!(broker.terminate(), "clean stop");
    let err = serve_fails(&data, &[], &[], "ulimit -n 128");
    ends_with_one_error(&err, "ulimit -n");
    assert!(err.contains("LimitNOFILE"), "{err}");
    assert!(err.contains("soft 128"), "{err}");
}

#[test]
fn an_unreachable_s3_endpoint_fails_with_one_line() {
    // A listener that accepts and never answers: requests time out.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accept = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(16) {
            held.push(conn);
        }
    });
    let endpoint = format!("http://127.0.0.1:{port}");
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = serve_fails(
        &tmp.path().join("data"),
        &["--object-store", "s3://bucket/prefix"],
        &[
            ("AWS_ENDPOINT", &endpoint),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ],
        "",
    );
    ends_with_one_error(&err, "object store");
    assert!(!err.contains("disconnected"), "{err}");
    drop(accept);
}
