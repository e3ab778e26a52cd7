//! `/v1` with the official `openai` Python SDK as the client, unchanged (tests/openai_sdk.py):
//! models, streamed and non-streamed completions (sync and async) whose text is the simulated
//! miner's answer, `extra_body={"sn1": {"k": 3}}` honoured (its audit row asked 3 miners), and
//! the SDK's own exceptions for an unknown model, a wrong key, `n=2` and a stream that fails
//! part-way — against a real `sn1-gateway standalone --simnet` process.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_sdk_works_unchanged() {
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
            ("DATA_DIR", data.path().display().to_string()),
            (
                "BT_WALLET_PATH",
                data.path().join("no-wallets").display().to_string(),
            ),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ok(&format!("{base}/readyz"), Duration::from_secs(30)).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_sdk.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&base)
        .arg(&key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "the SDK script failed:\n{stdout}\n{stderr}\n---- gateway log\n{}",
        proc.log_text()
    );

    // `extra_body={"sn1": {"k": 3}}` reached the worker: its audit row asked 3 miners.
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("K3_REQUEST_ID="))
        .expect("the script names the k=3 request")
        .trim()
        .to_string();
    let db = data.path().join("sn1.sqlite3");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT k, (SELECT count(*) FROM miner_responses m WHERE m.request_id = c.request_id) FROM completions c WHERE request_id = ?",
        )
        .bind(&id)
        .fetch_optional(&pool)
        .await
        .unwrap();
        if let Some((k, miners)) = row {
            assert_eq!((k, miners), (3, 3), "request {id}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no audit row for {id}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
