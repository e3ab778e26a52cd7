#!/bin/bash
# Docker HEALTHCHECK for every role of the one image (no curl needed: bash's /dev/tcp).
# Kubernetes does not use it: the Helm chart has its own probes.
#
# The role is read from the main process's command line (PID 1, or SN1_HEALTHCHECK_PID), so
# one HEALTHCHECK line serves `sn1-gateway api`, `sn1-gateway worker`, ... The port or file of
# each role is its flag on that command line, else its environment variable, else the
# default, exactly as the binary resolves them. Exit 0 = healthy, 1 = unhealthy.
#
# The lines `ROLE) ... opt --FLAG ENV DEFAULT ...` are checked against `sn1-gateway ROLE --help`
# by tests/deploy_flags.rs.
set -u

pid="${SN1_HEALTHCHECK_PID:-1}"
argv=()
mapfile -d '' -t argv <"/proc/${pid}/cmdline" 2>/dev/null || exit 1

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
simnet)
    file="$(opt --metagraph-out METAGRAPH_FILE '')"
    [[ -n "$file" && -s "$file" ]]
    ;;
*) exit 0 ;;
esac
