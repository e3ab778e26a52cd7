//! What several store tests share.

#![allow(dead_code, reason = "each test binary uses part of it")]

use std::collections::HashMap;

/// Every query of the README's "Querying completions" section, each run by a test:
/// `audit_queries.rs` the first four, `keys.rs` the usage per key.
pub const TESTED_QUERIES: &[&str] = &[
    "miner_health_last_hour",
    "slowest_miners_last_hour",
    "volume_per_api_key",
    "one_request_fan_out",
    "usage_per_key",
];

/// The SQL queries of the README's "Querying completions" section, by their `-- query: <name>`
/// first line: tests run them, so the README cannot drift from the schema.
pub fn readme_queries() -> HashMap<String, String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("## Querying completions")
        .nth(1)
        .expect("README has a Querying completions section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let mut out = HashMap::new();
    for block in section.split("```sql").skip(1) {
        let sql = block.split("```").next().unwrap_or_default().trim();
        let name = sql
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("-- query: "))
            .expect("each query starts with `-- query: <name>`")
            .trim()
            .to_string();
        out.insert(name, sql.to_string());
    }
    out
}
