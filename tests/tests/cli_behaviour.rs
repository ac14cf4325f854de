//! The CLI while it runs: what `consume` prints and commits before it
//! exits, what `produce` sends when input goes bad, and what it says while
//! the broker refuses writes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidelog_e2e::{tidelog_bin, BrokerProcess};

type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

/// A running `tidelog` client command whose output lines are collected
/// (with the time each arrived) as it prints them.
struct Running {
    child: Child,
    stdout: Lines,
    stderr: Lines,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn collect(pipe: impl std::io::Read + Send + 'static, into: &Lines) -> std::thread::JoinHandle<()> {
    let into = Arc::clone(into);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            into.lock().expect("lines").push((Instant::now(), line));
        }
    })
}

impl Running {
    fn start(broker: &BrokerProcess, args: &[&str], stdin: Option<&[u8]>) -> Self {
        let mut child = Command::new(tidelog_bin())
            .args(args)
            .env("TIDELOG_BROKER", &broker.addr)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tidelog");
        if let (Some(data), Some(mut input)) = (stdin, child.stdin.take()) {
            input.write_all(data).expect("write stdin");
        }
        let stdout = Lines::default();
        let stderr = Lines::default();
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), &stdout),
            collect(child.stderr.take().expect("stderr"), &stderr),
        ];
        Running {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    fn stdout(&self) -> Vec<String> {
        let lines = self.stdout.lock().expect("lines");
        lines.iter().map(|(_, l)| l.clone()).collect()
    }

    fn stderr(&self) -> Vec<(Instant, String)> {
        self.stderr.lock().expect("lines").clone()
    }

    fn wait_stdout_lines(&self, n: usize, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.stdout().len() < n {
            assert!(
                Instant::now() < deadline,
                "{} of {n} lines printed within {secs}s: {:?}",
                self.stdout().len(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn sigterm(&mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(status.success());
    }

    /// Waits for `n` stdout lines, sends SIGTERM and expects a clean exit.
    fn sigterm_after_lines(mut self, n: usize) -> Self {
        self.wait_stdout_lines(n, 30);
        self.sigterm();
        let (status, _, done) = self.wait(30);
        assert!(status.success(), "{status}: {:?}", done.stderr());
        done
    }

    /// Waits for exit (at most `secs`) and for the output readers.
    fn wait(mut self, secs: u64) -> (std::process::ExitStatus, Instant, Self) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let at = Instant::now();
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return (status, at, self);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("did not exit within {secs}s: {:?}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn produce_lines(broker: &BrokerProcess, topic: &str, from: usize, to: usize) {
    let input: String = (from..to).map(|i| format!("v{i}\n")).collect();
    let out = broker.cli_with_stdin(&["produce", topic], input.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn create_topic(broker: &BrokerProcess, topic: &str) {
    let out = broker.cli(&["topic", "create", topic]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn committed(broker: &BrokerProcess, group: &str, topic: &str) -> Option<i64> {
    let client = broker.client().await;
    let g = client.admin().describe_group(group).await.ok()?;
    g.partitions
        .iter()
        .find(|p| p.topic == topic && p.partition == 0)
        .and_then(|p| p.committed_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_group_commits_while_following_and_on_sigterm() {
    let broker = BrokerProcess::start();
    create_topic(&broker, "follow");
    produce_lines(&broker, "follow", 0, 100);
    let mut consume = Running::start(&broker, &["consume", "follow", "--group", "g"], None);
    consume.wait_stdout_lines(100, 30);
    // Nothing more arrives: the periodic commit (5 s) must still happen.
    let deadline = Instant::now() + Duration::from_secs(15);
    while committed(&broker, "g", "follow").await != Some(100) {
        assert!(
            Instant::now() < deadline,
            "printed records not committed while following: {:?}",
            committed(&broker, "g", "follow").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(consume.running(), "still following");

    // SIGTERM right after new records were printed commits them too.
    produce_lines(&broker, "follow", 100, 150);
    let consume = consume.sigterm_after_lines(150);
    assert_eq!(committed(&broker, "g", "follow").await, Some(150));
    assert_eq!(consume.stdout().len(), 150);
}

#[test]
fn consume_count_prints_as_records_arrive_and_flushes_on_sigterm() {
    let broker = BrokerProcess::start();
    create_topic(&broker, "few");
    produce_lines(&broker, "few", 0, 3);
    let mut consume = Running::start(
        &broker,
        &["consume", "few", "--from-beginning", "-n", "10"],
        None,
    );
    // Fewer than 10 exist: the 3 are printed while it waits for more.
    consume.wait_stdout_lines(3, 20);
    assert!(consume.running(), "waits for the rest");
    produce_lines(&broker, "few", 3, 5);
    let consume = consume.sigterm_after_lines(5);
    assert_eq!(consume.stdout(), vec!["v0", "v1", "v2", "v3", "v4"]);

    // The same for a group member with a count.
    let group = Running::start(
        &broker,
        &["consume", "few", "--group", "n", "-n", "9"],
        None,
    )
    .sigterm_after_lines(5);
    assert_eq!(group.stdout().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_sends_lines_before_a_bad_one_and_binary_takes_bytes() {
    let broker = BrokerProcess::start();
    create_topic(&broker, "text");
    let out = broker.cli_with_stdin(&["produce", "text"], b"a\nb\n\xff\xfe\nc\n");
    assert!(!out.status.success(), "non-UTF-8 line must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("--binary"), "{stderr}");
    let read = broker.cli(&["consume", "text", "--from-beginning", "-n", "2"]);
    assert_eq!(String::from_utf8_lossy(&read.stdout), "a\nb\n");

    create_topic(&broker, "raw");
    let out = broker.cli_with_stdin(
        &["produce", "raw", "--binary", "--key-separator", ":"],
        b"k\x80:v\xff\r\nplain\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = broker.client().await;
    let mut consumer = client.consumer();
    let tp = tidelog::TopicPartition::new("raw", 0);
    consumer.assign(vec![tp.clone()]);
    consumer
        .seek(&tp, tidelog::SeekTo::Beginning)
        .await
        .expect("seek");
    let first = consumer.next_record().await.expect("record").expect("ok");
    assert_eq!(first.key.as_deref(), Some(&b"k\x80"[..]));
    assert_eq!(first.value.as_deref(), Some(&b"v\xff"[..]));
    let second = consumer.next_record().await.expect("record").expect("ok");
    assert_eq!(second.value.as_deref(), Some(&b"plain"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_reports_retries_as_they_happen_and_stops_at_the_timeout() {
    // Any log data passes a 1-byte high-water mark: once one record is in,
    // the broker answers produce with a retriable STORAGE_UNAVAILABLE, as
    // on a full disk.
    let broker = BrokerProcess::start_with_env(&[("TIDELOG_LOCAL_DISK_HIGH_WATER_BYTES", "1")]);
    create_topic(&broker, "full");
    produce_lines(&broker, "full", 0, 1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let started = Instant::now();
    let produce = Running::start(
        &broker,
        &["produce", "full", "--delivery-timeout-ms", "4000"],
        Some(b"x\ny\n"),
    );
    let (status, exited, produce) = produce.wait(60);
    assert!(!status.success(), "must fail on a full disk");
    let stderr = produce.stderr();
    let text: Vec<&str> = stderr.iter().map(|(_, l)| l.as_str()).collect();
    let warning = stderr
        .iter()
        .find(|(_, l)| l.contains("retrying"))
        .unwrap_or_else(|| panic!("no retry line: {text:?}"));
    // Shown while retrying, well before giving up.
    assert!(
        exited.duration_since(warning.0) >= Duration::from_secs(2),
        "retry line came late: {text:?}"
    );
    assert_eq!(
        text.iter().filter(|l| l.contains("retrying")).count(),
        1,
        "one retry line: {text:?}"
    );
    let last = text.last().copied().unwrap_or_default();
    assert!(last.starts_with("error:"), "{text:?}");
    assert!(
        last.to_lowercase().contains("disk") || last.to_lowercase().contains("storage"),
        "the underlying reason: {text:?}"
    );
    assert!(
        exited.duration_since(started) < Duration::from_secs(20),
        "stops after the delivery timeout"
    );
}
