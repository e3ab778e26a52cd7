//! `KEY_ID_SECRET` at the edge (issue #17, finding 7): the api refuses to start with a key but
//! without the secret (or with one too short to be secret), naming it; `--help` never shows its
//! value. That two api processes with one secret give a key one id, stored in the audit log, is
//! tested in tests/nats_permissions.rs; the id itself in `sn1_api::auth`'s unit tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

mod common;

use common::bin;

async fn api_error(secret: Option<&str>) -> String {
    let mut cmd = tokio::process::Command::new(bin());
    cmd.args(["api"])
        .env("EXPECTED_ACCESS_KEY", "k")
        .env("NATS_URL", "nats://127.0.0.1:1")
        .env_remove("KEY_ID_SECRET");
    if let Some(secret) = secret {
        cmd.env("KEY_ID_SECRET", secret);
    }
    let out = cmd.output().await.unwrap();
    assert!(!out.status.success(), "the api started");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[tokio::test]
async fn the_api_refuses_to_start_without_a_key_id_secret() {
    let err = api_error(None).await;
    assert!(err.contains("KEY_ID_SECRET is not set"), "{err}");
    let err = api_error(Some("short")).await;
    assert!(err.contains("KEY_ID_SECRET must be at least 16"), "{err}");
    assert!(!err.contains("short\""), "{err}");
}

#[tokio::test]
async fn help_never_shows_the_key_id_secret() {
    for role in ["api", "standalone"] {
        let out = tokio::process::Command::new(bin())
            .args([role, "--help"])
            .env("KEY_ID_SECRET", "hunter2-hunter2-hunter2")
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(text.contains("KEY_ID_SECRET"), "{text}");
        assert!(
            !text.contains("hunter2"),
            "{role} --help shows the secret: {text}"
        );
        assert!(text.contains("OPS_PORT"), "{text}");
    }
}
