#!/usr/bin/env bash
# Makes sure the services the tests use are up on this machine: NATS with JetStream on
# 127.0.0.1:4222 and PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`). Starts them
# when they are installed but stopped, installs them from the Debian packages when missing;
# installs Chromium and its WebDriver for the browser test the same way.
# Idempotent; safe to run on a machine where both already run.
set -euo pipefail

log() { echo "[services] $*" >&2; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 100); do
    listening "$port" && return 0
    sleep 0.2
  done
  log "$name did not come up on 127.0.0.1:$port"
  return 1
}

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

ensure_nats() {
  # The fault tests start servers of their own: the binary must be there even when a server
  # already listens.
  if [ ! -x /usr/sbin/nats-server ]; then
    log "installing nats-server from the Debian packages"
    apt_install nats-server
  fi
  if listening 4222; then
    log "NATS already listening on 127.0.0.1:4222"
    return
  fi
  if [ ! -x /usr/sbin/nats-server ]; then
    log "installing nats-server from the Debian packages"
    apt_install nats-server
  fi
  mkdir -p /var/lib/nats-server
  log "starting nats-server with JetStream"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 nats-server
}

ensure_postgres() {
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "installing postgresql from the Debian packages"
    apt_install postgresql
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -Eq '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    log "setting trust auth for 127.0.0.1 in $hba"
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    if listening 5432; then
      pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
    fi
  fi
  if ! listening 5432; then
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_port 5432 postgresql
  else
    log "PostgreSQL already listening on 127.0.0.1:5432"
  fi
  for db in test; do
    if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1; then
      log "creating database $db"
      psql -h 127.0.0.1 -U postgres -c "create database $db" >/dev/null
    fi
  done
}

ensure_chromium() {
  # tests/web.rs drives Debian's chromium through chromedriver (WebDriver).
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    log "installing chromium and chromium-driver from the Debian packages (tests/web.rs)"
    apt_install chromium chromium-driver
  fi
}

ensure_nats
ensure_postgres
ensure_chromium
