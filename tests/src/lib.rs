//! Harness for end-to-end tests: runs the real `tidelog` binary on free
//! loopback ports with its own data directory, and drives it through the
//! Rust SDK and the CLI.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the `tidelog` binary: `$TIDELOG_BIN`, or next to the test
/// executable's `deps/` directory (where `cargo build` puts it).
pub fn tidelog_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TIDELOG_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join("tidelog");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build --workspace` first (tests/run-all.sh does)",
        bin.display()
    );
    bin
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A broker process.
pub struct BrokerProcess {
    child: Option<Child>,
    /// gRPC address.
    pub addr: String,
    /// HTTP address.
    pub http: String,
    /// Data directory.
    pub data_dir: PathBuf,
    env: Vec<(String, String)>,
    _tmp: Option<tempfile::TempDir>,
    /// The shared directory of a cluster's brokers (kept while any lives).
    _cluster_dir: Option<std::sync::Arc<tempfile::TempDir>>,
    log_path: PathBuf,
    /// Set once the broker was ready on its ports.
    started: bool,
}

impl BrokerProcess {
    /// Starts a broker with a fresh data directory.
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// Starts a broker with extra `TIDELOG_*` environment settings.
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("data");
        let mut b = Self::new_in(data_dir, env, Some(tmp));
        b.spawn();
        b
    }

    /// Starts a broker on a given data directory (kept after the test).
    pub fn start_in(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut b = Self::new_in(data_dir.to_path_buf(), env, None);
        b.spawn();
        b
    }

    /// Tries to start a broker on `data_dir`; `Err(log)` when it exits
    /// before becoming ready.
    pub fn try_start_in(data_dir: &Path, env: &[(&str, &str)]) -> Result<Self, String> {
        let mut b = Self::new_in(data_dir.to_path_buf(), env, None);
        b.spawn_child();
        match b.try_wait_ready() {
            Ok(()) => Ok(b),
            Err(log) => Err(log),
        }
    }

    /// Starts `n` brokers on loopback that form one cluster (node ids
    /// 1..=n, all voters), each with its own data directory, and waits
    /// until every one is ready. `extra` env goes to every broker.
    pub fn start_cluster(n: u32, extra: &[(&str, &str)]) -> Vec<BrokerProcess> {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let voters = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let tmp = std::sync::Arc::new(tmp);
        let mut brokers: Vec<BrokerProcess> = (0..n)
            .map(|i| {
                let mut env: Vec<(String, String)> = extra
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                env.push(("TIDELOG_NODE_ID".into(), (i + 1).to_string()));
                env.push((
                    "TIDELOG_CLUSTER_LISTEN".into(),
                    format!("127.0.0.1:{}", cluster_ports[i as usize]),
                ));
                env.push(("TIDELOG_VOTERS".into(), voters.clone()));
                let env_refs: Vec<(&str, &str)> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let dir = tmp.path().join(format!("broker-{}", i + 1));
                let mut b = Self::new_in(dir, &env_refs, None);
                b._cluster_dir = Some(std::sync::Arc::clone(&tmp));
                b
            })
            .collect();
        // All at once: none is ready before a majority runs.
        for b in &mut brokers {
            b.spawn_child();
        }
        for b in &mut brokers {
            b.wait_ready();
            b.started = true;
        }
        brokers
    }

    /// Starts a broker (stopped with `kill9`/`terminate`) without waiting
    /// until it is ready (a cluster member whose peers are down).
    pub fn start_again_in_background(&mut self) {
        assert!(self.child.is_none(), "broker still running");
        self.spawn_child();
    }

    /// Sends a signal (`STOP`, `CONT`, ...) to the running broker.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    /// A broker's environment value (e.g. `TIDELOG_NODE_ID`).
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn new_in(data_dir: PathBuf, env: &[(&str, &str)], tmp: Option<tempfile::TempDir>) -> Self {
        let log_path = data_dir.with_extension("broker.log");
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent).expect("log directory");
        }
        BrokerProcess {
            child: None,
            addr: format!("127.0.0.1:{}", free_port()),
            http: format!("127.0.0.1:{}", free_port()),
            data_dir,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _tmp: tmp,
            _cluster_dir: None,
            log_path,
            started: false,
        }
    }

    fn spawn(&mut self) {
        // Ports come from `free_port`, which releases them before the
        // broker binds: a test running in parallel can take one first. On
        // the first start nobody knows the ports yet, so pick new ones and
        // try again; a restart must keep its addresses.
        for attempt in 0.. {
            self.spawn_child();
            match self.try_wait_ready() {
                Ok(()) => break,
                Err(e) if !self.started && attempt < 3 && e.contains("in use") => {
                    self.addr = format!("127.0.0.1:{}", free_port());
                    self.http = format!("127.0.0.1:{}", free_port());
                }
                Err(e) => panic!("{e}"),
            }
        }
        self.started = true;
    }

    fn spawn_child(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("broker log file");
        let child = Command::new(tidelog_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(&self.addr)
            .arg("--http-listen")
            .arg(&self.http)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tidelog serve");
        self.child = Some(child);
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&mut self) {
        if let Err(e) = self.try_wait_ready() {
            panic!("{e}");
        }
    }

    fn try_wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "broker exited early with {status}; log:\n{}",
                        self.log()
                    ));
                }
            }
            if self
                .http_get("/readyz")
                .is_some_and(|(code, _)| code == 200)
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("broker not ready within 30s; log:\n{}", self.log()))
    }

    /// A metric's value from `/metrics` (first sample whose name and labels
    /// start with `name`), or `None`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let body = self.http_get("/metrics")?.1;
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// The broker's log output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A plain HTTP/1.1 GET against the HTTP listener: (status, body).
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(&self.http).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.http
        )
        .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        let code = buf.split_whitespace().nth(1)?.parse().ok()?;
        let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((code, body))
    }

    /// Kills the broker with SIGKILL (no chance to flush or clean up).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Starts the broker again on the same ports and data directory.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Starts a stopped broker.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "broker still running");
        self.spawn();
    }

    /// A connected SDK client.
    pub async fn client(&self) -> tidelog::Client {
        tidelog::Client::connect(self.addr.clone())
            .await
            .expect("connect to broker")
    }

    /// Runs a `tidelog` client command against this broker.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_stdin(args, b"")
    }

    /// Runs a `tidelog` client command; kills it after `timeout` (then
    /// `None`): for commands that must end on their own, such as a
    /// consumer that meets a non-retriable error.
    pub fn cli_timeout(&self, args: &[&str], timeout: Duration) -> Option<Output> {
        let mut child = Command::new(tidelog_bin())
            .args(args)
            .env("TIDELOG_BROKER", &self.addr)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tidelog");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return Some(child.wait_with_output().expect("tidelog output"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Runs a `tidelog` client command with the given stdin.
    pub fn cli_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new(tidelog_bin())
            .args(args)
            .env("TIDELOG_BROKER", &self.addr)
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
}

/// Runs the `tidelog` binary with `args` and extra environment.
pub fn tidelog_cmd(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(tidelog_bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run tidelog")
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Path of `moto_server` (an S3-compatible server from PyPI): `$MOTO_SERVER`,
/// else `moto_server` on `PATH`. Panics with instructions when missing.
pub fn moto_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "MOTO_SERVER={} does not exist; run tests/run-all.sh, which installs moto[server] into target/venv-test",
            p.display()
        );
        return p;
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("moto_server");
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "moto_server not found: set MOTO_SERVER or run tests/run-all.sh (it installs moto[server] into target/venv-test)"
    );
}

/// A `moto_server` (S3-compatible) process on a free loopback port, with a
/// TCP proxy in front so tests can cut the network without losing moto's
/// in-memory state.
pub struct S3Server {
    child: Option<Child>,
    /// Port of moto itself.
    pub moto_port: u16,
    /// The proxy clients use.
    pub proxy: TcpProxy,
    _tmp: tempfile::TempDir,
}

impl S3Server {
    /// Starts moto and the proxy, and creates `bucket`.
    pub fn start(bucket: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let moto_port = free_port();
        let log = std::fs::File::create(tmp.path().join("moto.log")).expect("moto log");
        let child = Command::new(moto_server_bin())
            .arg("-H")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(moto_port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn moto_server");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", moto_port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let proxy = TcpProxy::start(moto_port);
        let s = S3Server {
            child: Some(child),
            moto_port,
            proxy,
            _tmp: tmp,
        };
        let (code, body) = http_request(moto_port, "PUT", &format!("/{bucket}"));
        assert!(code == 200, "create bucket: {code} {body}");
        s
    }

    /// Endpoint URL brokers use (through the proxy).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy.port)
    }

    /// `AWS_*` variables pointing a broker at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ENDPOINT".into(), self.endpoint()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    /// Objects under `prefix` in `bucket` (keys), from a ListObjectsV2.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (code, body) = http_request(
            self.moto_port,
            "GET",
            &format!("/{bucket}?list-type=2&max-keys=100000&prefix={prefix}"),
        );
        assert_eq!(code, 200, "{body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }
}

impl S3Server {
    /// Deletes an object behind the brokers' backs (straight to moto).
    pub fn delete(&self, bucket: &str, key: &str) {
        let (code, body) = http_request(self.moto_port, "DELETE", &format!("/{bucket}/{key}"));
        assert!(code == 204 || code == 200, "delete {key}: {code} {body}");
    }

    /// Deletes every object under `prefix`; returns how many.
    pub fn delete_all(&self, bucket: &str, prefix: &str) -> usize {
        let keys = self.list(bucket, prefix);
        for k in &keys {
            self.delete(bucket, k);
        }
        keys.len()
    }

    /// An object's body (text).
    pub fn get(&self, bucket: &str, key: &str) -> String {
        let (code, body) = http_request(self.moto_port, "GET", &format!("/{bucket}/{key}"));
        assert_eq!(code, 200, "get {key}: {body}");
        body
    }

    /// Writes an object (straight to moto).
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let (code, text) =
            http_request_with_body(self.moto_port, "PUT", &format!("/{bucket}/{key}"), body);
        assert_eq!(code, 200, "put {key}: {text}");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A plain HTTP/1.1 request to 127.0.0.1:port: (status, body).
pub fn http_request(port: u16, method: &str, path: &str) -> (u16, String) {
    http_request_with_body(port, method, path, b"")
}

/// A plain HTTP/1.1 request with a body to 127.0.0.1:port: (status, body).
pub fn http_request_with_body(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    // moto answers object requests without credentials with 403; it does
    // not check the signature, so a well-formed header is enough.
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("write request");
    s.write_all(body).expect("write request body");
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// A loopback TCP proxy that can be switched off (connections refused by
/// closing them at once, live ones cut) and on again.
pub struct TcpProxy {
    /// Port clients connect to.
    pub port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl TcpProxy {
    /// Starts forwarding a free port to `target`.
    pub fn start(target: u16) -> Self {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::<TcpStream>::new()));
        let (d, c) = (down.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if d.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                if let Ok(mut list) = c.lock() {
                    if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
                        list.push(a);
                        list.push(b);
                    }
                }
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        TcpProxy { port, down, conns }
    }

    /// Cuts the network: live connections closed, new ones refused.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
        if down {
            if let Ok(mut list) = self.conns.lock() {
                for s in list.drain(..) {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
            }
        }
    }
}

/// The stable reason (`ErrorReason` name) a broker status carries, empty
/// when none: what a client written from the proto checks.
pub fn error_reason(s: &tonic::Status) -> String {
    s.metadata()
        .get(tidelog_proto::ERROR_REASON_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A fresh broker with one topic created, and a client connected to it.
pub async fn broker_with_topic(topic: &str, partitions: u32) -> (BrokerProcess, tidelog::Client) {
    let broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(tidelog::NewTopic::new(topic, partitions))
        .await
        .expect("create topic");
    (broker, client)
}

/// `ListOffsets` over raw gRPC: `(offset, timestamp_ms)`.
pub async fn list_offsets_raw(
    addr: &str,
    topic: &str,
    partition: u32,
    spec: tidelog_proto::v1::offset_spec::Spec,
) -> Result<(i64, i64), tonic::Status> {
    let mut c =
        tidelog_proto::v1::consumer_client::ConsumerClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
    c.list_offsets(tidelog_proto::v1::ListOffsetsRequest {
        topic: topic.into(),
        partition,
        spec: Some(tidelog_proto::v1::OffsetSpec { spec: Some(spec) }),
    })
    .await
    .map(|r| {
        let r = r.into_inner();
        (r.offset, r.timestamp_ms)
    })
}

/// Creates `topic` with 8 KiB segments and writes `value-00000` …
/// `value-01999` to it in small batches, so the records spread over several
/// segments however fast they are queued (one 40 KB batch would fill a
/// single segment).
pub async fn fill_small_segments(client: &tidelog::Client, topic: &str, config: &[(&str, &str)]) {
    let mut new = tidelog::NewTopic::new(topic, 1).config("segment.bytes", "8192");
    for (k, v) in config {
        new = new.config(*k, *v);
    }
    client.admin().create_topic(new).await.expect("create");
    let producer = client.producer_with(tidelog::ProducerConfig {
        batch_bytes: 1024,
        ..tidelog::ProducerConfig::default()
    });
    for i in 0..2000 {
        producer
            .enqueue(tidelog::ProducerRecord::new(topic, format!("value-{i:05}")))
            .await
            .expect("enqueue");
    }
    producer.flush().await.expect("flush");
}

/// The base offsets of a partition directory's segments, in order.
pub fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .expect("partition dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

/// Byte positions where the batches of a segment file start (walking the
/// length fields, as a reader of `proto/FORMAT.md` would).
pub fn batch_positions(segment: &Path) -> Vec<u64> {
    let bytes = std::fs::read(segment).expect("segment");
    let mut out = vec![];
    let mut pos = 0usize;
    while pos + 12 <= bytes.len() {
        out.push(pos as u64);
        let mut len = [0u8; 4];
        len.copy_from_slice(&bytes[pos + 8..pos + 12]);
        pos += 12 + u32::from_le_bytes(len) as usize;
    }
    out
}

/// XORs `mask` into the byte at `at` of `path`.
pub fn flip_byte(path: &Path, at: u64, mask: u8) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open for damage");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).expect("read byte");
    f.write_all_at(&[b[0] ^ mask], at).expect("write byte");
}
