//! Keeps the deployment assets in step with the binary: every subcommand, `--flag` and
//! environment variable that the Helm chart (templates and values files), the compose file, the
//! Dockerfile and the image's healthcheck pass to `sn1-gateway` must exist in
//! `sn1-gateway <cmd> --help` (env vars show there as `[env: NAME=]`).
//!
//! The assets are read as text, by the conventions they follow:
//! * chart templates: a file named `api-*`, `worker-*`, `syncer-*` or `migrate-*` belongs to
//!   that role; its env names are `- name: NAME` entries and `NAME:` keys, in the file or in any
//!   `define` it includes (transitively); its subcommand and flags are in `args: [...]`. Other
//!   template files must not carry env names.
//! * values files: the keys of `api.env`, `worker.env`, `syncer.env`.
//! * compose: services that merge `*sn1` (or name the sn1-gateway image): `command:` and
//!   `environment:`; a `name: *alias` service repeats an anchored one.
//! * Dockerfile: `ENTRYPOINT` and `CMD`; healthcheck.sh: its `role) ... opt --flag ENV` arms.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly where it cannot go on"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What an asset passes to the binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Subcommand,
    Flag(String),
    Env(String),
}

/// One use of the binary's interface, and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Use {
    subcommand: String,
    item: Item,
    origin: String,
}

fn add(uses: &mut Vec<Use>, subcommand: &str, item: Item, origin: &str) {
    let (subcommand, origin) = (subcommand.to_string(), origin.to_string());
    uses.push(Use {
        subcommand,
        item,
        origin,
    });
}

fn env(name: &str) -> Item {
    Item::Env(name.to_string())
}

fn flag(name: &str) -> Item {
    Item::Flag(name.to_string())
}

/// The interface of one subcommand, from its --help.
#[derive(Debug, Default)]
struct CmdHelp {
    flags: BTreeSet<String>,
    envs: BTreeSet<String>,
    text: String,
}

impl CmdHelp {
    /// The variable is a clap `[env: ...]`, or one a library reads that the help names.
    fn has_env(&self, name: &str) -> bool {
        self.envs.contains(name) || (LIBRARY_ENV.contains(&name) && self.text.contains(name))
    }
}

/// Variables read by libraries rather than clap: allowed where the help text names them.
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

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

// ------------------------------------------------------------------------ the binary's --help

fn run_help(args: &[&str]) -> String {
    let bin = env!("CARGO_BIN_EXE_sn1-gateway");
    let out = Command::new(bin)
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
    let word = |s: &str, extra: char| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == extra)
            .collect()
    };
    for line in text.lines() {
        let t = line.trim_start();
        let t = if t.starts_with('-') && !t.starts_with("--") {
            t.split_once(", ").map_or(t, |x| x.1)
        } else {
            t
        };
        if let Some(rest) = t.strip_prefix("--") {
            help.flags.insert(word(rest, '.'));
        }
        for part in line.split("[env: ").skip(1) {
            help.envs.insert(word(part, '_').replace('-', ""));
        }
    }
    help
}

/// Every subcommand's interface, from the real binary.
fn binary_interface() -> BTreeMap<String, CmdHelp> {
    let top = run_help(&["--help"]);
    let commands = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1);
    commands
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(|name| (name.to_string(), parse_help(&run_help(&[name, "--help"]))))
        .collect()
}

/// Uses that the binary does not have, one readable line each.
fn missing(uses: &[Use], interface: &BTreeMap<String, CmdHelp>) -> Vec<String> {
    let mut out = Vec::new();
    for u in uses {
        let (origin, sub) = (&u.origin, &u.subcommand);
        let Some(help) = interface.get(sub) else {
            out.push(format!("{origin}: subcommand `{sub}` does not exist"));
            continue;
        };
        match &u.item {
            Item::Flag(f) if !help.flags.contains(f) => out.push(format!(
                "{origin}: `sn1-gateway {sub} --{f}` is not in its --help"
            )),
            Item::Env(e) if !help.has_env(e) => out.push(format!(
                "{origin}: `sn1-gateway {sub}` has no [env: {e}] in its --help"
            )),
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

// ------------------------------------------------------------------------ text helpers

/// Env names in text: `- name: NAME` list entries and `NAME:` mapping keys.
fn env_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim_start) {
        let key = match line.strip_prefix("- name:") {
            Some(rest) => rest.trim(),
            None if line.contains(':') => line.split(':').next().unwrap_or_default().trim(),
            None => continue,
        };
        let key = key.trim_matches('"');
        if is_env_name(key) {
            out.push(key.to_string());
        }
    }
    out
}

/// The elements of a one-line flow list: `["worker", "--x", "1"]`.
fn flow_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let items = inner
        .split(',')
        .map(|s| s.trim().trim_matches(|c| c == '"' || c == '\''));
    Some(items.filter(|s| !s.is_empty()).map(String::from).collect())
}

/// Uses of one argument vector: the subcommand (first word) and its `--flags`.
fn argv_uses(argv: &[String], origin: &str, role: Option<&str>, uses: &mut Vec<Use>) {
    let Some(sub) = argv.first() else { return };
    if let Some(role) = role {
        assert_eq!(
            sub, role,
            "{origin}: runs `{sub}` but the file belongs to role `{role}`"
        );
    }
    add(uses, sub, Item::Subcommand, origin);
    for a in argv[1..].iter().filter_map(|a| a.strip_prefix("--")) {
        add(
            uses,
            sub,
            flag(a.split('=').next().unwrap_or_default()),
            origin,
        );
    }
}

// ------------------------------------------------------------------------ Helm chart

/// The `define` blocks of Go templates: name → body.
fn template_defines(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<(String, usize)> = Vec::new(); // (define name or "", body start)
    let mut pos = 0;
    while let Some(open) = text[pos..].find("{{") {
        let start = pos + open;
        let Some(close) = text[start..].find("}}") else {
            break;
        };
        let end = start + close + 2;
        let action = text[start + 2..end - 2].trim_matches('-').trim();
        match action.split_whitespace().next().unwrap_or_default() {
            "define" => stack.push((action.split('"').nth(1).unwrap_or_default().into(), end)),
            "if" | "with" | "range" | "block" => stack.push((String::new(), end)),
            "end" => {
                if let Some((name, body)) = stack.pop().filter(|(name, _)| !name.is_empty()) {
                    out.insert(name, text[body..start].to_string());
                }
            }
            _ => {}
        }
        pos = end;
    }
    out
}

/// Names of the templates a text includes.
fn includes(text: &str) -> Vec<String> {
    let split = |marker: &'static str| {
        text.split(marker)
            .skip(1)
            .filter_map(|s| s.split('"').next())
    };
    split("include \"")
        .chain(split("template \""))
        .map(String::from)
        .collect()
}

/// The text of a file plus every define it includes, transitively.
fn with_includes(text: &str, defines: &BTreeMap<String, String>) -> String {
    let (mut seen, mut todo, mut out) = (BTreeSet::new(), includes(text), text.to_string());
    while let Some(name) = todo.pop() {
        if let Some(body) = defines.get(&name).filter(|_| seen.insert(name.clone())) {
            out = format!("{out}\n{body}");
            todo.extend(includes(body));
        }
    }
    out
}

fn role_of_template(file: &str) -> Option<&'static str> {
    let roles = [
        ("api-", "api"),
        ("worker-", "worker"),
        ("syncer-", "metagraph-syncer"),
        ("migrate-", "migrate"),
    ];
    roles
        .into_iter()
        .find(|(prefix, _)| file.starts_with(prefix))
        .map(|(_, role)| role)
}

fn files_in(dir: &Path, ext: Option<&str>) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries.map(|e| e.expect("dir entry").path()).collect();
    files.retain(|p| ext.is_none_or(|ext| p.extension().is_some_and(|e| e == ext)));
    files.sort();
    files
}

/// Uses in the chart's templates.
fn chart_template_uses(dir: &Path) -> Vec<Use> {
    let texts: Vec<(PathBuf, String)> = files_in(dir, None)
        .into_iter()
        .map(|p| (p.clone(), read(&p)))
        .collect();
    let defines: BTreeMap<String, String> = texts
        .iter()
        .flat_map(|(_, t)| template_defines(t))
        .collect();
    let mut uses = Vec::new();
    for (path, text) in &texts {
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if file.starts_with('_') {
            continue; // helpers count through the files that include them
        }
        let (origin, full) = (rel(path), with_includes(text, &defines));
        let Some(role) = role_of_template(&file) else {
            let stray = env_names(&full);
            assert!(
                stray.is_empty(),
                "{origin} sets env vars {stray:?} but is not a role file (api-*, worker-*, syncer-*, migrate-*)"
            );
            continue;
        };
        // Containers keep the image's ENTRYPOINT (sn1-gateway): the role is in `args`.
        for list in full
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("args:").and_then(flow_list))
        {
            argv_uses(&list, &origin, Some(role), &mut uses);
        }
        for name in env_names(&full) {
            add(&mut uses, role, Item::Env(name), &origin);
        }
    }
    uses
}

/// Keys of the mapping at `path` (e.g. `["api", "env"]`) in a block-style YAML text.
fn yaml_map_keys(text: &str, path: &[&str]) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_comment(l))
        .collect();
    let (mut from, mut to, mut level) = (0, lines.len(), 0);
    let key_of = |l: &str| {
        l.trim_start()
            .split(':')
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches('"')
            .to_string()
    };
    for key in path {
        let Some(i) = (from..to).find(|&i| indent(lines[i]) == level && key_of(lines[i]) == *key)
        else {
            return Vec::new();
        };
        let after = lines[i].split_once(':').map_or("", |x| x.1).trim();
        if after.starts_with('{') {
            // A flow mapping on the same line: `env: {A: "1", B: x}`.
            let inner = after.trim_start_matches('{').trim_end_matches('}');
            return inner
                .split(',')
                .map(key_of)
                .filter(|k| !k.is_empty())
                .collect();
        }
        from = i + 1;
        to = (from..to)
            .find(|&j| indent(lines[j]) <= level)
            .unwrap_or(to);
        level = lines.get(from).map_or(level + 2, |l| indent(l));
    }
    (from..to)
        .filter(|&i| indent(lines[i]) == level)
        .map(|i| key_of(lines[i]))
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
            add(
                &mut uses,
                role,
                Item::Env(name),
                &format!("{} ({section}.env)", rel(path)),
            );
        }
    }
    uses
}

// ------------------------------------------------------------------------ compose, image

/// Uses in a compose file.
fn compose_uses(text: &str, origin: &str) -> Vec<Use> {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_comment(l))
        .collect();
    let start = lines
        .iter()
        .position(|l| *l == "services:")
        .unwrap_or_else(|| panic!("{origin}: no `services:`"));
    let end = (start + 1..lines.len())
        .find(|&i| indent(lines[i]) == 0)
        .unwrap_or(lines.len());
    let heads: Vec<usize> = (start + 1..end)
        .filter(|&i| indent(lines[i]) == 2)
        .collect();
    let mut uses = Vec::new();
    for (n, &h) in heads.iter().enumerate() {
        let (name, rest) = lines[h].trim().split_once(':').unwrap_or_default();
        let block = &lines[h + 1..heads.get(n + 1).copied().unwrap_or(end)];
        let ours = |l: &&str| {
            l.trim() == "<<: *sn1" || (l.trim().starts_with("image:") && l.contains("sn1-gateway"))
        };
        if rest.trim().starts_with('*') || !block.iter().any(ours) {
            continue; // an alias of a service checked at its anchor, or not our image
        }
        let origin = format!("{origin} (service {name})");
        let command = block
            .iter()
            .find_map(|l| l.trim().strip_prefix("command:").and_then(flow_list));
        let argv = command.unwrap_or_else(|| vec!["api".to_string()]); // the image's CMD
        argv_uses(&argv, &origin, None, &mut uses);
        if let Some(at) = block.iter().position(|l| l.trim() == "environment:") {
            let level = indent(block[at]);
            for l in block[at + 1..].iter().take_while(|l| indent(l) > level) {
                let key = l
                    .trim()
                    .trim_start_matches("- ")
                    .split([':', '='])
                    .next()
                    .unwrap_or_default();
                if is_env_name(key.trim()) {
                    add(&mut uses, &argv[0], env(key.trim()), &origin);
                }
            }
        }
    }
    uses
}

/// Uses in the Dockerfile: the default subcommand.
fn dockerfile_uses(text: &str, origin: &str) -> Vec<Use> {
    let last = |word: &str| {
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix(word).and_then(flow_list))
    };
    assert_eq!(
        last("ENTRYPOINT "),
        Some(vec!["sn1-gateway".to_string()]),
        "{origin}: ENTRYPOINT"
    );
    let mut uses = Vec::new();
    argv_uses(&last("CMD ").unwrap_or_default(), origin, None, &mut uses);
    uses
}

/// Uses in healthcheck.sh: the `role) ... opt --flag ENV default` arms of its `case`.
fn healthcheck_uses(text: &str, origin: &str) -> Vec<Use> {
    let (mut uses, mut role) = (Vec::new(), None::<String>);
    let is_role = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '-');
    for t in text.lines().map(str::trim_start) {
        let head = t.split_once(") ").map(|x| x.0).or(t.strip_suffix(')'));
        if let Some(head) = head.filter(|h| is_role(h)) {
            role = Some(head.to_string());
        }
        if let Some(r) = &role {
            let origin = format!("{origin} ({r})");
            for part in t.split("opt --").skip(1) {
                let mut words = part.split_whitespace();
                if let (Some(f), Some(e)) = (words.next(), words.next()) {
                    argv_uses(&[r.clone(), format!("--{f}")], &origin, None, &mut uses);
                    add(&mut uses, r, env(e), &origin);
                }
            }
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
    values.extend(files_in(&chart.join("ci"), Some("yaml")));
    values.extend(files_in(&deploy.join("helm/examples"), Some("yaml")));
    uses.extend(values.iter().flat_map(|v| values_uses(v)));
    let (compose, docker) = (deploy.join("compose/compose.yaml"), deploy.join("docker"));
    uses.extend(compose_uses(&read(&compose), &rel(&compose)));
    uses.extend(dockerfile_uses(
        &read(&docker.join("Dockerfile")),
        "deploy/docker/Dockerfile",
    ));
    uses.extend(healthcheck_uses(
        &read(&docker.join("healthcheck.sh")),
        "deploy/docker/healthcheck.sh",
    ));
    uses.sort();
    uses.dedup();
    uses
}

fn has(uses: &[Use], sub: &str, item: &Item, origin_part: &str) -> bool {
    uses.iter()
        .any(|u| u.subcommand == sub && u.item == *item && u.origin.contains(origin_part))
}

/// Uses the scan must find (so a parser that finds nothing cannot pass): role, kind, name, where.
const EXPECTED: &str = "
    api env EXPECTED_ACCESS_KEY templates/api-deployment.yaml
    api env NATS_URL templates/api-deployment.yaml
    api env MAX_IN_FLIGHT templates/api-configmap.yaml
    api env KEY_ID_SECRET templates/api-deployment.yaml
    api env OPS_PORT templates/api-configmap.yaml
    worker env BT_HOTKEY_SECRET templates/worker-deployment.yaml
    worker env METAGRAPH_FILE templates/worker-configmap.yaml
    worker env DATABASE_URL templates/worker-deployment.yaml
    migrate env DATABASE_URL templates/migrate-job.yaml
    metagraph-syncer sub - templates/syncer-deployment.yaml
    metagraph-syncer env SUBTENSOR_NETWORK templates/syncer-configmap.yaml
    metagraph-syncer env DATABASE_URL templates/syncer-deployment.yaml
    worker env RUST_LOG examples/production.yaml
    simnet flag host compose.yaml_(service_simnet)
    worker env BT_WALLET_EPHEMERAL compose.yaml_(service_worker-1)
    api env EXPECTED_ACCESS_KEY compose.yaml_(service_api-1)
    api env KEY_ID_SECRET compose.yaml_(service_api-1)
    api env OPS_PORT compose.yaml_(service_api-1)
    metagraph-syncer env SUBTENSOR_NETWORK compose.yaml_(service_syncer-1)
    simnet env SIMNET_CHAIN_PORT compose.yaml_(service_simnet)
    api sub - deploy/docker/Dockerfile
    worker flag ops-port healthcheck.sh_(worker)
    api env PORT healthcheck.sh_(api)
    metagraph-syncer flag ops-port healthcheck.sh_(metagraph-syncer)
    simnet env SIMNET_HOST healthcheck.sh_(simnet)";

#[test]
fn deploy_assets_pass_only_what_the_binary_has() {
    let uses = all_uses();
    for line in EXPECTED.lines().filter(|l| !l.trim().is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let item = match w[1] {
            "env" => env(w[2]),
            "flag" => flag(w[2]),
            _ => Item::Subcommand,
        };
        let origin = w[3].replace('_', " ");
        assert!(
            has(&uses, w[0], &item, &origin),
            "expected {line:?} among:\n{uses:#?}"
        );
    }
    let interface = binary_interface();
    assert!(
        interface
            .get("worker")
            .is_some_and(|h| h.envs.contains("NATS_URL") && h.flags.contains("ops-port"))
    );
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
        "Usage: sn1-gateway worker [OPTIONS]

Options:
      --ops-port <OPS_PORT>
          [env: OPS_PORT=]
      --wallet.secret <S>
          [env: BT_HOTKEY_SECRET]
      --log-format <F>
          `text` or `json` log lines (filter with RUST_LOG)
  -h, --help
          Print help
",
    );
    let flags: Vec<&str> = help.flags.iter().map(String::as_str).collect();
    assert_eq!(flags, ["help", "log-format", "ops-port", "wallet.secret"]);
    let envs: Vec<&str> = help.envs.iter().map(String::as_str).collect();
    assert_eq!(envs, ["BT_HOTKEY_SECRET", "OPS_PORT"]);
    let interface = BTreeMap::from([("worker".to_string(), help)]);
    let mut uses = Vec::new();
    for item in [
        flag("ops-port"),
        env("OPS_PORT"),
        env("BT_HOTKEY_SECRET"),
        env("RUST_LOG"),
    ] {
        add(&mut uses, "worker", item, "fixture");
    }
    assert!(missing(&uses, &interface).is_empty());
    add(&mut uses, "worker", flag("no-such-flag"), "fixture");
    add(&mut uses, "worker", env("NO_SUCH_VAR"), "fixture");
    add(&mut uses, "workr", Item::Subcommand, "fixture");
    let problems = missing(&uses, &interface);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`sn1-gateway worker --no-such-flag` is not in its --help"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("has no [env: NO_SUCH_VAR]"))
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("subcommand `workr` does not exist"))
    );
}

#[test]
fn parsers_follow_includes_anchors_values_and_case_arms() {
    let helpers = r#"{{- define "x.env" -}}
- name: FROM_HELPER
{{- if .a }}
- name: IN_IF
{{- end }}
{{- end }}
{{- define "x.other" -}}
- name: NOT_INCLUDED
{{- end }}"#;
    let defines = template_defines(helpers);
    assert_eq!(defines.len(), 2);
    let file = "args: [\"worker\"]\nenv:\n  {{- include \"x.env\" . | nindent 2 }}\ndata:\n  OWN_KEY: \"x\"\n";
    assert_eq!(
        env_names(&with_includes(file, &defines)),
        ["OWN_KEY", "FROM_HELPER", "IN_IF"]
    );

    let compose = r#"x-sn1: &sn1
  image: x
services:
  nats:
    image: nats
    command: ["--jetstream"]
  w1: &w
    <<: *sn1
    command: ["worker", "--made-up"]
    environment:
      MADE_UP_VAR: "1"
    volumes:
      - a:/b
  w2: *w
"#;
    let uses = compose_uses(compose, "c");
    assert!(has(&uses, "worker", &flag("made-up"), "service w1"));
    assert!(has(&uses, "worker", &env("MADE_UP_VAR"), "service w1"));
    assert_eq!(uses.len(), 3, "nats is not ours, w2 repeats w1: {uses:#?}");

    let values = "api:\n  port: 1\n  env:\n    # a comment\n    RUST_LOG: info\n    MAX_K: \"3\"\n  service:\n    type: x\nworker:\n  env: {EXTRA_ONE: \"1\"}\nsyncer:\n  env: {}\n";
    assert_eq!(
        yaml_map_keys(values, &["api", "env"]),
        ["RUST_LOG", "MAX_K"]
    );
    assert_eq!(yaml_map_keys(values, &["worker", "env"]), ["EXTRA_ONE"]);
    assert!(yaml_map_keys(values, &["syncer", "env"]).is_empty());

    let hc = "case \"$role\" in\napi) ready \"$(opt --port PORT 10000)\" ;;\nworker)\n    port=\"$(opt --ops-port OPS_PORT 9100)\"\n    ;;\n*) exit 0 ;;\nesac\n";
    let uses = healthcheck_uses(hc, "hc");
    assert!(has(&uses, "api", &flag("port"), "hc (api)"));
    assert!(has(&uses, "worker", &env("OPS_PORT"), "hc (worker)"));
    assert_eq!(uses.len(), 6, "{uses:#?}");
}
