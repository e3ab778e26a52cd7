#!/bin/bash
# Docker HEALTHCHECK for every role of the one image (no curl needed: bash's /dev/tcp).
# Kubernetes does not use it: the Helm chart has its own probes.
#
# The role is read from the main process's command line (PID 1, or SN1_HEALTHCHECK_PID), so
# one HEALTHCHECK line serves `sn1-gateway api`, `sn1-gateway worker`, ... The port, address or
# file of each role is its flag on that command line, else its environment variable, else the
# default, exactly as the binary resolves them. Exit 0 = healthy, 1 = unhealthy:
#   api, worker, metagraph-syncer: GET /readyz answers 200 (PORT / OPS_PORT);
#   simnet: its fake chain accepts connections and its metagraph file (if asked for) exists;
#   anything else (migrate, dendrite, a syncer run with --once): healthy while running.
#
# The lines `ROLE) ... opt --FLAG ENV DEFAULT ...` are checked against `sn1-gateway ROLE --help`
# by tests/deploy_flags.rs.
set -u

pid="${SN1_HEALTHCHECK_PID:-1}"
argv=()
mapfile -d '' -t argv 2>/dev/null <"/proc/${pid}/cmdline" || exit 1

role=""
args=()
for i in "${!argv[@]}"; do
    if [[ "${argv[$i]}" == sn1-gateway || "${argv[$i]}" == */sn1-gateway ]]; then
        role="${argv[$((i + 1))]:-standalone}"
        args=("${argv[@]:$((i + 2))}")
        break
    fi
done

# opt FLAG ENV DEFAULT: the value the binary uses for FLAG (command line, then env, then default).
opt() {
    local flag="$1" env="$2" default="$3" j
    for ((j = 0; j < ${#args[@]}; j++)); do
        case "${args[$j]}" in
        "$flag") printf '%s' "${args[$((j + 1))]:-}" && return 0 ;;
        "$flag="*) printf '%s' "${args[$j]#*=}" && return 0 ;;
        esac
    done
    printf '%s' "${!env:-$default}"
}

# has FLAG: the command line has FLAG.
has() {
    local a
    for a in "${args[@]}"; do [[ "$a" == "$1" ]] && return 0; done
    return 1
}

# listening HOST PORT: something accepts TCP connections there (a wildcard HOST means local).
listening() {
    local host="$1" port="$2"
    [[ "$host" == 0.0.0.0 || "$host" == "::" ]] && host=127.0.0.1
    [[ "$port" =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || return 1
    (exec 3<>"/dev/tcp/${host}/${port}") 2>/dev/null
}

# ready PORT: 0 when GET /readyz on 127.0.0.1:PORT answers 200 within 2 s.
ready() {
    local port="$1" status=""
    [[ "$port" =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || return 1
    exec 3<>"/dev/tcp/127.0.0.1/${port}" || return 1
    printf 'GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
    IFS= read -r -t 2 status <&3
    exec 3<&-
    [[ "$status" == "HTTP/1."[01]" 200"* ]]
}

case "$role" in
api) ready "$(opt --port PORT 10000)" ;;
worker)
    port="$(opt --ops-port OPS_PORT 9100)"
    [[ "$port" == 0 ]] || ready "$port"
    ;;
metagraph-syncer)
    port="$(opt --ops-port OPS_PORT 9101)"
    has --once || [[ "$port" == 0 ]] || ready "$port"
    ;;
simnet)
    file="$(opt --metagraph-out METAGRAPH_FILE '')"
    port="$(opt --chain-port SIMNET_CHAIN_PORT 9944)"
    host="$(opt --host SIMNET_HOST 127.0.0.1)"
    [[ -z "$file" || -s "$file" ]] && { [[ "$port" == 0 ]] || listening "$host" "$port"; }
    ;;
*) exit 0 ;;
esac
