//! The pages for people in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver by Python `selenium`: tests/web_browser.py) against
//! a real `sn1-gateway standalone --simnet`: the playground streams an answer into `#answer`
//! (seen growing over several steps), keeps the conversation and the key; `/status` shows one
//! table row per simulated serving miner, the counts and the three charts, sorts, fits a phone
//! and renders 1,000 rows quickly. Screenshots go to `target/web-screenshots/`.
//!
//! Also, without a browser: `GET /api/status` answers what the page shows, from the same
//! process's SQLite store, and the assets are served with their content types and CSP.
//!
//! Nothing here is skipped: without Chromium (`scripts/test.sh` installs it) or a Python that
//! can make a virtualenv the test fails, saying what to install. `selenium` is installed from
//! PyPI into `target/tmp/web-venv` on first use.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Simulated miners (none misbehaving): one table row each.
const MINERS: usize = 6;

/// The venv's python with `selenium`, made on first use.
fn selenium_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-venv");
    let python = venv.join("bin/python");
    let has = |python: &Path| {
        Command::new(python)
            .args(["-c", "import selenium"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.exists() && has(&python) {
        return python;
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        made && venv.join("bin/pip").exists(),
        "python3 cannot make a virtualenv with pip: install python3-venv"
    );
    let out = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "selenium>=4.11,<5"])
        .output()
        .expect("run pip");
    assert!(
        out.status.success() && has(&python),
        "pip install selenium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

/// Starts `standalone --simnet` with miners slow enough between chunks that a browser sees
/// the answer grow; returns the process, its base URL and key.
async fn gateway(data: &Path) -> (Proc, String, String) {
    let port = free_port();
    let key = format!("key-{}", unique_prefix("web"));
    let proc = Proc::start(
        &unique_prefix("web-standalone"),
        &[
            "standalone",
            "--simnet",
            "--simnet-miners",
            &MINERS.to_string(),
            "--simnet-misbehaving",
            "0",
            "--simnet-chunk-gap-ms",
            "200",
        ],
        &[
            ("PORT", port.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("EXPECTED_ACCESS_KEY", key.clone()),
            ("DATA_DIR", data.display().to_string()),
            (
                "BT_WALLET_PATH",
                data.join("no-wallets").display().to_string(),
            ),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ok(&format!("{base}/readyz"), Duration::from_secs(30)).await;
    (proc, base, key)
}

/// `/api/status` once the syncer stored its first snapshot.
async fn status_json(base: &str) -> Value {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        let response = client
            .get(format!("{base}/api/status"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        if body["miners"].as_array().is_some_and(|m| !m.is_empty()) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no snapshot in /api/status within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_in_a_real_browser() {
    for path in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: install Debian's chromium and chromium-driver \
             (scripts/test.sh does: apt-get install chromium chromium-driver)"
        );
    }
    let python = selenium_python();
    let data = tempfile::tempdir().unwrap();
    let (proc, base, key) = gateway(data.path()).await;

    // The assets: content types, no-cache, a CSP that allows only this origin.
    let client = reqwest::Client::new();
    for (path, kind) in [
        ("/", "text/html"),
        ("/status", "text/html"),
        ("/assets/app.css", "text/css"),
        ("/assets/playground.js", "text/javascript"),
        ("/assets/status.js", "text/javascript"),
        ("/assets/charts.js", "text/javascript"),
    ] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let header = |name: &str| r.headers()[name].to_str().unwrap().to_string();
        assert!(header("content-type").starts_with(kind), "{path}");
        assert!(header("content-security-policy").contains("default-src 'none'"));
    }
    let missing = client
        .get(format!("{base}/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // The pages' third link.
    let docs = client.get(format!("{base}/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200, "/docs");

    // The JSON the page reads: the simulated subnet from the SQLite store.
    let status = status_json(&base).await;
    assert_eq!(status["netuid"], 1, "{status}");
    assert_eq!(status["counts"]["serving"], MINERS, "{status}");
    assert_eq!(status["counts"]["candidates"], MINERS, "{status}");
    assert_eq!(status["miners"].as_array().unwrap().len(), MINERS);
    assert_eq!(status["per_minute"].as_array().unwrap().len(), 61);
    let bad = client
        .get(format!("{base}/api/status?netuid=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Some traffic first, so the charts and the table have something to show.
    let asks = (0..12).map(|i| {
        let body = serde_json::json!({"k": 3, "timeout": 15, "roles": ["user"],
            "messages": [format!("Warm-up question {i}")]});
        let url = format!("{base}/chat");
        let key = key.clone();
        async move { post_ndjson(&url, &key, &body).await.status }
    });
    let statuses = futures::future::join_all(asks).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web_browser.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&base)
        .arg(&key)
        .arg(MINERS.to_string())
        .arg(&shots)
        .env("SE_OFFLINE", "true")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "the browser script failed:\n{stdout}\n{stderr}\n---- gateway log\n{}",
        proc.log_text()
    );
    for shot in ["playground.png", "status.png", "status-phone.png"] {
        let size = std::fs::metadata(shots.join(shot)).map(|m| m.len()).ok();
        assert!(size.is_some_and(|s| s > 10_000), "{shot}: {size:?}");
    }

    // The browser's request is in the audit log, and so in the status data.
    let mut replies = 0;
    for _ in 0..100 {
        let status = status_json(&base).await;
        replies = status["miners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["replies"].as_u64().unwrap())
            .sum::<u64>();
        let requests: u64 = status["per_minute"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["requests"].as_u64().unwrap())
            .sum();
        if replies > 0 && requests >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(replies > 0, "no audited reply in /api/status");
    eprintln!("{stdout}");
}

/// A neuron of the distributed test's snapshot.
fn neuron(uid: u16, validator: bool) -> sn1_contracts::metagraph::NeuronRow {
    sn1_contracts::metagraph::NeuronRow {
        uid,
        hotkey: format!("5WebHotkey{uid}"),
        coldkey: format!("5WebCold{uid}"),
        active: true,
        axon_ip: format!("10.0.0.{}", uid + 1),
        axon_port: 8091,
        axon_ip_type: 4,
        axon_protocol: 4,
        axon_version: 1,
        stake_tao: if validator { 10_000.0 } else { 1.0 },
        incentive: 0.25,
        consensus: 0.0,
        dividends: 0.0,
        validator_trust: 0.0,
        emission_tao: 0.0,
        validator_permit: validator,
        last_update: 1,
    }
}

/// Distributed mode: an `sn1-gateway api` with `DATABASE_URL` serves the same pages and reads
/// the status from Postgres (the syncer's snapshot); one without answers 503 `no_database`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_distributed_api_reads_the_status_from_postgres() {
    let url = sn1_contracts::store::testing::fresh_database("web")
        .await
        .unwrap();
    let store = sn1_contracts::store::Store::postgres(&url, 2)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mut lock = store.try_lock_sync(1).await.unwrap().unwrap();
    let neurons: Vec<_> = (0..4).map(|uid| neuron(uid, uid == 0)).collect();
    lock.store_snapshot(4242, "0x1092", &neurons).await.unwrap();
    lock.release().await;

    let prefix = unique_prefix("web-dist");
    let start = |database: Option<&str>| {
        let port = free_port();
        let mut env = vec![
            ("NATS_URL", nats_url()),
            ("NATS_PREFIX", prefix.clone()),
            ("PORT", port.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("EXPECTED_ACCESS_KEY", format!("key-{prefix}")),
        ];
        if let Some(url) = database {
            env.push(("DATABASE_URL", url.to_string()));
        }
        let name = format!("{prefix}-api-{}", database.is_some());
        (Proc::start(&name, &["api"], &env), port)
    };
    let (with_db, port) = start(Some(&url));
    let (without_db, bare_port) = start(None);
    for p in [port, bare_port] {
        wait_ok(
            &format!("http://127.0.0.1:{p}/readyz"),
            Duration::from_secs(30),
        )
        .await;
    }
    let base = format!("http://127.0.0.1:{port}");
    wait_ok(&format!("{base}/status"), Duration::from_secs(5)).await;
    let status = status_json(&base).await;
    assert_eq!(
        (status["netuid"].as_u64(), status["block"].as_u64()),
        (Some(1), Some(4242))
    );
    let counts = &status["counts"];
    assert_eq!(
        (counts["neurons"].as_u64(), counts["validators"].as_u64()),
        (Some(4), Some(1)),
        "{status}"
    );
    let uids: Vec<u64> = status["miners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["uid"].as_u64().unwrap())
        .collect();
    assert_eq!(uids, [1, 2, 3], "{status}\n{}", with_db.log_text());
    assert_eq!(status["miners"][0]["axon"], "10.0.0.2:8091");

    let bare = reqwest::get(format!("http://127.0.0.1:{bare_port}/api/status"))
        .await
        .unwrap();
    assert_eq!(bare.status(), 503);
    let body: Value = bare.json().await.unwrap();
    assert_eq!(body["error"]["type"], "no_database", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("DATABASE_URL"),
        "{body}\n{}",
        without_db.log_text()
    );
}
