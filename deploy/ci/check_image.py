"""Offline checks of deploy/docker/Dockerfile and /.dockerignore (no Docker engine needed), run
by scripts/check-deploy.sh.

* the Dockerfile: every base image pinned to a tag (no :latest), a non-root USER in the final
  stage, a HEALTHCHECK, ENTRYPOINT ["sn1-gateway"] in exec form, every COPY source present;
* the build context the .dockerignore leaves: it must hold everything `cargo build -p
  sn1-gateway` reads: the workspace manifests and Cargo.lock, each member's src/, explicit
  [[bin]]/[[bench]]/[[test]]/[[example]] target files, and the files named by
  include_str!/include_bytes!/sqlx::migrate! in the sources (that is how a missing migrations
  folder or bench file would break the image build), and none of target/ or .git/.

Exits non-zero on any problem and prints every check it made.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import pathlib
import re
import shlex
import sys
import tomllib


def ignore_rules(path: pathlib.Path) -> list[tuple[bool, str]]:
    rules = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        rules.append((negate, pattern.strip("/")))
    return rules


def _matches(pattern: str, rel: str) -> bool:
    """Docker semantics (close enough): the pattern matches the path or one of its parents."""
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        if fnmatch.fnmatchcase(prefix, pattern):
            return True
        if pattern.startswith("**/") and any(
            fnmatch.fnmatchcase("/".join(parts[j:i]), pattern[3:]) for j in range(i)
        ):
            return True
    return False


def excluded(rules: list[tuple[bool, str]], rel: str) -> bool:
    out = False
    for negate, pattern in rules:
        if _matches(pattern, rel):
            out = not negate
    return out


class Checker:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed = 0

    def check(self, cond: bool, what: str) -> None:
        if cond:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            self.failures.append(what)
            print(f"  FAIL  {what}")


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def check_dockerfile(c: Checker, root: pathlib.Path, dockerfile: pathlib.Path) -> list[str]:
    instr = dockerfile_instructions(dockerfile.read_text())
    args = {}
    stages: list[list[tuple[str, str]]] = []
    copies: list[str] = []
    for word, rest in instr:
        if word == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        if word == "FROM":
            image = rest.split()[0]
            for name, value in args.items():
                image = image.replace("${%s}" % name, value)
            if not image.startswith(("chef", "planner", "builder")):
                tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
                c.check(bool(tag) and tag != "latest", f"Dockerfile: base image {image} is pinned to a tag")
            stages.append([])
        if stages:
            stages[-1].append((word, rest))
        if word == "COPY" and "--from=" not in rest:
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            copies.extend(words[:-1])
    final = stages[-1]
    users = [rest for word, rest in final if word == "USER"]
    c.check(bool(users) and users[-1].split(":")[0] not in ("root", "0"), f"Dockerfile: final stage runs as non-root (USER {users[-1] if users else '-'})")
    c.check(any(word == "HEALTHCHECK" for word, _ in final), "Dockerfile: final stage has a HEALTHCHECK")
    entry = [rest for word, rest in final if word == "ENTRYPOINT"]
    c.check(bool(entry) and json.loads(entry[-1]) == ["sn1-gateway"], 'Dockerfile: ENTRYPOINT ["sn1-gateway"] (exec form)')
    cmd = [rest for word, rest in final if word == "CMD"]
    c.check(bool(cmd) and json.loads(cmd[-1])[0] == "api", 'Dockerfile: default CMD is ["api"]')
    for src in copies:
        if src == ".":
            continue
        c.check((root / src).exists(), f"Dockerfile: COPY source {src} exists")
    return copies


def required_context(root: pathlib.Path) -> list[str]:
    need = ["Cargo.toml", "Cargo.lock"]
    manifest = tomllib.loads((root / "Cargo.toml").read_text())
    members = ["."] + [m for m in manifest.get("workspace", {}).get("members", []) if m != "."]
    for member in members:
        base = pathlib.Path(member)
        data = tomllib.loads((root / base / "Cargo.toml").read_text())
        need.append(str(base / "Cargo.toml"))
        need.append(str(base / "src"))
        if (root / base / "build.rs").exists():
            need.append(str(base / "build.rs"))
        for kind, folder in (("bin", "src/bin"), ("bench", "benches"), ("test", "tests"), ("example", "examples")):
            for target in data.get(kind, []):
                path = target.get("path") or f"{folder}/{target['name']}.rs"
                need.append(str(base / path))
        for source in (root / base / "src").rglob("*.rs"):
            text = source.read_text()
            for macro, arg in re.findall(r"\b(include_str|include_bytes|migrate)!\(\s*\"([^\"]+)\"", text):
                target = (source.parent / arg) if macro != "migrate" else (root / base / arg)
                need.append(str(target.resolve().relative_to(root.resolve())))
    return list(dict.fromkeys(str(pathlib.PurePosixPath(p)).removeprefix("./") for p in need))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, type=pathlib.Path)
    args = ap.parse_args()
    root = args.root
    c = Checker()
    dockerfile = root / "deploy/docker/Dockerfile"
    copies = check_dockerfile(c, root, dockerfile)
    rules = ignore_rules(root / ".dockerignore")
    for rel in required_context(root) + [s for s in copies if s != "."]:
        c.check((root / rel).exists() and not excluded(rules, rel), f"build context has {rel}")
    for rel in ("target", ".git", "target/debug/sn1-gateway", "deploy/helm/sn1-gateway/values.yaml"):
        c.check(excluded(rules, rel), f"build context leaves out {rel}")
    print(f"image: {c.passed} checks passed, {len(c.failures)} failed")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
