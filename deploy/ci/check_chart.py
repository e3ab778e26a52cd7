"""Offline checks of the Helm chart, run by scripts/check-deploy.sh (in CI too).

For each values case (the chart's defaults, deploy/helm/examples/*.yaml, the chart's ci/*.yaml):
  1. `helm lint --strict` through Helm's own library (helm-python-sdk), with that case's values;
  2. the values against values.schema.json, then a render (as an install, and as an upgrade);
  3. every rendered manifest against the Kubernetes OpenAPI schemas of each pinned Kubernetes
     version (kubernetes-validate, strict: unknown fields fail); CRD kinds the package has no
     schema for (ServiceMonitor) get a structural check instead;
  4. the chart's own rules: probes on /livez and /readyz, resources, the config checksum
     annotation, the hotkey only in worker pods, the migration Job as a pre-install/pre-upgrade
     hook, unique names; and the exposure rules of deploy/ci/exposure_rules.py (metrics only on
     ClusterIP ops Services, TLS in front of the api, KEY_ID_SECRET, the migrate Job's
     NetworkPolicy, per-role NATS users equal to files/nats-permissions.json and compose's).
Then values that must be refused are refused (schema and template guards).

Exits non-zero on any problem and prints every check it made. The rendered manifests are written
to <out>/<case>/ for inspection.
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import sys

import exposure_rules
import helm_python as helm
import kubernetes_validate
import yaml

RELEASE = "sn1"
NAMESPACE = "sn1"
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
HOTKEY_ENV = {"BT_HOTKEY_SECRET", "BT_WALLET_PASSWORD", "BT_WALLET_PATH", "BT_WALLET_NAME",
              "BT_WALLET_HOTKEY", "BT_WALLET_EPHEMERAL"}


class Checker:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed = 0

    def ok(self, what: str) -> None:
        self.passed += 1
        print(f"  ok    {what}")

    def fail(self, what: str) -> None:
        self.failures.append(what)
        print(f"  FAIL  {what}")

    def check(self, cond: bool, what: str) -> None:
        (self.ok if cond else self.fail)(what)


def load_cases(chart: pathlib.Path, examples: pathlib.Path) -> list[tuple[str, dict]]:
    cases: list[tuple[str, dict]] = [("defaults", {})]
    for path in sorted(examples.glob("*.yaml")) + sorted((chart / "ci").glob("*.yaml")):
        values = yaml.safe_load(path.read_text()) or {}
        cases.append((str(path), values))
    return cases


class StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (Kubernetes and Helm refuse them; PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        keys = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in keys:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            keys.add(key)
        return super().construct_mapping(node, deep=deep)


def documents(rendered: dict[str, str]) -> list[tuple[str, dict]]:
    docs = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.load_all(text, Loader=StrictLoader):
            if doc:
                docs.append((template, doc))
    return docs


def pod_spec(doc: dict) -> dict | None:
    if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return doc["spec"]["template"]["spec"]
    return None


def component(doc: dict) -> str:
    labels = doc["spec"]["template"]["metadata"].get("labels", {})
    return labels.get("app.kubernetes.io/component", "?")


def validate_kube(c: Checker, case: str, docs: list[tuple[str, dict]], versions: list[str]) -> None:
    for template, doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if key in CRD_KINDS:
            spec = doc.get("spec", {})
            good = (bool(spec.get("selector", {}).get("matchLabels"))
                    and all(isinstance(e.get("port"), str) and e.get("path") for e in spec.get("endpoints", []))
                    and len(spec.get("endpoints", [])) > 0)
            c.check(good, f"{case}: {name} (CRD, structural: selector.matchLabels, endpoints[].port/path)")
            continue
        valid = True
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                c.fail(f"{case}: {name} against Kubernetes {version}: {path}: {e.message}")
                valid = False
            except kubernetes_validate.SchemaNotFoundError as e:
                c.fail(f"{case}: {name}: {e.message}")
                valid = False
        if valid:
            c.ok(f"{case}: {name} valid against Kubernetes {', '.join(versions)} (strict, {template})")


def chart_rules(c: Checker, case: str, values: dict, docs: list[tuple[str, dict]]) -> None:
    seen: set[tuple[str, str]] = set()
    for _, doc in docs:
        key = (doc["kind"], doc["metadata"]["name"])
        if key in seen:
            c.fail(f"{case}: duplicate {key[0]}/{key[1]}")
        seen.add(key)
    hotkey_secret = values["worker"]["hotkey"].get("existingSecret") or None
    workloads = [(t, d) for t, d in docs if pod_spec(d) is not None]
    c.check(any(component(d) == "api" for _, d in workloads), f"{case}: an api Deployment")
    c.check(any(component(d) == "worker" for _, d in workloads), f"{case}: a worker Deployment")
    if values["metagraph"]["source"] == "syncer" and values["syncer"]["enabled"]:
        c.check(any(component(d) == "syncer" for _, d in workloads), f"{case}: a syncer Deployment")
    for _, doc in workloads:
        spec = pod_spec(doc)
        role = component(doc)
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        containers = spec["containers"]
        c.check(all(ct.get("resources", {}).get("requests") for ct in containers),
                f"{case}: {name} sets resource requests")
        c.check(all(ct.get("args") and ct["args"][0] in ("api", "worker", "metagraph-syncer", "migrate")
                    for ct in containers), f"{case}: {name} runs a sn1-gateway role ({containers[0].get('args')})")
        c.check(spec.get("securityContext", {}).get("runAsNonRoot") is True, f"{case}: {name} runs as non-root")
        if doc["kind"] == "Deployment" and role in ("api", "worker", "syncer"):
            probes = containers[0]
            good = (probes.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/livez"
                    and probes.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz")
            c.check(good, f"{case}: {name} probes /livez and /readyz")
            annotations = doc["spec"]["template"]["metadata"].get("annotations", {})
            c.check("checksum/config" in annotations, f"{case}: {name} has the config checksum annotation")
        if doc["kind"] == "Job":
            hooks = doc["metadata"].get("annotations", {}).get("helm.sh/hook", "")
            c.check(set(hooks.split(",")) >= {"pre-install", "pre-upgrade"},
                    f"{case}: {name} is a pre-install/pre-upgrade hook")
        # The hotkey reaches worker pods only.
        env_names = {e["name"] for ct in containers for e in ct.get("env", [])}
        secret_refs = {e["valueFrom"]["secretKeyRef"]["name"] for ct in containers for e in ct.get("env", [])
                       if "secretKeyRef" in e.get("valueFrom", {})}
        secret_refs |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        # The api's DATABASE_URL is its own role's when postgres.apiSecretKey names one.
        db_keys = {e["valueFrom"]["secretKeyRef"]["key"] for ct in containers for e in ct.get("env", [])
                   if e["name"] == "DATABASE_URL" and "secretKeyRef" in e.get("valueFrom", {})}
        pg = values["postgres"]
        if db_keys and pg.get("existingSecret"):
            want = pg.get("apiSecretKey") if role == "api" and pg.get("apiSecretKey") else pg["existingSecretKey"]
            c.check(db_keys == {want}, f"{case}: {name} ({role}) reads DATABASE_URL from key {want} {sorted(db_keys)}")
        if role != "worker":
            leaked = (env_names & HOTKEY_ENV) | ({hotkey_secret} & secret_refs if hotkey_secret else set())
            c.check(not leaked, f"{case}: {name} ({role}) gets no hotkey material {sorted(leaked) or ''}")
    configmaps = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "ConfigMap"}
    for _, doc in workloads:
        if component(doc) == "worker" or pod_spec(doc) is None:
            continue
        for ct in pod_spec(doc)["containers"]:
            for src in ct.get("envFrom", []):
                cm = configmaps.get(src.get("configMapRef", {}).get("name"), {})
                leaked = set(cm.get("data", {})) & HOTKEY_ENV
                c.check(not leaked, f"{case}: {doc['metadata']['name']} env ConfigMap has no hotkey setting")


def must_refuse(c: Checker, chart: helm.Chart, what: str, values: dict, expect: str) -> None:
    try:
        chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except helm.HelmError as e:
        c.check(expect in str(e), f"refuses {what} (\"{expect}\")")
        return
    c.fail(f"accepted {what}: the chart should refuse it")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chart", required=True, type=pathlib.Path)
    ap.add_argument("--examples", required=True, type=pathlib.Path)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--kube-versions", required=True, help="comma-separated, e.g. 1.30.0,1.34.0")
    args = ap.parse_args()
    versions = args.kube_versions.split(",")
    c = Checker()
    print(f"helm SDK {helm.helm_sdk_version()} (helm-c {helm.helm_c_version()}), "
          f"kubernetes-validate {kubernetes_validate.__version__ if hasattr(kubernetes_validate, '__version__') else '?'}")
    with helm.Chart.load(args.chart) as chart:
        c.check(chart.schema is not None, f"{chart.name} {chart.version} ships values.schema.json")
        for case, values in load_cases(args.chart, args.examples):
            print(f"-- {case}")
            report = helm.lint(str(args.chart), values, strict=True, namespace=NAMESPACE,
                               kube_version=f"v{versions[0]}")
            problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
            c.check(not problems, f"{case}: helm lint --strict {problems or ''}")
            try:
                chart.validate_schema(values)
                c.ok(f"{case}: values match values.schema.json")
                rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
                chart.render(values, name=RELEASE, namespace=NAMESPACE, is_upgrade=True, revision=2)
            except helm.HelmError as e:
                c.fail(f"{case}: render failed: {e}")
                continue
            c.ok(f"{case}: rendered ({len(rendered)} templates, as install and as upgrade)")
            notes = next((t for n, t in rendered.items() if n.endswith("NOTES.txt")), "")
            c.check("curl --no-buffer -X POST" in notes and "/chat/" in notes, f"{case}: NOTES.txt has the first curl")
            try:
                docs = documents(rendered)
            except yaml.YAMLError as e:
                c.fail(f"{case}: rendered YAML does not parse strictly: {e}")
                continue
            c.ok(f"{case}: rendered YAML parses (no duplicate keys)")
            out = args.out / pathlib.Path(case).stem
            out.mkdir(parents=True, exist_ok=True)
            for template, text in rendered.items():
                (out / pathlib.Path(template).name).write_text(text)
            validate_kube(c, case, docs, versions)
            chart_rules(c, case, chart.merge_values(values), docs)
            exposure_rules.check(c, case, chart.merge_values(values), docs, args.chart,
                                 pathlib.Path(__file__).resolve().parents[2])
        print("-- values the chart must refuse")
        must_refuse(c, chart, "an unknown hotkey source", {"worker": {"hotkey": {"source": "plaintext"}}},
                    "value must be one of")
        must_refuse(c, chart, "a misspelt key", {"api": {"replica": 3}}, "additional properties")
        must_refuse(c, chart, "an env name that is not a variable", {"api": {"env": {"max-k": "3"}}},
                    "invalid propertyName 'max-k'")
        must_refuse(c, chart, "an env entry the chart already sets", {"api": {"env": {"MAX_K": "3"}}},
                    "api.env.MAX_K: the chart sets MAX_K")
        must_refuse(c, chart, "a secret in an env map", {"worker": {"env": {"BT_HOTKEY_SECRET": "0x00"}}},
                    "BT_HOTKEY_SECRET")
        must_refuse(c, chart, "no NATS URL", {"nats": {"existingSecret": ""}}, "nats: set nats.existingSecret")
        must_refuse(c, chart, "no API key and no insecureNoAuth", {"api": {"auth": {"existingSecret": ""}}},
                    "api.auth")
        must_refuse(c, chart, "a development API key without a key-id secret",
                    {"api": {"auth": {"existingSecret": "", "key": "k"}}}, "api.auth.keyIdSecret")
        must_refuse(c, chart, "an api Ingress without TLS", {"api": {"ingress": {"enabled": True, "host": "a.b"}}},
                    "api.ingress")
        must_refuse(c, chart, "a file metagraph without a file", {"metagraph": {"source": "file"}},
                    "metagraph.file")
        must_refuse(c, chart, "a hotkey source without its Secret", {"worker": {"hotkey": {"existingSecret": ""}}},
                    "worker.hotkey")
    print(f"chart: {c.passed} checks passed, {len(c.failures)} failed")
    for f in c.failures:
        print(f"  - {f}")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
