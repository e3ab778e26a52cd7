//! What the benchmarks share: latency samples and percentiles, CPU and RSS of processes from
//! /proc, spawning the gateway's processes (killed when dropped), free ports, readiness waits.
//!
//! Each bench uses a part of it, so dead code is allowed here.

#![allow(dead_code, reason = "shared by several benches; each uses a part")]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The api key every gateway of the benchmarks expects.
pub const KEY: &str = "bench-key";

/// One request's time to first chunk and total time.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub first: Duration,
    pub total: Duration,
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// TTFC p50, TTFC p99, total p50, total p99.
pub fn summarize(samples: &[Sample]) -> [Duration; 4] {
    let mut first: Vec<_> = samples.iter().map(|s| s.first).collect();
    let mut total: Vec<_> = samples.iter().map(|s| s.total).collect();
    first.sort();
    total.sort();
    [
        percentile(&first, 0.5),
        percentile(&first, 0.99),
        percentile(&total, 0.5),
        percentile(&total, 0.99),
    ]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn signed_ms(a: Duration, b: Duration) -> f64 {
    ms(a) - ms(b)
}

/// The median of some figures (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The fields of /proc/pid/stat after the command name (field 3 is index 0).
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    after.split_whitespace().map(str::to_owned).collect()
}

/// CPU seconds (user + system, all threads) a process has used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let fields = stat_fields(pid);
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of /proc/pid/stat (utime, stime), counted after the ')' .
    (ticks(11) + ticks(12)) / 100.0
}

/// The process and all its live descendants.
pub fn process_tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            // Field 4 (ppid) is index 1 after the ')'.
            if let Some(ppid) = stat_fields(pid).get(1).and_then(|p| p.parse().ok()) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

/// CPU seconds used so far by these processes and their descendants.
pub fn tree_cpu_seconds(roots: &[u32]) -> f64 {
    roots
        .iter()
        .flat_map(|&r| process_tree(r))
        .map(cpu_seconds)
        .sum()
}

/// Resident memory of one process, KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of these processes and their descendants, KiB.
pub fn tree_rss_kib(roots: &[u32]) -> u64 {
    roots
        .iter()
        .flat_map(|&r| process_tree(r))
        .map(rss_kib)
        .sum()
}

/// The pid of a running child.
pub fn pid(child: &Child) -> u32 {
    child.id().expect("the process has exited")
}

/// Starts `bin` with its output in `logs/<name>.log`; killed when the [`Child`] is dropped.
pub fn spawn_bin(
    bin: &Path,
    name: &str,
    args: &[&str],
    env: &[(&str, String)],
    logs: &Path,
) -> Child {
    let log = std::fs::File::create(logs.join(format!("{name}.log"))).expect("log file");
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
}

/// Waits until `url` answers 200. A process of `watch` (name, child) that exits meanwhile
/// fails the wait with the end of its log (`logs/<name>.log`).
pub async fn wait_ok(url: &str, watch: &mut [(&str, &mut Child)], logs: &Path) {
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(r) = client.get(url).send().await
            && r.status() == 200
        {
            return;
        }
        for (name, child) in watch.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(logs.join(format!("{name}.log")));
                let log = log.unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!("{name} exited ({status}):\n{}", tail.join("\n"));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never became ready");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One build's api and worker on their own NATS prefix, both killed when this is dropped.
pub struct Sn1Gateway {
    pub label: String,
    /// `http://127.0.0.1:<port>/chat`
    pub url: String,
    /// The API key its requests send ([`KEY`], or a managed key).
    pub key: String,
    pub api: Child,
    pub worker: Child,
}

impl Sn1Gateway {
    /// Starts `bin`'s worker (ephemeral hotkey, miners from `mg`, plus `worker_env`) and api
    /// (expecting [`KEY`]) on NATS at `nats`, and waits until both are ready.
    pub async fn start(
        label: &str,
        bin: &Path,
        nats: &str,
        mg: &Path,
        logs: &Path,
        worker_env: &[(&str, String)],
    ) -> Self {
        Self::start_with(label, bin, (nats, mg, logs), worker_env, &[]).await
    }

    /// [`Sn1Gateway::start`] with extra environment for the api too.
    pub async fn start_with(
        label: &str,
        bin: &Path,
        (nats, mg, logs): (&str, &Path, &Path),
        worker_env: &[(&str, String)],
        api_env: &[(&str, String)],
    ) -> Self {
        let prefix = format!("bench{:08x}", rand::random::<u32>());
        let tag = label.replace(' ', "-");
        let ops = free_port();
        let mut env = vec![
            ("NATS_URL", nats.to_string()),
            ("NATS_PREFIX", prefix.clone()),
            ("OPS_PORT", ops.to_string()),
            ("METAGRAPH_FILE", mg.display().to_string()),
        ];
        env.extend(worker_env.iter().cloned());
        let (worker_name, api_name) = (format!("worker-{tag}"), format!("api-{tag}"));
        let mut worker = spawn_bin(
            bin,
            &worker_name,
            &["worker", "--wallet.ephemeral"],
            &env,
            logs,
        );
        let port = free_port();
        let mut env = vec![
            ("NATS_URL", nats.to_string()),
            ("NATS_PREFIX", prefix),
            ("PORT", port.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("EXPECTED_ACCESS_KEY", KEY.to_string()),
            // Newer builds' api serves /metrics on an ops port of its own.
            ("OPS_PORT", free_port().to_string()),
            // Keys the ids of API keys in the audit log (newer builds require it).
            ("KEY_ID_SECRET", "5e".repeat(32)),
        ];
        env.extend(api_env.iter().cloned());
        let mut api = spawn_bin(bin, &api_name, &["api"], &env, logs);
        let mut watch = [
            (worker_name.as_str(), &mut worker),
            (api_name.as_str(), &mut api),
        ];
        wait_ok(&format!("http://127.0.0.1:{ops}/readyz"), &mut watch, logs).await;
        wait_ok(&format!("http://127.0.0.1:{port}/readyz"), &mut watch, logs).await;
        Sn1Gateway {
            label: label.to_owned(),
            url: format!("http://127.0.0.1:{port}/chat"),
            key: KEY.into(),
            api,
            worker,
        }
    }

    /// The api's and worker's pids.
    pub fn pids(&self) -> Vec<u32> {
        vec![pid(&self.api), pid(&self.worker)]
    }

    /// CPU seconds the api and worker processes have used so far.
    pub fn cpu_seconds(&self) -> f64 {
        self.pids().into_iter().map(cpu_seconds).sum()
    }
}
