//! The gateways of the peer benchmark as processes: ours (api + worker over a nats-server of
//! its own), TensorZero's gateway (a Python process), and the mock called directly. Every
//! process is killed when its [`Target`] is dropped (also on a panic).

use crate::load::Api;
use crate::support::{
    KEY, Sn1Gateway, free_port, pid, process_tree, rss_kib, spawn_bin, tree_cpu_seconds,
};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// What a target is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Direct,
    Ours,
    TensorZero,
}

/// One column of the benchmark: how to ask it and which processes are its cost.
pub struct Target {
    pub label: String,
    pub kind: Kind,
    /// Asking one miner (k = 1).
    pub api: Api,
    pub client: reqwest::Client,
    /// The roots of its process tree (none for direct: the mock lives in the bench process).
    pub pids: Vec<u32>,
    procs: Vec<Child>,
    _stdio: Option<(ChildStdin, ChildStdout)>,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    pub fn direct(api_base: &str) -> Target {
        Target {
            label: "direct".into(),
            kind: Kind::Direct,
            api: Api::OpenAi {
                url: format!("{api_base}/chat/completions"),
                model: "mock".into(),
            },
            client: crate::load::client(),
            pids: Vec::new(),
            procs: Vec::new(),
            _stdio: None,
            _dir: None,
        }
    }

    /// `bin`'s api and worker (`--miner-protocol openai`, miners from `mg`) over a nats-server
    /// started for them alone.
    pub async fn ours(
        label: &str,
        bin: &Path,
        mg: &Path,
        logs: &Path,
        concurrency: usize,
    ) -> Target {
        let tag = label.replace(' ', "-");
        let dir = tempfile::tempdir().expect("nats dir");
        let port = free_port();
        let nats = spawn_bin(
            &nats_server(),
            &format!("nats-{tag}"),
            &[
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-js",
                "-sd",
                dir.path().to_str().expect("path"),
            ],
            &[],
            logs,
        );
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let worker_env = [
            ("MINER_PROTOCOL", "openai".to_string()),
            ("WORKER_CONCURRENCY", concurrency.to_string()),
        ];
        let nats_url = format!("nats://127.0.0.1:{port}");
        let gw = Sn1Gateway::start(label, bin, &nats_url, mg, logs, &worker_env).await;
        let pids = vec![pid(&gw.api), pid(&gw.worker), pid(&nats)];
        Target {
            label: label.into(),
            kind: Kind::Ours,
            api: Api::Sn1 {
                url: gw.url,
                key: KEY.into(),
                k: 1,
            },
            client: crate::load::client(),
            pids,
            procs: vec![gw.api, gw.worker, nats],
            _stdio: None,
            _dir: Some(dir),
        }
    }

    /// TensorZero's gateway in front of `api_base` and its version, or why it cannot run.
    pub async fn tensorzero(api_base: &str, logs: &Path) -> Result<(Target, String), String> {
        let python = python()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/tensorzero_gateway.py");
        let log = std::fs::File::create(logs.join("tensorzero.log")).expect("log file");
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--api-base", api_base, "--model", "mock"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", python.display()))?;
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(60), stdout.read_line(&mut line)).await;
        let started = line.trim().strip_prefix("TENSORZERO_BASE_URL ");
        let Some((base, version)) = started.and_then(|s| s.split_once(' ')) else {
            let log = std::fs::read_to_string(logs.join("tensorzero.log")).unwrap_or_default();
            return Err(format!("TensorZero did not start ({read:?}): {log}"));
        };
        let target = Target {
            label: "TensorZero".into(),
            kind: Kind::TensorZero,
            api: Api::OpenAi {
                url: format!("{base}/chat/completions"),
                model: "tensorzero::model_name::mock".into(),
            },
            client: crate::load::client(),
            pids: vec![pid(&child)],
            procs: vec![child],
            _stdio: Some((stdin, stdout.into_inner())),
            _dir: None,
        };
        Ok((target, version.to_owned()))
    }

    /// This target asking `k` miners at once (ours only; the others ask one).
    pub fn api_k(&self, k: usize) -> Api {
        match &self.api {
            Api::Sn1 { url, key, .. } => Api::Sn1 {
                url: url.clone(),
                key: key.clone(),
                k,
            },
            api => api.clone(),
        }
    }

    /// CPU seconds its process tree has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        tree_cpu_seconds(&self.pids)
    }

    /// The peak RSS of its process tree (KiB) from now until the sampler is stopped.
    pub fn sample_rss(&self) -> RssSampler {
        let pids: Vec<u32> = self.pids.iter().flat_map(|&p| process_tree(p)).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(pids.iter().map(|&p| rss_kib(p)).sum::<u64>());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        });
        RssSampler { stop, task }
    }

    /// Whether every process is still running.
    pub fn alive(&mut self) -> bool {
        self.procs
            .iter_mut()
            .all(|c| matches!(c.try_wait(), Ok(None)))
    }
}

/// A running peak-RSS sampler.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    /// The peak RSS seen, KiB.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("rss sampler")
    }
}

/// `NATS_SERVER`, else `nats-server` on the PATH, else the Debian package's.
fn nats_server() -> PathBuf {
    if let Ok(bin) = std::env::var("NATS_SERVER") {
        return bin.into();
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| "/usr/sbin/nats-server".into())
}

/// Where the benchmark writes (`target/peer-bench`).
pub fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("peer-bench")
}

/// `PEER_PYTHON`, else the venv scripts/peer-bench.sh makes (`target/peer-venv`), if it can
/// import tensorzero.
fn python() -> Result<PathBuf, String> {
    let python = std::env::var_os("PEER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            out_dir()
                .parent()
                .expect("target dir")
                .join("peer-venv/bin/python")
        });
    let ok = std::process::Command::new(&python)
        .args(["-c", "import tensorzero"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(python)
    } else {
        Err(format!(
            "{} cannot import tensorzero (run scripts/peer-bench.sh, which makes that venv, or set PEER_PYTHON)",
            python.display()
        ))
    }
}
