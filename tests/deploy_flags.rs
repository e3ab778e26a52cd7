//! Keeps the deployment assets in step with the binary: every subcommand, `--flag` and
//! environment variable that the Helm chart (templates and values files), the compose file, the
//! Dockerfile and the image's healthcheck pass to `sn1-gateway` must exist in
//! `sn1-gateway <cmd> --help` (env vars show there as `[env: NAME=]`).
//!
//! The assets are read as text, by the conventions they follow:
//! * chart templates: a file named `api-*`, `worker-*`, `syncer-*` or `migrate-*` belongs to
//!   that role; its env names are `- name: NAME` entries and `NAME:` ConfigMap keys, in the file
//!   or in any `define` it includes (transitively); its subcommand and flags are in `args: [...]`.
//!   Other template files must not carry env names.
//! * values files: the keys of `api.env`, `worker.env`, `syncer.env`.
//! * compose: services that merge the `*sn1` anchor (or name the sn1-gateway image): `command:`
//!   and `environment:`; `name: *alias` services repeat an anchored one.
//! * Dockerfile: `CMD`; healthcheck.sh: its `role) ... opt --flag ENV default` arms.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What one asset passes to the binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Subcommand,
    Flag(String),
    Env(String),
}

/// One use of the binary's interface, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Use {
    subcommand: String,
    item: Item,
    origin: String,
}

impl Use {
    fn new(subcommand: &str, item: Item, origin: &str) -> Use {
        Use {
            subcommand: subcommand.to_string(),
            item,
            origin: origin.to_string(),
        }
    }
}

/// The interface of one subcommand, from its --help.
#[derive(Debug, Default)]
struct CmdHelp {
    flags: BTreeSet<String>,
    envs: BTreeSet<String>,
    text: String,
}

/// Variables read by libraries rather than clap; allowed when the help text names them.
const LIBRARY_ENV: &[&str] = &["RUST_LOG"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn is_env_name(s: &str) -> bool {
    s.len() >= 2
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

// ---------------------------------------------------------------- the binary's --help

fn run_help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sn1-gateway"))
        .args(args)
        .output()
        .expect("run sn1-gateway");
    assert!(out.status.success(), "sn1-gateway {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Parses one subcommand's --help: option lines (`  -x, --flag <V>`) and `[env: NAME=...]`.
fn parse_help(text: &str) -> CmdHelp {
    let mut help = CmdHelp {
        text: text.to_string(),
        ..CmdHelp::default()
    };
    for line in text.lines() {
        let t = line.trim_start();
        let t = t
            .strip_prefix("-h, ")
            .or(t.strip_prefix("-V, "))
            .unwrap_or(t);
        let t = match t.find(", --") {
            Some(i) if t.starts_with('-') && !t.starts_with("--") => &t[i + 2..],
            _ => t,
        };
        if let Some(flag) = t.strip_prefix("--") {
            let name: String = flag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
                .collect();
            help.flags.insert(name);
        }
        let mut rest = line;
        while let Some(i) = rest.find("[env: ") {
            rest = &rest[i + 6..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            help.envs.insert(name);
        }
    }
    help
}

/// Every subcommand's interface, from the real binary.
fn binary_interface() -> BTreeMap<String, CmdHelp> {
    let top = run_help(&["--help"]);
    let mut out = BTreeMap::new();
    let mut in_commands = false;
    for line in top.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
            continue;
        }
        if in_commands {
            if !line.starts_with("  ") {
                break;
            }
            let name = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            if name != "help" {
                let help = parse_help(&run_help(&[&name, "--help"]));
                out.insert(name, help);
            }
        }
    }
    out
}

/// Uses that the binary does not have, one readable line each.
fn missing(uses: &[Use], interface: &BTreeMap<String, CmdHelp>) -> Vec<String> {
    let mut out = Vec::new();
    for u in uses {
        let Some(help) = interface.get(&u.subcommand) else {
            out.push(format!(
                "{}: subcommand `{}` does not exist",
                u.origin, u.subcommand
            ));
            continue;
        };
        match &u.item {
            Item::Subcommand => {}
            Item::Flag(f) if !help.flags.contains(f) => out.push(format!(
                "{}: `sn1-gateway {} --{f}` is not in its --help",
                u.origin, u.subcommand
            )),
            Item::Env(e)
                if !help.envs.contains(e)
                    && !(LIBRARY_ENV.contains(&e.as_str()) && help.text.contains(e.as_str())) =>
            {
                out.push(format!(
                    "{}: `sn1-gateway {}` has no [env: {e}] in its --help",
                    u.origin, u.subcommand
                ))
            }
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

// ---------------------------------------------------------------- shared text helpers

/// Env names in text: `- name: NAME` list entries and `NAME:` mapping keys.
fn env_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        let t = t.strip_prefix("- name:").map(str::trim).unwrap_or(t);
        let key = t.split(':').next().unwrap_or_default().trim();
        let key = key.trim_matches('"');
        let is_key = t.contains(':') || line.trim_start().starts_with("- name:");
        if is_key && is_env_name(key) {
            out.push(key.to_string());
        }
    }
    out
}

/// The elements of a one-line flow list: `["worker", "--x", "1"]`.
fn flow_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    Some(
        inner
            .split(',')
            .map(|s| s.trim().trim_matches('"').trim_matches('\'').to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// Uses of one argument vector: the subcommand (first word) and its `--flags`.
fn argv_uses(argv: &[String], origin: &str, expected_role: Option<&str>, uses: &mut Vec<Use>) {
    let Some(sub) = argv.first() else { return };
    if let Some(role) = expected_role {
        assert_eq!(
            sub, role,
            "{origin}: runs `{sub}` but the file belongs to role `{role}`"
        );
    }
    uses.push(Use::new(&sub, Item::Subcommand, &origin));
    for a in &argv[1..] {
        if let Some(flag) = a.strip_prefix("--") {
            let name = flag.split('=').next().unwrap_or_default().to_string();
            uses.push(Use::new(&sub, Item::Flag(name), &origin));
        }
    }
}

// ---------------------------------------------------------------- Helm chart

/// The `define` blocks of Go templates: name → (text, included define names).
fn template_defines(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    // (define name or "", start offset)
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut pos = 0;
    while let Some(open) = text[pos..].find("{{") {
        let start = pos + open;
        let Some(close) = text[start..].find("}}") else {
            break;
        };
        let end = start + close + 2;
        let action = text[start + 2..end - 2].trim_matches('-').trim();
        let word = action.split_whitespace().next().unwrap_or_default();
        match word {
            "define" => {
                let name = action.split('"').nth(1).unwrap_or_default().to_string();
                stack.push((name, end));
            }
            "if" | "with" | "range" | "block" => stack.push((String::new(), end)),
            "end" => {
                if let Some((name, body_start)) = stack.pop() {
                    if !name.is_empty() {
                        out.insert(name, text[body_start..start].to_string());
                    }
                }
            }
            _ => {}
        }
        pos = end;
    }
    out
}

/// Names of templates a text includes.
fn includes(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for marker in ["include \"", "template \""] {
        let mut rest = text;
        while let Some(i) = rest.find(marker) {
            rest = &rest[i + marker.len()..];
            if let Some(j) = rest.find('"') {
                out.push(rest[..j].to_string());
            }
        }
    }
    out
}

/// The text of a file plus every define it includes, transitively.
fn with_includes(text: &str, defines: &BTreeMap<String, String>) -> String {
    let mut seen = BTreeSet::new();
    let mut todo = includes(text);
    let mut out = text.to_string();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(body) = defines.get(&name) {
            out.push('\n');
            out.push_str(body);
            todo.extend(includes(body));
        }
    }
    out
}

fn role_of_template(file: &str) -> Option<&'static str> {
    [
        ("api-", "api"),
        ("worker-", "worker"),
        ("syncer-", "metagraph-syncer"),
        ("migrate-", "migrate"),
    ]
    .into_iter()
    .find(|(prefix, _)| file.starts_with(prefix))
    .map(|(_, role)| role)
}

/// Uses in the chart's templates.
fn chart_template_uses(dir: &Path) -> Vec<Use> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("templates dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    let texts: Vec<(PathBuf, String)> = files.iter().map(|p| (p.clone(), read(p))).collect();
    let mut defines = BTreeMap::new();
    for (_, text) in &texts {
        defines.extend(template_defines(text));
    }
    let mut uses = Vec::new();
    for (path, text) in &texts {
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if file.starts_with('_') {
            continue; // only through the files that include them
        }
        let origin = rel(path);
        let full = with_includes(text, &defines);
        let Some(role) = role_of_template(&file) else {
            let stray = env_names(&full);
            assert!(
                stray.is_empty(),
                "{origin} sets env vars {stray:?} but is not a role file (api-*, worker-*, syncer-*, migrate-*)"
            );
            continue;
        };
        // Containers keep the image's ENTRYPOINT (sn1-gateway): the role is in `args`.
        for line in full.lines() {
            if let Some(list) = line.trim_start().strip_prefix("args:").and_then(flow_list) {
                argv_uses(&list, &origin, Some(role), &mut uses);
            }
        }
        for name in env_names(&full) {
            uses.push(Use::new(&role, Item::Env(name), &origin));
        }
    }
    uses
}

/// Keys of the mapping at `path` (e.g. `["api", "env"]`) in a block-style YAML text.
fn yaml_map_keys(text: &str, path: &[&str]) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let (mut from, mut to, mut level) = (0, lines.len(), 0);
    for key in path {
        let found = (from..to).find(|&i| {
            let l = lines[i];
            indent(l) == level && l.trim_start().starts_with(&format!("{key}:"))
        });
        let Some(i) = found else { return Vec::new() };
        let after = lines[i].trim_start()[key.len() + 1..].trim();
        if !after.is_empty() && !after.starts_with('#') {
            // A flow mapping on the same line: `env: {A: "1", B: x}`.
            let inner = after.trim_start_matches('{').trim_end_matches('}');
            return inner
                .split(',')
                .filter_map(|kv| kv.split(':').next())
                .map(|k| k.trim().trim_matches('"').to_string())
                .filter(|k| !k.is_empty())
                .collect();
        }
        from = i + 1;
        to = (from..to)
            .find(|&j| {
                !lines[j].trim().is_empty()
                    && indent(lines[j]) <= level
                    && !lines[j].trim_start().starts_with('#')
            })
            .unwrap_or(to);
        level = (from..to)
            .map(|j| lines[j])
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(indent)
            .unwrap_or(level + 2);
    }
    (from..to)
        .map(|i| lines[i])
        .filter(|l| indent(l) == level && !l.trim_start().starts_with('#'))
        .filter_map(|l| l.trim_start().split(':').next())
        .map(|k| k.trim().trim_matches('"').to_string())
        .collect()
}

/// Uses in a values file: the `env` maps of each role.
fn values_uses(path: &Path) -> Vec<Use> {
    let text = read(path);
    let mut uses = Vec::new();
    for (section, role) in [
        ("api", "api"),
        ("worker", "worker"),
        ("syncer", "metagraph-syncer"),
    ] {
        for name in yaml_map_keys(&text, &[section, "env"]) {
            uses.push(Use::new(
                &role,
                Item::Env(name),
                &format!("{} ({section}.env)", rel(path)),
            ));
        }
    }
    uses
}

// ---------------------------------------------------------------- compose, Dockerfile, healthcheck

/// Uses in a compose file.
fn compose_uses(text: &str, origin: &str) -> Vec<Use> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| *l == "services:") else {
        panic!("{origin}: no `services:`")
    };
    let end = (start + 1..lines.len())
        .find(|&i| !lines[i].is_empty() && indent(lines[i]) == 0 && !lines[i].starts_with('#'))
        .unwrap_or(lines.len());
    let heads: Vec<usize> = (start + 1..end)
        .filter(|&i| {
            indent(lines[i]) == 2
                && !lines[i].trim_start().starts_with('#')
                && lines[i].contains(':')
        })
        .collect();
    let mut uses = Vec::new();
    for (n, &h) in heads.iter().enumerate() {
        let block_end = heads.get(n + 1).copied().unwrap_or(end);
        let (name, rest) = lines[h].trim().split_once(':').unwrap_or_default();
        if rest.trim().starts_with('*') {
            continue; // an alias of a service checked where its anchor is
        }
        let block = &lines[h + 1..block_end];
        let ours = block.iter().any(|l| {
            let t = l.trim();
            t == "<<: *sn1" || (t.starts_with("image:") && t.contains("sn1-gateway"))
        });
        if !ours {
            continue;
        }
        let origin = format!("{origin} (service {name})");
        let command = block
            .iter()
            .find_map(|l| l.trim().strip_prefix("command:").and_then(flow_list));
        let argv = command.unwrap_or_else(|| vec!["api".to_string()]);
        argv_uses(&argv, &origin, None, &mut uses);
        let sub = argv[0].clone();
        if let Some(env_at) = block.iter().position(|l| l.trim() == "environment:") {
            let level = indent(block[env_at]);
            for l in block[env_at + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || indent(l) > level)
            {
                let t = l.trim().trim_start_matches("- ");
                let key = t.split([':', '=']).next().unwrap_or_default().trim();
                if is_env_name(key) {
                    uses.push(Use::new(&sub, Item::Env(key.to_string()), &origin));
                }
            }
        }
    }
    uses
}

/// Uses in the Dockerfile: the default subcommand.
fn dockerfile_uses(text: &str, origin: &str) -> Vec<Use> {
    let mut uses = Vec::new();
    let entry = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "));
    assert_eq!(
        entry.map(str::trim),
        Some(r#"["sn1-gateway"]"#),
        "{origin}: ENTRYPOINT"
    );
    if let Some(cmd) = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("CMD "))
        .and_then(flow_list)
    {
        argv_uses(&cmd, origin, None, &mut uses);
    }
    uses
}

/// Uses in healthcheck.sh: `role) ... opt --flag ENV default` arms.
fn healthcheck_uses(text: &str, origin: &str) -> Vec<Use> {
    let mut uses = Vec::new();
    let mut role: Option<String> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some((head, _)) = t.split_once(") ") {
            if !head.is_empty() && head.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
                role = Some(head.to_string());
            }
        } else if t.ends_with(')')
            && t.len() > 1
            && t[..t.len() - 1]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-')
        {
            role = Some(t[..t.len() - 1].to_string());
        }
        let Some(r) = &role else { continue };
        let mut rest = t;
        while let Some(i) = rest.find("opt --") {
            rest = &rest[i + 4..];
            let mut words = rest.split_whitespace();
            let (Some(flag), Some(env)) = (words.next(), words.next()) else {
                break;
            };
            let origin = format!("{origin} ({r})");
            argv_uses(&[r.clone(), flag.to_string()], &origin, None, &mut uses);
            uses.push(Use {
                subcommand: r.clone(),
                item: Item::Env(env.to_string()),
                origin,
            });
        }
        if t.ends_with(";;") {
            role = None;
        }
    }
    uses
}

/// Every use in the repository's deployment assets.
fn all_uses() -> Vec<Use> {
    let deploy = root().join("deploy");
    let chart = deploy.join("helm/sn1-gateway");
    let mut uses = chart_template_uses(&chart.join("templates"));
    let mut values = vec![chart.join("values.yaml")];
    for dir in [chart.join("ci"), deploy.join("helm/examples")] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("values dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        values.extend(files);
    }
    for v in &values {
        uses.extend(values_uses(v));
    }
    let compose = deploy.join("compose/compose.yaml");
    uses.extend(compose_uses(&read(&compose), &rel(&compose)));
    let dockerfile = deploy.join("docker/Dockerfile");
    uses.extend(dockerfile_uses(&read(&dockerfile), &rel(&dockerfile)));
    let hc = deploy.join("docker/healthcheck.sh");
    uses.extend(healthcheck_uses(&read(&hc), &rel(&hc)));
    uses.sort();
    uses.dedup();
    uses
}

fn has(uses: &[Use], sub: &str, item: Item, origin_part: &str) -> bool {
    uses.iter()
        .any(|u| u.subcommand == sub && u.item == item && u.origin.contains(origin_part))
}

fn env(name: &str) -> Item {
    Item::Env(name.to_string())
}

fn flag(name: &str) -> Item {
    Item::Flag(name.to_string())
}

#[test]
fn deploy_assets_pass_only_what_the_binary_has() {
    let uses = all_uses();
    // The parsers found what is known to be there (so an empty scan cannot pass).
    for (sub, item, origin) in [
        (
            "api",
            env("EXPECTED_ACCESS_KEY"),
            "templates/api-deployment.yaml",
        ),
        ("api", env("NATS_URL"), "templates/api-deployment.yaml"),
        ("api", env("MAX_IN_FLIGHT"), "templates/api-configmap.yaml"),
        (
            "worker",
            env("BT_HOTKEY_SECRET"),
            "templates/worker-deployment.yaml",
        ),
        (
            "worker",
            env("METAGRAPH_FILE"),
            "templates/worker-configmap.yaml",
        ),
        (
            "worker",
            env("DATABASE_URL"),
            "templates/worker-deployment.yaml",
        ),
        ("migrate", env("DATABASE_URL"), "templates/migrate-job.yaml"),
        (
            "metagraph-syncer",
            Item::Subcommand,
            "templates/syncer-deployment.yaml",
        ),
        ("worker", env("RUST_LOG"), "examples/production.yaml"),
        ("simnet", flag("host"), "compose.yaml (service simnet)"),
        (
            "worker",
            env("BT_WALLET_EPHEMERAL"),
            "compose.yaml (service worker-1)",
        ),
        (
            "api",
            env("EXPECTED_ACCESS_KEY"),
            "compose.yaml (service api-1)",
        ),
        (
            "metagraph-syncer",
            Item::Subcommand,
            "compose.yaml (service metagraph-syncer)",
        ),
        ("api", Item::Subcommand, "Dockerfile"),
        ("worker", flag("ops-port"), "healthcheck.sh (worker)"),
        ("api", env("PORT"), "healthcheck.sh (api)"),
    ] {
        assert!(
            has(&uses, sub, item.clone(), origin),
            "expected to find {sub} {item:?} in {origin}; found:\n{uses:#?}"
        );
    }
    let interface = binary_interface();
    assert!(interface.contains_key("worker") && interface["worker"].envs.contains("NATS_URL"));
    let problems = missing(&uses, &interface);
    assert!(
        problems.is_empty(),
        "the deployment assets pass what `sn1-gateway` does not have:\n  {}",
        problems.join("\n  ")
    );
    eprintln!("checked {} uses of the binary's interface", uses.len());
}

#[test]
fn made_up_flags_and_variables_are_reported() {
    let help = parse_help(
        "Usage: sn1-gateway worker [OPTIONS]\n\nOptions:\n      --ops-port <OPS_PORT>\n          Port\n\n          [env: OPS_PORT=]\n          [default: 9100]\n\n      --wallet.secret <S>\n          [env: BT_HOTKEY_SECRET]\n\n      --log-format <F>\n          filter with RUST_LOG\n  -h, --help\n          Print help\n",
    );
    assert!(
        help.flags.contains("ops-port")
            && help.flags.contains("wallet.secret")
            && help.flags.contains("help")
    );
    assert_eq!(
        help.envs,
        ["BT_HOTKEY_SECRET", "OPS_PORT"].map(String::from).into()
    );
    let interface = BTreeMap::from([("worker".to_string(), help)]);
    let at = |sub: &str, item: Item| Use {
        subcommand: sub.into(),
        item,
        origin: "fixture".into(),
    };
    let uses = [
        at("worker", flag("ops-port")),
        at("worker", env("OPS_PORT")),
        at("worker", env("BT_HOTKEY_SECRET")),
        at("worker", env("RUST_LOG")),
        at("worker", flag("no-such-flag")),
        at("worker", env("NO_SUCH_VAR")),
        at("workr", Item::Subcommand),
    ];
    let problems = missing(&uses, &interface);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("--no-such-flag")));
    assert!(problems.iter().any(|p| p.contains("NO_SUCH_VAR")));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`workr` does not exist"))
    );
}

#[test]
fn parsers_find_env_in_included_defines_compose_anchors_and_values() {
    let helpers = "{{- define \"x.env\" -}}\n- name: FROM_HELPER\n  value: \"1\"\n{{- if .a }}\n- name: IN_IF\n{{- end }}\n{{- end }}\n{{- define \"x.other\" -}}\n- name: NOT_INCLUDED\n{{- end }}\n";
    let defines = template_defines(helpers);
    assert_eq!(defines.len(), 2);
    let file = "args: [\"worker\", \"--bogus-flag\"]\nenv:\n  {{- include \"x.env\" . | nindent 2 }}\ndata:\n  OWN_KEY: \"x\"\n";
    let names = env_names(&with_includes(file, &defines));
    assert_eq!(names, ["OWN_KEY", "FROM_HELPER", "IN_IF"]);

    let compose = "x-sn1: &sn1\n  image: x\nservices:\n  nats:\n    image: nats\n    command: [\"--jetstream\"]\n  w1: &w\n    <<: *sn1\n    command: [\"worker\", \"--made-up\"]\n    environment:\n      MADE_UP_VAR: \"1\"\n    volumes:\n      - a:/b\n  w2: *w\n";
    let uses = compose_uses(compose, "c");
    assert!(has(&uses, "worker", flag("made-up"), "service w1"));
    assert!(has(&uses, "worker", env("MADE_UP_VAR"), "service w1"));
    assert!(
        !uses.iter().any(|u| u.item == flag("jetstream")),
        "nats is not ours: {uses:?}"
    );

    let values = "api:\n  port: 1\n  env:\n    RUST_LOG: info\n    MAX_K: \"3\"\n  service:\n    type: x\nworker:\n  env: {EXTRA_ONE: \"1\"}\n";
    assert_eq!(
        yaml_map_keys(values, &["api", "env"]),
        ["RUST_LOG", "MAX_K"]
    );
    assert_eq!(yaml_map_keys(values, &["worker", "env"]), ["EXTRA_ONE"]);
    assert!(yaml_map_keys(values, &["syncer", "env"]).is_empty());

    let hc = "case \"$role\" in\napi) ready \"$(opt --port PORT 10000)\" ;;\nworker)\n    port=\"$(opt --ops-port OPS_PORT 9100)\"\n    ;;\n*) exit 0 ;;\nesac\n";
    let uses = healthcheck_uses(hc, "hc");
    assert!(has(&uses, "api", flag("port"), "hc (api)"));
    assert!(has(&uses, "worker", env("OPS_PORT"), "hc (worker)"));
}
