#!/usr/bin/env bash
# Validates the deployment assets offline (CI runs it before the tests; no Docker engine, no
# cluster needed):
#   1. the image: Dockerfile rules and the build context .dockerignore leaves (deploy/ci/check_image.py)
#   2. yamllint: the compose file, the chart's values files, Chart.yaml, the examples
#   3. the Helm chart: lint, render (defaults, deploy/helm/examples/*.yaml, the chart's ci/*.yaml),
#      every manifest against the Kubernetes schemas, the chart's own rules (deploy/ci/check_chart.py)
#   4. the compose file: `docker-compose config -q`, and every service of the local stack is there
# The Python tools live in a venv under target/deploy-venv (created once, reused; pinned
# versions). docker-compose comes from the Debian package, installed when missing.
# Exits non-zero on the first failing step; prints what it checked and how long each step took.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_VERSIONS="${KUBE_VERSIONS:-1.29.0,1.37.0}" # the chart's minimum and the newest schemas shipped
VENV="${DEPLOY_VENV:-target/deploy-venv}"
REQUIREMENTS="helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 yamllint==1.38.0"
OUT="target/deploy-rendered"

ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
secs() { printf '%d.%01ds' $(($1 / 1000)) $(($1 % 1000 / 100)); }
start=$(ms)
step_start=$start
STEP=""
step() {
  local now
  now=$(ms)
  if [ -n "$STEP" ]; then
    echo "== $STEP: done in $(secs $((now - step_start)))"
  fi
  STEP="$1"
  step_start=$now
  if [ -n "$STEP" ]; then echo "== $STEP"; fi
}

step "python tools ($VENV: $REQUIREMENTS)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$REQUIREMENTS" ]; then
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  if ! python3 -m venv "$VENV"; then
    echo "python3 cannot make a venv: installing python3-venv from the Debian packages"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$VENV"
    python3 -m venv "$VENV"
  fi
  # shellcheck disable=SC2086 # the list is meant to split into package specs
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $REQUIREMENTS
  echo "$REQUIREMENTS" >"$VENV/.requirements"
else
  echo "reusing $VENV"
fi

step "image: Dockerfile and build context"
"$VENV/bin/python" deploy/ci/check_image.py --root .

step "yamllint"
yaml_files=(
  deploy/compose/compose.yaml
  deploy/helm/sn1-gateway/Chart.yaml
  deploy/helm/sn1-gateway/values.yaml
  deploy/helm/sn1-gateway/ci/*.yaml
  deploy/helm/examples/*.yaml
)
"$VENV/bin/yamllint" --strict -c deploy/ci/yamllint.yaml "${yaml_files[@]}"
printf '  ok    %s\n' "${yaml_files[@]}"

step "helm chart: lint, render, Kubernetes $KUBE_VERSIONS schemas"
rm -rf "$OUT"
"$VENV/bin/python" deploy/ci/check_chart.py --chart deploy/helm/sn1-gateway \
  --examples deploy/helm/examples --out "$OUT" --kube-versions "$KUBE_VERSIONS"
echo "rendered manifests: $OUT/"

step "compose: docker-compose config"
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "installing docker-compose from the Debian packages"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi
docker-compose --version
# The compose file has no default API key: it must refuse to start without one.
if refusal=$(env -u SN1_API_KEY -u SN1_KEY_ID_SECRET docker-compose -f deploy/compose/compose.yaml config -q 2>&1); then
  echo "  FAIL  compose: starts without SN1_API_KEY and SN1_KEY_ID_SECRET" && exit 1
fi
case "$refusal" in
  *SN1_API_KEY*) echo "  ok    compose refuses to start without SN1_API_KEY" ;;
  *) echo "  FAIL  compose: the refusal does not name SN1_API_KEY: $refusal" && exit 1 ;;
esac
export SN1_API_KEY=check-deploy SN1_KEY_ID_SECRET=check-deploy-key-id-secret
docker-compose -f deploy/compose/compose.yaml config -q
echo "  ok    deploy/compose/compose.yaml"
services=$(docker-compose -f deploy/compose/compose.yaml config --services | sort | tr '\n' ' ')
echo "  services: $services"
for want in nats postgres migrate simnet syncer-1 syncer-2 worker-1 worker-2 api-1 api-2 lb; do
  case " $services " in
    *" $want "*) ;;
    *) echo "  FAIL  compose: service $want is missing" && exit 1 ;;
  esac
done
echo "  ok    compose has every service of the local stack"

step ""
echo "== check-deploy: all passed in $(secs $(($(ms) - start)))"
