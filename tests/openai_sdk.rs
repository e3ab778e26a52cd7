//! `/v1` with the official `openai` Python SDK as the client, unchanged (tests/openai_sdk.py):
//! models, streamed and non-streamed completions (sync and async) whose text is the simulated
//! miner's answer, `extra_body={"sn1": {"k": 3}}` honoured (its audit row asked 3 miners), and
//! the SDK's own exceptions for an unknown model, a wrong key, `n=2` and a stream that fails
//! part-way, and `RateLimitError` for a managed key past its requests per minute — against a real
//! `sn1-gateway standalone --simnet` process and against the distributed path (api, worker,
//! NATS, Postgres).
//!
//! The SDK is installed from PyPI into `target/tmp/openai-venv` on first use; the test is
//! skipped (saying so) only when Python cannot make a virtualenv with pip.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The venv's python with `openai` installed, or `None` when no venv with pip can be made.
fn sdk_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openai-venv");
    let python = venv.join("bin/python");
    let has_sdk = |python: &Path| {
        Command::new(python)
            .args(["-c", "import openai"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.exists() && has_sdk(&python) {
        return Some(python);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    if !made || !venv.join("bin/pip").exists() {
        return None;
    }
    let out = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "openai>=1"])
        .output()
        .expect("run pip");
    assert!(
        out.status.success(),
        "pip install openai failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        has_sdk(&python),
        "openai is not importable after pip install"
    );
    Some(python)
}

const ADMIN: &str = "admin-key-of-the-openai-sdk-test";

/// A managed key allowed 2 requests per minute, made through `/admin/keys` at `base`.
async fn limited_key(base: &str) -> String {
    let made: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/admin/keys"))
        .header("authorization", format!("Bearer {ADMIN}"))
        .json(&serde_json::json!({"name": "sdk test", "rpm": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    made["key"].as_str().expect("a key").to_string()
}

/// Runs tests/openai_sdk.py against `base`; its stdout (it printed `ALL OK`).
async fn run_script(python: &Path, base: &str, key: &str, logs: impl Fn() -> String) -> String {
    let limited = limited_key(base).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_sdk.py");
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .args([base, key, &limited])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "the SDK script failed:\n{stdout}\n{stderr}\n---- gateway log\n{}",
        logs()
    );
    stdout
}

/// The request the script sent with `extra_body={"sn1": {"k": 3}}`.
fn k3_request(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("K3_REQUEST_ID="))
        .expect("the script names the k=3 request")
        .trim()
        .to_string()
}

/// Polls `row` until the audit row is there; asserts it asked 3 miners.
async fn asked_three<F, Fut>(id: &str, row: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<(i64, i64)>>,
{
    let start = Instant::now();
    loop {
        if let Some((k, miners)) = row().await {
            assert_eq!((k, miners), (3, 3), "request {id}");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no audit row for {id}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const K_AND_MINERS: &str = "SELECT CAST(k AS BIGINT), (SELECT count(*) FROM miner_responses m \
     WHERE m.request_id = c.request_id) FROM completions c WHERE request_id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_sdk_works_unchanged_on_standalone() {
    let Some(python) = sdk_python() else {
        eprintln!(
            "SKIPPED: python3 cannot make a virtualenv with pip (install python3-venv) to get the openai SDK"
        );
        return;
    };
    let port = free_port();
    let data = tempfile::tempdir().unwrap();
    let key = format!("key-{}", unique_prefix("openai"));
    let proc = Proc::start(
        &unique_prefix("openai-standalone"),
        &["standalone", "--simnet", "--simnet-misbehaving", "0"],
        &[
            ("PORT", port.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("EXPECTED_ACCESS_KEY", key.clone()),
            ("ADMIN_KEY", ADMIN.into()),
            ("DATA_DIR", data.path().display().to_string()),
            (
                "BT_WALLET_PATH",
                data.path().join("no-wallets").display().to_string(),
            ),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ok(&format!("{base}/readyz"), Duration::from_secs(30)).await;
    let stdout = run_script(&python, &base, &key, || proc.log_text()).await;

    // `extra_body={"sn1": {"k": 3}}` reached the worker: its audit row asked 3 miners.
    let id = k3_request(&stdout);
    let db = data.path().join("sn1.sqlite3");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    asked_three(&id, || async {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{K_AND_MINERS} = ?")))
            .bind(&id)
            .fetch_optional(&pool)
            .await
            .unwrap()
    })
    .await;
}

/// The same script against the distributed path: api and worker over NATS, keys and audit in
/// Postgres.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_sdk_works_unchanged_on_the_distributed_path() {
    let Some(python) = sdk_python() else {
        eprintln!("SKIPPED: python3 cannot make a virtualenv with pip");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Answers take ~250 ms (the script's failing stream has a 100 ms timeout).
    let configs = (0..4)
        .map(|uid| {
            let mut c = sn1_simnet::miner::SimMinerConfig::for_uid(uid).unwrap();
            c.reply.chunk_delay = Duration::from_millis(40);
            c
        })
        .collect();
    let fleet = sn1_simnet::fleet::Fleet::start_with(configs).await.unwrap();
    let metagraph = write_metagraph(&fleet, dir.path());
    let db = migrated_database("openai").await;
    let stack = Stack::start_with(
        "openai",
        &metagraph,
        1,
        1,
        &[("DATABASE_URL", db.clone())],
        &[("DATABASE_URL", db.clone()), ("ADMIN_KEY", ADMIN.into())],
    )
    .await;
    let stdout = run_script(&python, &stack.api(0, ""), &stack.key, || stack.logs()).await;
    let id = uuid::Uuid::parse_str(&k3_request(&stdout)).unwrap();
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    asked_three(&id.to_string(), || async {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{K_AND_MINERS} = $1")))
            .bind(id)
            .fetch_optional(&pool)
            .await
            .unwrap()
    })
    .await;
}
