#!/bin/sh
# Entrypoint of the kfdb image (docker/README.md). A plain POSIX script: the tests run it outside
# any container with KFDB_BIN pointing at the kfdb under test.
#
#   no arguments, or a first argument starting with "-"   kfdb serve ARGS...
#   serve | topic | key | user | config | healthcheck ...  kfdb ARGS...
#   anything else                                          run it as given (e.g. sh)
#
# Container defaults, each only when not set already:
#   KFDB_LISTEN=0.0.0.0:9092        (not when KFDB_LISTENERS names the listeners)
#   KFDB_METRICS_LISTEN=0.0.0.0:9100  (set it empty to turn the HTTP listener off; the image's
#                                      HEALTHCHECK asks it, KFDB_HEALTHCHECK_URL if moved)
#   KFDB_DATA_DIR=/var/lib/kfdb
#   KFDB_BIN=kfdb                   (the binary, found on PATH)
#
# FoundationDB: FDB_CLUSTER_FILE_CONTENTS (a connection string, e.g. docker:docker@fdb:4500) is
# written to KFDB_FDB_CLUSTER_FILE (default: $KFDB_DATA_DIR/fdb.cluster) before kfdb starts. Host
# names in it are replaced by their IPv4 address: FoundationDB's documentation still describes
# coordinators as IP:PORT, so the file holds what every 7.x client accepts.
set -eu

KFDB_BIN=${KFDB_BIN:-kfdb}

log() {
    printf 'docker-entrypoint: %s\n' "$*" >&2
}

# One coordinator address (host:port, host:port:tls, [v6]:port) with its host resolved.
resolve_address() {
    addr=$1
    case $addr in
        \[*) printf '%s' "$addr"; return 0 ;;  # an IPv6 literal
    esac
    host=${addr%%:*}
    rest=${addr#"$host"}
    case $host in
        *[!0-9.]*) ;;  # a name: resolve it below
        *) printf '%s' "$addr"; return 0 ;;  # already an IPv4 address
    esac
    tries=${KFDB_FDB_RESOLVE_TRIES:-30}
    while :; do
        ip=$(getent ahostsv4 "$host" 2>/dev/null | awk 'NR == 1 { print $1 }') || ip=
        if [ -z "$ip" ]; then
            ip=$(getent hosts "$host" 2>/dev/null | awk 'NR == 1 { print $1 }') || ip=
        fi
        if [ -n "$ip" ]; then
            case $ip in
                *:*) ip="[$ip]" ;;
            esac
            printf '%s%s' "$ip" "$rest"
            return 0
        fi
        tries=$((tries - 1))
        if [ "$tries" -le 0 ]; then
            log "cannot resolve FoundationDB coordinator host $host"
            return 1
        fi
        sleep 1
    done
}

# description:id@addr,addr,... with every addr resolved.
resolve_connection_string() {
    case $1 in
        *@*) ;;
        *) log "FDB_CLUSTER_FILE_CONTENTS=$1: expected description:id@host:port[,host:port...]"; return 1 ;;
    esac
    prefix=${1%%@*}
    list=${1#*@}
    resolved=
    old_ifs=$IFS
    IFS=,
    # shellcheck disable=SC2086 # split on commas on purpose
    set -- $list
    IFS=$old_ifs
    for addr in "$@"; do
        one=$(resolve_address "$addr") || return 1
        resolved=${resolved:+$resolved,}$one
    done
    printf '%s@%s\n' "$prefix" "$resolved"
}

# Defaults for a container.
if [ -z "${KFDB_LISTEN:-}" ] && [ -z "${KFDB_LISTENERS:-}" ]; then
    export KFDB_LISTEN=0.0.0.0:9092
fi
if [ -z "${KFDB_METRICS_LISTEN+set}" ]; then
    export KFDB_METRICS_LISTEN=0.0.0.0:9100
elif [ -z "$KFDB_METRICS_LISTEN" ]; then
    unset KFDB_METRICS_LISTEN
fi
export KFDB_DATA_DIR="${KFDB_DATA_DIR:-/var/lib/kfdb}"

# FoundationDB's cluster file.
if [ -n "${FDB_CLUSTER_FILE_CONTENTS:-}" ]; then
    export KFDB_FDB_CLUSTER_FILE="${KFDB_FDB_CLUSTER_FILE:-$KFDB_DATA_DIR/fdb.cluster}"
    contents=$(resolve_connection_string "$FDB_CLUSTER_FILE_CONTENTS")
    mkdir -p "$(dirname "$KFDB_FDB_CLUSTER_FILE")"
    printf '%s\n' "$contents" >"$KFDB_FDB_CLUSTER_FILE"
    log "wrote $KFDB_FDB_CLUSTER_FILE: $contents"
fi

if [ "$#" -eq 0 ]; then
    set -- "$KFDB_BIN" serve
else
    case $1 in
        -*) set -- "$KFDB_BIN" serve "$@" ;;
        serve | topic | key | user | config | healthcheck) set -- "$KFDB_BIN" "$@" ;;
    esac
fi
exec "$@"
