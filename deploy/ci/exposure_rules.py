"""The chart's exposure rules (issue #17, finding 9), checked on every rendered values case by
deploy/ci/check_chart.py:

  * /metrics never behind a public Service: the api's ops port is on its own ClusterIP Service
    (the one the ServiceMonitor selects), never on the api Service; the api pods get OPS_PORT;
  * TLS in front of the api where the case says so (the production example: an Ingress with a
    TLS section and a cert-manager issuer, and no LoadBalancer or NodePort Service at all);
  * KEY_ID_SECRET reaches every authenticating api pod from a Secret;
  * the migrate hook Job has a NetworkPolicy (no ingress; DNS and Postgres only) that exists
    before it (a hook of lower weight);
  * per-role NATS users: each role reads its own key of the NATS Secret, and the rendered
    `authorization` block holds exactly the subjects of files/nats-permissions.json for the
    prefix — for the prefix sn1, byte for byte deploy/compose/nats.conf.
"""

from __future__ import annotations

import json
import pathlib
import re

ROLES = {"api": "api", "worker": "worker", "syncer": "syncer"}
USER_LINE = re.compile(
    r'\{user: "(?P<user>[^"]+)", password: \$(?P<pw>\w+), permissions: '
    r'\{publish: \[(?P<pub>[^\]]*)\], subscribe: \[(?P<sub>[^\]]*)\]\}\}')


def expected_permissions(chart: pathlib.Path, prefix: str) -> dict[str, dict[str, list[str]]]:
    stream = prefix.upper().replace("-", "_")
    text = (chart / "files" / "nats-permissions.json").read_text()
    text = text.replace("{prefix}", prefix).replace("{STREAM}", stream).replace("{consumer}", stream.lower())
    data = json.loads(text)
    return {role: data[role] for role in ROLES}


def parse_authorization(text: str) -> dict[str, dict[str, list[str]]]:
    out = {}
    for m in USER_LINE.finditer(text):
        split = lambda s: [x.strip().strip('"') for x in s.split(",") if x.strip()]  # noqa: E731
        out[m["user"]] = {"publish": split(m["pub"]), "subscribe": split(m["sub"]), "password": m["pw"]}
    return out


def component(doc: dict) -> str:
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")


def check(c, case: str, values: dict, docs: list[tuple[str, dict]], chart: pathlib.Path,
          root: pathlib.Path) -> None:
    by_kind: dict[str, list[dict]] = {}
    for _, doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    services = by_kind.get("Service", [])
    api = values["api"]

    # /metrics only on ClusterIP ops Services.
    for svc in services:
        ports = {p.get("name") for p in svc["spec"]["ports"]}
        scraped = svc["metadata"].get("labels", {}).get("sn1-gateway/metrics") == "true"
        public = svc["spec"].get("type", "ClusterIP") != "ClusterIP"
        if component(svc) == "api" and "ops" not in ports:
            c.check(not scraped, f"{case}: Service/{svc['metadata']['name']} (public api) is not scraped")
        if scraped or "ops" in ports:
            c.check(not public, f"{case}: Service/{svc['metadata']['name']} with the ops port is ClusterIP")
    api_ops = [s for s in services if component(s) == "api" and any(p.get("name") == "ops" for p in s["spec"]["ports"])]
    c.check(len(api_ops) == 1, f"{case}: one Service for the api's ops port")
    api_pods = [d for d in by_kind.get("Deployment", []) if component(d) == "api"]
    for dep in api_pods:
        ct = dep["spec"]["template"]["spec"]["containers"][0]
        c.check(any(p.get("name") == "ops" and p["containerPort"] == api["opsPort"] for p in ct.get("ports", [])),
                f"{case}: the api container declares its ops port {api['opsPort']}")
        env = {e["name"]: e for e in ct.get("env", [])}
        if not api["auth"].get("insecureNoAuth"):
            c.check("secretKeyRef" in env.get("KEY_ID_SECRET", {}).get("valueFrom", {}),
                    f"{case}: the api gets KEY_ID_SECRET from a Secret")
    api_cm = [d for d in by_kind.get("ConfigMap", []) if component(d) == "api" and "OPS_PORT" in d.get("data", {})]
    c.check(any(d["data"]["OPS_PORT"] == str(api["opsPort"]) for d in api_cm), f"{case}: the api's OPS_PORT is set")

    # TLS in front of the api.
    ingresses = [d for d in by_kind.get("Ingress", []) if component(d) == "api"]
    if api.get("ingress", {}).get("enabled"):
        c.check(len(ingresses) == 1 and ingresses[0]["spec"].get("tls"), f"{case}: the api Ingress terminates TLS")
    if "production" in case:
        c.check(not any(s["spec"].get("type") in ("LoadBalancer", "NodePort") for s in services),
                f"{case}: no plain-HTTP LoadBalancer or NodePort Service")
        c.check(bool(ingresses) and any(k.startswith("cert-manager.io/") for k in
                                        ingresses[0]["metadata"].get("annotations", {})),
                f"{case}: the api Ingress gets its certificate from cert-manager")

    # The migrate hook Job's NetworkPolicy.
    if values["migrations"]["enabled"] and values["networkPolicy"]["enabled"]:
        pols = [d for d in by_kind.get("NetworkPolicy", []) if component(d) == "migrate"]
        job = next((d for d in by_kind.get("Job", []) if component(d) == "migrate"), None)
        ok = len(pols) == 1 and job is not None
        if ok:
            pol = pols[0]
            ports = {p["port"] for rule in pol["spec"].get("egress", []) for p in rule.get("ports", [])}
            weight = lambda d: int(d["metadata"].get("annotations", {}).get("helm.sh/hook-weight", "0"))  # noqa: E731
            ok = (pol["spec"].get("ingress") == [] and set(pol["spec"]["policyTypes"]) == {"Ingress", "Egress"}
                  and ports == {53, values["networkPolicy"]["postgresPort"]}
                  and "pre-install" in pol["metadata"].get("annotations", {}).get("helm.sh/hook", "")
                  and weight(pol) < weight(job))
        c.check(ok, f"{case}: the migrate Job has a NetworkPolicy (no ingress; DNS, Postgres) created before it")

    # With an OTLP endpoint, every role's NetworkPolicy lets it reach the collector.
    np_values = values["networkPolicy"]
    if np_values["enabled"] and (values["otel"].get("endpoint") or values["otel"].get("tracesEndpoint")):
        for pol in by_kind.get("NetworkPolicy", []):
            if component(pol) not in ROLES:
                continue
            ports = {p.get("port") for rule in pol["spec"].get("egress", []) for p in rule.get("ports", [])}
            c.check(np_values["otelPort"] in ports,
                    f"{case}: the {component(pol)} may reach the OTLP collector on {np_values['otelPort']}")

    # Per-role NATS users.
    nats = values["nats"]
    if nats["roleUsers"]["enabled"] and nats["existingSecret"]:
        for dep in by_kind.get("Deployment", []):
            role = component(dep)
            if role not in ROLES:
                continue
            env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0].get("env", [])}
            ref = env.get("NATS_URL", {}).get("valueFrom", {}).get("secretKeyRef", {})
            c.check(ref.get("key") == nats["roleUsers"]["keys"][role],
                    f"{case}: the {role} reads its own NATS user's URL ({ref.get('key')})")
        cms = [d for d in by_kind.get("ConfigMap", []) if "authorization.conf" in d.get("data", {})]
        c.check(len(cms) == 1, f"{case}: a ConfigMap with the NATS users")
        if cms:
            text = cms[0]["data"]["authorization.conf"]
            prefix = nats["prefix"]
            users = parse_authorization(text)
            want = expected_permissions(chart, prefix)
            same = set(users) == {f"{prefix}-{r}" for r in ROLES} and all(
                users[f"{prefix}-{r}"]["publish"] == want[r]["publish"]
                and users[f"{prefix}-{r}"]["subscribe"] == want[r]["subscribe"] for r in ROLES)
            c.check(same, f"{case}: the NATS users hold exactly files/nats-permissions.json's subjects")
            if prefix == "sn1":
                compose = (root / "deploy" / "compose" / "nats.conf").read_text()
                c.check(text == compose, f"{case}: the NATS users are deploy/compose/nats.conf's")
