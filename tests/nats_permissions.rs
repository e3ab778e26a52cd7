//! Per-role NATS users (issue #17, finding 9): the api, worker and syncer each connect as their
//! own user whose subject permissions come from one file,
//! `deploy/helm/sn1-gateway/files/nats-permissions.json` (the chart renders it; the compose
//! stack's `deploy/compose/nats.conf` must equal what it gives for the prefix `sn1`). Run on a
//! real nats-server of the test's own: a request works end to end with those permissions, and a
//! role's credentials cannot do another role's work (the server refuses with a permissions
//! violation). The api's `/metrics` is on its ops port only.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::*;
use serde_json::{Value, json};
use sn1_contracts::store::Store;
use std::path::Path;
use std::time::Duration;

const ROLES: [&str; 3] = ["api", "worker", "syncer"];

fn permissions_file() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/helm/sn1-gateway/files/nats-permissions.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The subjects of `role` for `prefix` (`publish` / `subscribe` → list).
fn permissions(role: &str, prefix: &str) -> Value {
    let stream = prefix.to_ascii_uppercase().replace('-', "_");
    let consumer = stream.to_ascii_lowercase();
    let text = permissions_file()[role].to_string();
    serde_json::from_str(
        &text
            .replace("{prefix}", prefix)
            .replace("{STREAM}", &stream)
            .replace("{consumer}", &consumer),
    )
    .unwrap()
}

fn subjects(list: &Value) -> String {
    let quoted: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("\"{}\"", s.as_str().unwrap()))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// The NATS `authorization` block of the three roles for `prefix`, as the chart renders it
/// (templates/nats-authorization.yaml); `password` gives each role's password expression.
fn authorization(prefix: &str, password: impl Fn(&str) -> String, extra: &str) -> String {
    let mut out = format!(
        "# NATS users of sn1-gateway for NATS_PREFIX \"{prefix}\", one per role, from\n\
         # deploy/helm/sn1-gateway/files/nats-permissions.json (keep in step: tests/nats_permissions.rs).\n\
         authorization {{\n  users = [\n"
    );
    for role in ROLES {
        let p = permissions(role, prefix);
        out += &format!(
            "    {{user: \"{prefix}-{role}\", password: {}, permissions: {{publish: {}, subscribe: {}}}}}\n",
            password(role),
            subjects(&p["publish"]),
            subjects(&p["subscribe"]),
        );
    }
    out + extra + "  ]\n}\n"
}

fn compose_password(role: &str) -> String {
    format!("$SN1_NATS_{}_PASSWORD", role.to_ascii_uppercase())
}

#[test]
fn the_compose_stacks_nats_users_are_the_charts() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/compose/nats.conf");
    let expected = authorization("sn1", compose_password, "");
    if std::env::var_os("UPDATE_NATS_CONF").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        actual, expected,
        "deploy/compose/nats.conf differs from files/nats-permissions.json; regenerate it with \
         UPDATE_NATS_CONF=1 cargo test --test nats_permissions"
    );
}

fn password(user: &str) -> String {
    format!("{user}-test-password")
}

/// What a [`User`] tries.
#[derive(PartialEq)]
enum Try {
    Publish,
    Subscribe,
}

/// A client connected as one user; the server's errors (permission violations) arrive on
/// `errors`.
struct User {
    client: async_nats::Client,
    errors: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl User {
    async fn connect(nats: &OwnedNats, user: &str) -> User {
        let (tx, errors) = tokio::sync::mpsc::unbounded_channel();
        let client =
            async_nats::ConnectOptions::with_user_and_password(user.into(), password(user))
                .event_callback(move |event| {
                    let tx = tx.clone();
                    async move {
                        if let async_nats::Event::ServerError(e) = event {
                            let _ = tx.send(e.to_string());
                        }
                    }
                })
                .connect(format!("127.0.0.1:{}", nats.port))
                .await
                .unwrap();
        User { client, errors }
    }

    /// Publishes or subscribes to `subject` and asserts that the server refuses it exactly
    /// when `refused`.
    async fn tries(&mut self, subject: String, how: Try, refused: bool) {
        if how == Try::Subscribe {
            // A refused subscription is reported like a refused publish.
            let _ = self.client.subscribe(subject.clone()).await;
        } else {
            self.client
                .publish(subject.clone(), "{}".into())
                .await
                .unwrap();
        }
        self.client.flush().await.unwrap();
        let wait = Duration::from_millis(if refused { 5000 } else { 500 });
        let error = tokio::time::timeout(wait, self.errors.recv())
            .await
            .ok()
            .flatten();
        match error {
            Some(e) if refused => assert!(
                e.contains("Permissions Violation") && e.contains(&subject),
                "{subject}: {e}"
            ),
            Some(e) => panic!("{subject} was refused: {e}"),
            None => assert!(!refused, "{subject} was not refused"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_works_with_its_own_user_and_cannot_do_another_roles_work() {
    let prefix = unique_prefix("perm");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nats.conf");
    let admin = "{user: \"admin\", password: \"admin-test-password\"}\n";
    let text = authorization(
        &prefix,
        |role| format!("\"{}\"", password(&format!("{prefix}-{role}"))),
        &format!("    {admin}"),
    );
    std::fs::write(&config, &text).unwrap();
    let nats = OwnedNats::start_with_config("perm", config, "admin:admin-test-password").await;

    let (fleet, mg) = simple_fleet(2, dir.path()).await;
    // With Postgres the worker audits every request: audit stream, its writer's pulls.
    let db = migrated_database("perm").await;
    let store = Store::postgres(&db, 2).await.unwrap();
    let url = |role: &str| {
        nats.url_as(&format!(
            "{prefix}-{role}:{}",
            password(&format!("{prefix}-{role}"))
        ))
    };
    let ops = free_port();
    let worker_env = [
        ("NATS_URL", url("worker")),
        ("DATABASE_URL", db.clone()),
        ("AUDIT_STREAM_MAX_BYTES", (64u64 << 20).to_string()),
    ];
    let api_env = [("NATS_URL", url("api")), ("OPS_PORT", ops.to_string())];
    let nats_log = nats.log.clone();
    let mut stack = OwnedStack::on(nats, prefix.clone(), &mg, 1, 1, &worker_env, &api_env).await;
    // A second api process (no ops port): a key has one id across replicas.
    stack.api_env.retain(|(k, _)| k != "OPS_PORT");
    stack.add_api().await;
    let logs = || {
        format!(
            "{}\n==== nats\n{}",
            stack.logs_tail(40),
            std::fs::read_to_string(&nats_log).unwrap_or_default()
        )
    };

    // End to end with every role's own permissions: /echo and /chat.
    let out = post_ndjson(
        &stack.api(0, "/echo"),
        &stack.key,
        &json!({"roles": ["user"], "messages": ["one two three"]}),
    )
    .await;
    assert_eq!(out.status, 200, "{}", logs());
    let (text, _) = check_stream_events(&out.events);
    assert_eq!(text, "one two three", "{}", logs());
    let out = post_ndjson(&stack.api(0, "/chat"), &stack.key, &seed_request()).await;
    assert_eq!(out.status, 200, "{}", logs());
    let (text, uid) = check_stream_events(&out.events);
    assert!(
        text.starts_with(&format!("Miner {uid} answers")),
        "{text}\n{}",
        logs()
    );
    let out = post_ndjson(
        &stack.api(1, "/echo"),
        &stack.key,
        &json!({"roles": ["user"], "messages": ["four five"]}),
    )
    .await;
    assert_eq!(out.status, 200, "{}", logs());
    // The worker's scrape reads the jobs consumer.
    let worker_metrics = reqwest::get(stack.workers[0].url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        worker_metrics.contains("sn1_queue_jobs_waiting"),
        "{worker_metrics}"
    );

    // Every request audited (through the audit stream and its writer), under one key id from
    // both api processes: the HMAC with the shared KEY_ID_SECRET, not a hash of the key alone.
    let Store::Postgres(pool) = &store else {
        unreachable!()
    };
    let start = std::time::Instant::now();
    let ids: Vec<String> = loop {
        let ids: Vec<String> = sqlx::query_scalar("SELECT api_key_id FROM completions")
            .fetch_all(pool)
            .await
            .unwrap();
        if ids.len() >= 3 {
            break ids;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{ids:?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let expected = sn1_api::auth::key_id(&TEST_KEY_ID_SECRET.to_string().into(), &stack.key);
    assert!(
        ids.iter().all(|id| *id == expected),
        "{ids:?} != {expected}"
    );

    // Nothing the roles did was refused.
    let nats_text = std::fs::read_to_string(&nats_log).unwrap_or_default();
    assert!(!nats_text.contains("Violation"), "{}", logs());

    // /metrics: on the ops port, not on the public one.
    let client = reqwest::Client::new();
    let public = client.get(stack.api(0, "/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    let metrics = client
        .get(format!("http://127.0.0.1:{ops}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("sn1_api_"), "{metrics}");

    // The api's credentials cannot publish events or pull jobs.
    let stream = prefix.to_ascii_uppercase().replace('-', "_");
    let consumer = format!("{}_workers", stream.to_ascii_lowercase());
    let jobs_next = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}_JOBS.{consumer}");
    let nats = &stack.nats;
    const REFUSED: bool = true;
    let mut api = User::connect(nats, &format!("{prefix}-api")).await;
    api.tries(
        format!("{prefix}.events.someinbox.somejob"),
        Try::Publish,
        REFUSED,
    )
    .await;
    api.tries(jobs_next.clone(), Try::Publish, REFUSED).await;
    api.tries(format!("{prefix}.audit"), Try::Publish, REFUSED)
        .await;
    api.tries(format!("{prefix}.cancel.somejob"), Try::Publish, !REFUSED)
        .await;
    // No role reads another's replies: each has its own inbox.
    api.tries(format!("_INBOX_{prefix}-worker.>"), Try::Subscribe, REFUSED)
        .await;
    api.tries("_INBOX.>".to_string(), Try::Subscribe, REFUSED)
        .await;
    // The worker's cannot publish jobs, metagraph notices or cancels, nor read events.
    let mut worker = User::connect(nats, &format!("{prefix}-worker")).await;
    worker
        .tries(format!("{prefix}.jobs"), Try::Publish, REFUSED)
        .await;
    worker
        .tries(format!("{prefix}.metagraph.updated"), Try::Publish, REFUSED)
        .await;
    worker
        .tries(format!("{prefix}.cancel.somejob"), Try::Publish, REFUSED)
        .await;
    worker
        .tries(format!("{prefix}.events.>"), Try::Subscribe, REFUSED)
        .await;
    worker
        .tries(format!("_INBOX_{prefix}-api.>"), Try::Subscribe, REFUSED)
        .await;
    worker
        .tries(
            format!("{prefix}.events.someinbox.somejob"),
            Try::Publish,
            !REFUSED,
        )
        .await;
    // (The oldest waiting job is read back for the worker's metrics when one waits.)
    let msg_get = format!("$JS.API.STREAM.MSG.GET.{stream}_JOBS");
    worker.tries(msg_get, Try::Publish, !REFUSED).await;
    // The syncer's may only tell the workers about a new metagraph.
    let mut syncer = User::connect(nats, &format!("{prefix}-syncer")).await;
    syncer
        .tries(
            format!("{prefix}.metagraph.updated"),
            Try::Publish,
            !REFUSED,
        )
        .await;
    syncer
        .tries(format!("{prefix}.jobs"), Try::Publish, REFUSED)
        .await;
    syncer.tries(jobs_next, Try::Publish, REFUSED).await;
    // Nor read the replies JetStream sends to the workers' inboxes (jobs, audit records).
    syncer
        .tries("_INBOX.>".to_string(), Try::Subscribe, REFUSED)
        .await;
    drop(fleet);
}
