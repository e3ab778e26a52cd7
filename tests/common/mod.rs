//! Test harness: starts the real `sn1-gateway` binary's roles as processes, the way the README
//! says, against the real NATS JetStream on 127.0.0.1:4222, each test under its own
//! `NATS_PREFIX` so tests never see each other's jobs.

#![allow(
    dead_code,
    reason = "each test crate uses a different part of these helpers"
)]

use futures::StreamExt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sn1-gateway")
}

/// The public TEST wallets copied into the repo.
pub fn wallets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bittensor/tests/data/wallets")
}

/// The NATS server the tests use.
pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A fresh prefix for streams and subjects.
pub fn unique_prefix(tag: &str) -> String {
    format!("t{}{:08x}", tag, rand::random::<u32>())
}

/// A port for a child process to listen on. Taken below Linux's ephemeral range
/// (32768–60999), which is where the OS picks ports for `bind(0)` and outgoing connections: a
/// port from there could be taken by the time the child binds it (a simulated miner, a client
/// socket). Within one test binary each call gets a new port; the start is spread by process id.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 500) as u16 * 20,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_700, "ran out of test ports");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Where process logs go (kept for debugging a failed test).
pub fn log_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("process-logs");
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

/// The `KEY_ID_SECRET` every process gets unless a test sets its own (the api refuses to start
/// without one).
pub const TEST_KEY_ID_SECRET: &str = "test-key-id-secret-0123456789";

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `sn1-gateway <args>` with `env`, logging to a file named after `name`.
    pub fn start(name: &str, args: &[&str], env: &[(&str, String)]) -> Proc {
        let log = log_dir().join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env_remove("EXPECTED_ACCESS_KEY")
            .env("KEY_ID_SECRET", TEST_KEY_ID_SECRET)
            // No fixed ops port (the api's default 9102 would clash between tests); a test that
            // scrapes one gives it a free port.
            .env("OPS_PORT", "0")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn sn1-gateway");
        Proc { child, log }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

/// Waits until `url` answers 200.
pub async fn wait_ok(url: &str, within: Duration) {
    let client = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{url} not ready within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// api and worker processes on one prefix.
pub struct Stack {
    pub prefix: String,
    pub api_ports: Vec<u16>,
    /// The api processes' (or standalone's) ops ports: `/metrics`.
    pub api_ops_ports: Vec<u16>,
    pub worker_ops_ports: Vec<u16>,
    pub procs: Vec<Proc>,
    pub key: String,
}

/// Which way the gateway runs: the API suite runs against both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// api and worker processes over NATS JetStream.
    Distributed,
    /// One `sn1-gateway standalone` process (in-process queue, SQLite).
    Standalone,
}

impl Stack {
    /// One api and one worker (distributed), or one standalone process, over `metagraph`.
    pub async fn start_on(
        backend: Backend,
        tag: &str,
        metagraph: &Path,
        worker_env: &[(&str, String)],
    ) -> Stack {
        match backend {
            Backend::Distributed => Stack::start(tag, metagraph, 1, 1, worker_env).await,
            Backend::Standalone => Stack::standalone(tag, metagraph).await,
        }
    }

    /// One `sn1-gateway standalone` process over `metagraph`, as the README runs it.
    pub async fn standalone(tag: &str, metagraph: &Path) -> Stack {
        let prefix = unique_prefix(tag);
        let key = format!("key-{prefix}");
        let port = free_port();
        let ops = free_port();
        let data = log_dir().join(format!("{prefix}-data"));
        let env = vec![
            ("PORT", port.to_string()),
            ("OPS_PORT", ops.to_string()),
            ("EXPECTED_ACCESS_KEY", key.clone()),
            ("METAGRAPH_FILE", metagraph.display().to_string()),
            ("DATA_DIR", data.display().to_string()),
            ("BT_WALLET_PATH", wallets().display().to_string()),
            ("BT_WALLET_NAME", "sn1-validator".into()),
            ("BT_WALLET_HOTKEY", "default".into()),
        ];
        let proc = Proc::start(&format!("{prefix}-standalone"), &["standalone"], &env);
        wait_ok(
            &format!("http://127.0.0.1:{port}/readyz"),
            Duration::from_secs(30),
        )
        .await;
        Stack {
            prefix,
            api_ports: vec![port],
            api_ops_ports: vec![ops],
            worker_ops_ports: Vec::new(),
            procs: vec![proc],
            key,
        }
    }

    /// Starts `apis` api processes and `workers` workers over the metagraph file `metagraph`.
    pub async fn start(
        tag: &str,
        metagraph: &Path,
        apis: usize,
        workers: usize,
        worker_env: &[(&str, String)],
    ) -> Stack {
        Stack::start_with(tag, metagraph, apis, workers, worker_env, &[]).await
    }

    /// [`Stack::start`] with extra environment for the api processes too.
    pub async fn start_with(
        tag: &str,
        metagraph: &Path,
        apis: usize,
        workers: usize,
        worker_env: &[(&str, String)],
        api_env: &[(&str, String)],
    ) -> Stack {
        remove_stale_test_streams().await;
        let prefix = unique_prefix(tag);
        let key = format!("key-{prefix}");
        let mut procs = Vec::new();
        let mut worker_ops_ports = Vec::new();
        for i in 0..workers {
            let ops = free_port();
            let mut env = vec![
                ("NATS_URL", nats_url()),
                ("NATS_PREFIX", prefix.clone()),
                ("OPS_PORT", ops.to_string()),
                ("METAGRAPH_FILE", metagraph.display().to_string()),
                ("BT_WALLET_PATH", wallets().display().to_string()),
                ("BT_WALLET_NAME", "sn1-validator".into()),
                ("BT_WALLET_HOTKEY", "default".into()),
                // JetStream reserves the audit stream's whole max_bytes: keep tests small.
                ("AUDIT_STREAM_MAX_BYTES", (64u64 << 20).to_string()),
            ];
            env.extend(worker_env.iter().cloned());
            procs.push(Proc::start(
                &format!("{prefix}-worker{i}"),
                &["worker"],
                &env,
            ));
            worker_ops_ports.push(ops);
        }
        let mut api_ports = Vec::new();
        let mut api_ops_ports = Vec::new();
        for i in 0..apis {
            let port = free_port();
            let ops = free_port();
            api_ops_ports.push(ops);
            let mut env = vec![
                ("NATS_URL", nats_url()),
                ("NATS_PREFIX", prefix.clone()),
                ("PORT", port.to_string()),
                ("OPS_PORT", ops.to_string()),
                ("HOST", "127.0.0.1".into()),
                ("EXPECTED_ACCESS_KEY", key.clone()),
            ];
            env.extend(api_env.iter().cloned());
            procs.push(Proc::start(&format!("{prefix}-api{i}"), &["api"], &env));
            api_ports.push(port);
        }
        for port in &worker_ops_ports {
            wait_ok(
                &format!("http://127.0.0.1:{port}/readyz"),
                Duration::from_secs(30),
            )
            .await;
        }
        for port in &api_ports {
            wait_ok(
                &format!("http://127.0.0.1:{port}/readyz"),
                Duration::from_secs(30),
            )
            .await;
        }
        Stack {
            prefix,
            api_ports,
            api_ops_ports,
            worker_ops_ports,
            procs,
            key,
        }
    }

    /// URL of api process `i`.
    pub fn api(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_ports[i])
    }

    /// URL on api process `i`'s ops port (`/metrics`).
    pub fn api_ops(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_ops_ports[i])
    }

    /// The processes' logs, for assertion messages.
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("==== {}\n{}", p.log.display(), p.log_text()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A streamed answer as the client saw it.
#[derive(Debug)]
pub struct Streamed {
    pub status: u16,
    pub request_id: Option<String>,
    pub content_type: String,
    pub events: Vec<Value>,
    pub keep_alives: usize,
    pub elapsed: Duration,
    pub first_event_at: Option<Duration>,
    /// Bytes of the body.
    pub bytes: usize,
}

/// POSTs `body` to `url` with `key` and reads the NDJSON stream to its end.
pub async fn post_ndjson(url: &str, key: &str, body: &Value) -> Streamed {
    let start = Instant::now();
    let response = reqwest::Client::new()
        .post(url)
        .header("api_key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut stream = response.bytes_stream();
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let mut keep_alives = 0;
    let mut first_event_at = None;
    let mut bytes = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("body chunk");
        bytes += chunk.len();
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let line = std::str::from_utf8(&line[..line.len() - 1]).expect("utf-8 line");
            if line.trim().is_empty() {
                keep_alives += 1;
                continue;
            }
            first_event_at.get_or_insert_with(|| start.elapsed());
            events.push(
                serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}")),
            );
        }
    }
    if !buf.is_empty() {
        let text = String::from_utf8_lossy(&buf).to_string();
        if status == 200 {
            panic!("stream ended with a partial line: {text:?}");
        }
        if let Ok(v) = serde_json::from_str(&text) {
            events.push(v);
        }
    }
    Streamed {
        status,
        request_id,
        content_type,
        events,
        keep_alives,
        elapsed: start.elapsed(),
        first_event_at,
        bytes,
    }
}

/// The seed README's request body (`k: 5`).
pub fn seed_request() -> Value {
    serde_json::json!({
        "k": 5,
        "timeout": 15,
        "roles": ["user"],
        "messages": ["Tell me a happy story about a rabbit and a turtle that meet on a budget cruise around Northern Ireland"]
    })
}

/// Checks every event against API.md and returns the concatenated text and selected uid.
pub fn check_stream_events(events: &[Value]) -> (String, i64) {
    assert!(!events.is_empty(), "no events");
    let mut text = String::new();
    let mut uid = None;
    for (i, e) in events.iter().enumerate() {
        let obj = e.as_object().expect("event is an object");
        assert_eq!(
            obj["sequence_number"].as_u64(),
            Some(i as u64 + 1),
            "sequence in {e}"
        );
        let ts = obj["timestamp"].as_str().expect("timestamp");
        chrono_like_rfc3339(ts);
        let last = i + 1 == events.len();
        if obj.contains_key("error") {
            panic!("unexpected StreamError {e}");
        }
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                "accumulated_chunks",
                "accumulated_chunks_timings",
                "delta",
                "finish_reason",
                "selected_uid",
                "sequence_number",
                "timestamp"
            ],
            "StreamChunk fields"
        );
        let delta = obj["delta"].as_str().expect("delta");
        let this_uid = obj["selected_uid"].as_i64().expect("selected_uid");
        assert_eq!(
            *uid.get_or_insert(this_uid),
            this_uid,
            "selected_uid changes"
        );
        if last {
            assert_eq!(obj["finish_reason"], "finished", "last event {e}");
            assert_eq!(delta, "", "last delta is empty");
        } else {
            assert!(
                obj["finish_reason"].is_null(),
                "finish_reason mid-stream {e}"
            );
            assert!(!delta.is_empty(), "empty delta mid-stream");
            text.push_str(delta);
        }
        let acc: Vec<&str> = obj["accumulated_chunks"]
            .as_array()
            .expect("accumulated_chunks")
            .iter()
            .map(|v| v.as_str().expect("chunk string"))
            .collect();
        assert_eq!(acc.concat(), text, "accumulated_chunks == deltas so far");
        let timings = obj["accumulated_chunks_timings"]
            .as_array()
            .expect("timings");
        assert_eq!(timings.len(), acc.len());
        let ts: Vec<f64> = timings
            .iter()
            .map(|t| t.as_f64().expect("float timing"))
            .collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "timings increase");
    }
    (text, uid.unwrap_or(-1))
}

fn chrono_like_rfc3339(ts: &str) {
    // e.g. 2026-11-25T13:30:54.123456Z
    let b = ts.as_bytes();
    assert!(
        ts.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && ts.ends_with('Z'),
        "timestamp {ts:?} is not RFC 3339 UTC"
    );
}

/// Writes a metagraph file for `fleet` into a temp dir.
pub fn write_metagraph(fleet: &sn1_simnet::fleet::Fleet, dir: &Path) -> PathBuf {
    let path = dir.join("metagraph.json");
    fleet
        .metagraph()
        .save_atomically(&path)
        .expect("metagraph file");
    path
}

/// `n` well-behaved simulated miners (uids 0..n) and their metagraph file in `dir`.
pub async fn simple_fleet(n: u16, dir: &Path) -> (sn1_simnet::fleet::Fleet, PathBuf) {
    let configs = (0..n)
        .map(|uid| {
            sn1_simnet::miner::SimMinerConfig::new(uid, sn1_simnet::miner::sim_hotkey(uid).unwrap())
        })
        .collect();
    let fleet = sn1_simnet::fleet::Fleet::start_with(configs).await.unwrap();
    let metagraph = write_metagraph(&fleet, dir);
    (fleet, metagraph)
}

/// A fresh database on the test Postgres, migrated; its URL.
pub async fn migrated_database(tag: &str) -> String {
    let url = sn1_contracts::store::testing::fresh_database(tag)
        .await
        .unwrap();
    let store = sn1_contracts::store::Store::postgres(&url, 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    url
}

/// A TCP proxy the test owns, to cut a process off from a server (never stop the shared one)
/// in one of three ways: connections reset ([`TcpProxy::cut`]), refused
/// ([`TcpProxy::refuse`]: nothing listens on its port) or never answered ([`TcpProxy::hang`]).
pub struct TcpProxy {
    pub addr: std::net::SocketAddr,
    target: String,
    /// 0: forward, 1: reset, 2: accept and say nothing.
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    listening: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
}

impl TcpProxy {
    /// Forwards 127.0.0.1:<random> to `target`.
    pub async fn start(target: &str) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy bind");
        let proxy = TcpProxy {
            addr: listener.local_addr().expect("proxy addr"),
            target: target.to_string(),
            mode: std::sync::Arc::default(),
            conns: std::sync::Arc::default(),
            listening: std::sync::Mutex::new(None),
        };
        proxy.listen(listener);
        proxy
    }

    fn listen(&self, listener: tokio::net::TcpListener) {
        use std::sync::atomic::Ordering;
        let (mode, conns, target) = (self.mode.clone(), self.conns.clone(), self.target.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let (mode, target) = (mode.load(Ordering::SeqCst), target.clone());
                let task = tokio::spawn(async move {
                    match mode {
                        0 => {
                            if let Ok(mut out) = tokio::net::TcpStream::connect(&target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                            }
                        }
                        1 => drop(inbound),
                        _ => std::future::pending::<()>().await,
                    }
                });
                conns.lock().unwrap().push(task.abort_handle());
            }
        });
        *self.listening.lock().unwrap() = Some(task.abort_handle());
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Drops every open connection and resets new ones.
    pub fn cut(&self) {
        self.set(1);
    }

    /// Drops every open connection and stops listening: new ones are refused.
    pub async fn refuse(&self) {
        self.set(1);
        if let Some(task) = self.listening.lock().unwrap().take() {
            task.abort();
        }
        // The listener closes when the aborted task is dropped.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the proxy on {} still accepts connections", self.addr);
    }

    /// Drops every open connection; new ones are accepted and never answered.
    pub async fn hang(&self) {
        self.set(2);
        self.relisten().await;
    }

    /// Forwards again (listening again if it was refusing).
    pub async fn restore(&self) {
        self.set(0);
        self.relisten().await;
    }

    async fn relisten(&self) {
        if self.listening.lock().unwrap().is_some() {
            return;
        }
        // The port was closed by `refuse`: the same one again (tokio sets SO_REUSEADDR).
        for _ in 0..50 {
            if let Ok(listener) = tokio::net::TcpListener::bind(self.addr).await {
                return self.listen(listener);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the proxy could not listen on {} again", self.addr);
    }
}

/// JetStream keeps streams across server restarts and reserves each one's `max_bytes`, so test
/// runs must not pile them up on the machine's NATS: streams of earlier test runs (prefix `t…`,
/// `bench…`, `abench…`) older than ten minutes are deleted. Recent ones may belong to tests
/// running right now and are left alone.
pub async fn remove_stale_test_streams() {
    use futures::StreamExt;
    let Ok(client) = async_nats::connect(nats_url()).await else {
        return;
    };
    let js = async_nats::jetstream::new(client);
    let mut names = js.stream_names();
    let mut stale = Vec::new();
    while let Some(Ok(name)) = names.next().await {
        let test_like =
            (name.starts_with('T') || name.starts_with("BENCH") || name.starts_with("ABENCH"))
                && (name.ends_with("_JOBS") || name.ends_with("_AUDIT"));
        if test_like {
            stale.push(name);
        }
    }
    let cutoff = std::time::SystemTime::now() - Duration::from_secs(600);
    for name in stale {
        let Ok(mut stream) = js.get_stream(&name).await else {
            continue;
        };
        let Ok(info) = stream.info().await else {
            continue;
        };
        let created = std::time::UNIX_EPOCH
            + Duration::from_secs(info.created.unix_timestamp().max(0) as u64);
        if created < cutoff {
            let _ = js.delete_stream(&name).await;
        }
    }
}

// ---- Fault tests: a NATS server of the test's own, signals, and clients that survive a cut.

/// The `nats-server` binary (`NATS_SERVER`, or the Debian package's path, or `$PATH`).
pub fn nats_server_bin() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| {
        if Path::new("/usr/sbin/nats-server").exists() {
            "/usr/sbin/nats-server".into()
        } else {
            "nats-server".into()
        }
    })
}

/// A `nats-server -js` the test owns, on its own port and store directory, so the test may
/// kill and restart it (never the shared one on 4222). Killed when dropped.
pub struct OwnedNats {
    pub port: u16,
    pub store: tempfile::TempDir,
    pub log: PathBuf,
    /// A configuration file (`-c`) and the `user:password` the harness connects as.
    config: Option<(PathBuf, String)>,
    child: Option<std::process::Child>,
}

impl OwnedNats {
    /// Starts a server and waits until JetStream answers (at most 15 s).
    pub async fn start(tag: &str) -> OwnedNats {
        OwnedNats::start_configured(tag, None).await
    }

    /// Starts a server with the configuration file `config` (users and their permissions);
    /// the harness connects as `admin` (`user:password`, a user of that file).
    pub async fn start_with_config(tag: &str, config: PathBuf, admin: &str) -> OwnedNats {
        OwnedNats::start_configured(tag, Some((config, admin.to_string()))).await
    }

    async fn start_configured(tag: &str, config: Option<(PathBuf, String)>) -> OwnedNats {
        let mut nats = OwnedNats {
            port: free_port(),
            store: tempfile::tempdir().expect("nats store dir"),
            log: log_dir().join(format!("{tag}-{:08x}-nats.log", rand::random::<u32>())),
            config,
            child: None,
        };
        nats.start_again().await;
        nats
    }

    /// `nats://127.0.0.1:<port>` (as the harness's user, with a configuration).
    pub fn url(&self) -> String {
        match &self.config {
            Some((_, admin)) => self.url_as(admin),
            None => format!("nats://127.0.0.1:{}", self.port),
        }
    }

    /// `nats://<userinfo>@127.0.0.1:<port>`.
    pub fn url_as(&self, userinfo: &str) -> String {
        format!("nats://{userinfo}@127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and store directory; returns when JetStream
    /// answers (at most 15 s), with the instant it did.
    pub async fn start_again(&mut self) -> Instant {
        assert!(self.child.is_none(), "nats-server already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("nats log");
        let child = std::process::Command::new(nats_server_bin())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .args(
                self.config
                    .iter()
                    .flat_map(|(c, _)| [Path::new("-c"), c.as_path()]),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("nats log"))
            .stderr(log)
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if self.jetstream_answers().await {
                return Instant::now();
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "own nats-server on {} not ready: {}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// True when the server answers a JetStream account-info request.
    async fn jetstream_answers(&self) -> bool {
        let attempt = async {
            // async-nats takes no credentials from a URL.
            let options = match self.config.as_ref().and_then(|(_, a)| a.split_once(':')) {
                Some((user, pass)) => {
                    async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
                }
                None => async_nats::ConnectOptions::new(),
            };
            let client = options
                .connect(format!("127.0.0.1:{}", self.port))
                .await
                .ok()?;
            let reply = client.request("$JS.API.INFO", "".into()).await.ok()?;
            let info: Value = serde_json::from_slice(&reply.payload).ok()?;
            Some(info.get("error").is_none() && info.get("memory").is_some())
        };
        tokio::time::timeout(Duration::from_secs(1), attempt)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    }

    /// SIGKILLs the server and reaps it; returns the instant it was killed.
    pub fn kill(&mut self) -> Instant {
        let mut child = self.child.take().expect("nats-server not running");
        let at = Instant::now();
        let _ = child.kill();
        let _ = child.wait();
        at
    }
}

impl Drop for OwnedNats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `signal` (`KILL`, `TERM`, `STOP`, `CONT`, …) to `pid`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Resident memory of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The sum of the samples of `name` whose labels contain `label` ("" for all) on a
/// Prometheus `/metrics` page; `None` when the page is unreachable or has no such sample.
pub async fn metric(url: &str, name: &str, label: &str) -> Option<f64> {
    let text = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// How a stream observed by [`observe_ndjson`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The body ended cleanly (EOF).
    Eof,
    /// The connection broke mid-body.
    Broken(String),
    /// No response at all (connection refused or reset before the headers).
    NoResponse(String),
    /// Still open after the time the caller allowed.
    GaveUp,
}

/// One request as a client saw it, with when each event arrived.
#[derive(Debug)]
pub struct Observed {
    pub status: u16,
    pub request_id: Option<String>,
    pub sent_at: Instant,
    pub events: Vec<(Instant, Value)>,
    pub end: StreamEnd,
    pub ended_at: Instant,
}

impl Observed {
    /// The concatenated deltas.
    pub fn text(&self) -> String {
        self.events
            .iter()
            .filter_map(|(_, e)| e["delta"].as_str())
            .collect()
    }

    /// When the first non-empty delta arrived.
    pub fn first_chunk_at(&self) -> Option<Instant> {
        self.events
            .iter()
            .find(|(_, e)| e["delta"].as_str().is_some_and(|d| !d.is_empty()))
            .map(|(at, _)| *at)
    }

    /// The last event and when it arrived.
    pub fn last(&self) -> Option<&(Instant, Value)> {
        self.events.last()
    }
}

/// POSTs `body` to `url` and reads the NDJSON answer like a client that tolerates a broken
/// connection: never panics on a cut, gives up after `give_up` (a test must end by itself).
/// A non-200 answer's JSON body becomes the one event.
pub async fn observe_ndjson(url: &str, key: &str, body: &Value, give_up: Duration) -> Observed {
    let sent_at = Instant::now();
    let until = tokio::time::Instant::now() + give_up;
    let mut out = Observed {
        status: 0,
        request_id: None,
        sent_at,
        events: Vec::new(),
        end: StreamEnd::GaveUp,
        ended_at: sent_at,
    };
    let request = reqwest::Client::new()
        .post(url)
        .header("api_key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send();
    let response = match tokio::time::timeout_at(until, request).await {
        Err(_) => {
            out.ended_at = Instant::now();
            return out;
        }
        Ok(Err(e)) => {
            out.end = StreamEnd::NoResponse(e.to_string());
            out.ended_at = Instant::now();
            return out;
        }
        Ok(Ok(r)) => r,
    };
    out.status = response.status().as_u16();
    out.request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut stream = response.bytes_stream();
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout_at(until, stream.next()).await {
            Err(_) => {
                out.end = StreamEnd::GaveUp;
                break;
            }
            Ok(None) => {
                out.end = StreamEnd::Eof;
                break;
            }
            Ok(Some(Err(e))) => {
                out.end = StreamEnd::Broken(e.to_string());
                break;
            }
            Ok(Some(Ok(bytes))) => {
                let at = Instant::now();
                buf.extend_from_slice(&bytes);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let line = String::from_utf8_lossy(&line[..line.len() - 1]).to_string();
                    if line.trim().is_empty() {
                        continue;
                    }
                    let value = serde_json::from_str(&line)
                        .unwrap_or_else(|_| Value::String(format!("unparsable line: {line}")));
                    out.events.push((at, value));
                }
            }
        }
    }
    out.ended_at = Instant::now();
    if !buf.is_empty() {
        let text = String::from_utf8_lossy(&buf).to_string();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| Value::String(format!("partial line: {text}")));
        out.events.push((out.ended_at, value));
    }
    out
}

/// One gateway process of an [`OwnedStack`] and the port it serves on (the api's `PORT`, the
/// worker's `OPS_PORT`).
pub struct Role {
    pub proc: Proc,
    pub port: u16,
}

impl Role {
    /// Its process id (`None` once reaped).
    pub fn pid(&self) -> Option<u32> {
        self.proc.child.id()
    }

    /// Sends `signal` to it.
    pub fn signal(&self, signal: &str) {
        send_signal(self.pid().expect("process still running"), signal);
    }

    /// Waits at most `within` for it to exit.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(within, self.proc.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// api and worker processes over a NATS server the test owns, any of which the test may
/// signal, kill or add to while it runs.
pub struct OwnedStack {
    pub nats: OwnedNats,
    pub prefix: String,
    pub key: String,
    pub metagraph: PathBuf,
    pub worker_env: Vec<(String, String)>,
    pub api_env: Vec<(String, String)>,
    pub apis: Vec<Role>,
    pub workers: Vec<Role>,
}

fn borrowed(env: &[(String, String)]) -> Vec<(&str, String)> {
    env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()
}

impl OwnedStack {
    /// Its own NATS server, then `workers` workers and `apis` apis over `metagraph`, each
    /// ready.
    pub async fn start(
        tag: &str,
        metagraph: &Path,
        apis: usize,
        workers: usize,
        worker_env: &[(&str, String)],
        api_env: &[(&str, String)],
    ) -> OwnedStack {
        let nats = OwnedNats::start(tag).await;
        let prefix = unique_prefix(tag);
        OwnedStack::on(nats, prefix, metagraph, apis, workers, worker_env, api_env).await
    }

    /// [`OwnedStack::start`] on a NATS server already started and under `prefix` (e.g. a
    /// server with users whose permissions name the prefix: `worker_env` and `api_env` then
    /// carry each role's `NATS_URL`).
    pub async fn on(
        nats: OwnedNats,
        prefix: String,
        metagraph: &Path,
        apis: usize,
        workers: usize,
        worker_env: &[(&str, String)],
        api_env: &[(&str, String)],
    ) -> OwnedStack {
        let mut stack = OwnedStack {
            nats,
            key: format!("key-{prefix}"),
            prefix,
            metagraph: metagraph.to_path_buf(),
            worker_env: worker_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            api_env: api_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            apis: Vec::new(),
            workers: Vec::new(),
        };
        for _ in 0..workers {
            stack.add_worker().await;
        }
        for _ in 0..apis {
            stack.add_api().await;
        }
        stack
    }

    /// Starts one more worker and waits until it is ready; returns its index.
    pub async fn add_worker(&mut self) -> usize {
        let i = self.workers.len();
        let ops = free_port();
        let mut env = vec![
            ("NATS_URL", self.nats.url()),
            ("NATS_PREFIX", self.prefix.clone()),
            ("OPS_PORT", ops.to_string()),
            ("METAGRAPH_FILE", self.metagraph.display().to_string()),
            ("BT_WALLET_PATH", wallets().display().to_string()),
            ("BT_WALLET_NAME", "sn1-validator".into()),
            ("BT_WALLET_HOTKEY", "default".into()),
            ("AUDIT_STREAM_MAX_BYTES", (64u64 << 20).to_string()),
        ];
        env.extend(borrowed(&self.worker_env));
        let proc = Proc::start(&format!("{}-worker{i}", self.prefix), &["worker"], &env);
        wait_ok(
            &format!("http://127.0.0.1:{ops}/readyz"),
            Duration::from_secs(30),
        )
        .await;
        self.workers.push(Role { proc, port: ops });
        i
    }

    /// Starts one more api and waits until it is ready; returns its index.
    pub async fn add_api(&mut self) -> usize {
        let i = self.apis.len();
        let port = free_port();
        let mut env = vec![
            ("NATS_URL", self.nats.url()),
            ("NATS_PREFIX", self.prefix.clone()),
            ("PORT", port.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("EXPECTED_ACCESS_KEY", self.key.clone()),
        ];
        env.extend(borrowed(&self.api_env));
        let proc = Proc::start(&format!("{}-api{i}", self.prefix), &["api"], &env);
        wait_ok(
            &format!("http://127.0.0.1:{port}/readyz"),
            Duration::from_secs(30),
        )
        .await;
        self.apis.push(Role { proc, port });
        i
    }

    /// URL of api `i`.
    pub fn api(&self, i: usize, path: &str) -> String {
        self.apis[i].url(path)
    }

    /// Every process's log and the NATS server's, for assertion messages (the last
    /// `tail` lines of each).
    pub fn logs_tail(&self, tail: usize) -> String {
        let mut out = Vec::new();
        for p in self.workers.iter().chain(&self.apis).map(|r| &r.proc) {
            let text = p.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(tail);
            out.push(format!(
                "==== {}\n{}",
                p.log.display(),
                lines[from..].join("\n")
            ));
        }
        let nats = std::fs::read_to_string(&self.nats.log).unwrap_or_default();
        let lines: Vec<&str> = nats.lines().collect();
        let from = lines.len().saturating_sub(tail);
        out.push(format!(
            "==== {}\n{}",
            self.nats.log.display(),
            lines[from..].join("\n")
        ));
        out.join("\n")
    }
}
