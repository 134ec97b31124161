#!/usr/bin/env bash
# Starts, stops and reports the real services that tests, load tests and
# the example configs use, on this machine, without docker.
#
#   scripts/services.sh up|down|status [redis|all]     (default: all)
#
# redis: Debian's redis-server (installed when missing) on 127.0.0.1 port
#   ${INCIDENTD_REDIS_PORT:-6390}, data, pidfile and log under
#   ${INCIDENTD_SERVICES_DIR:-$HOME/.cache/incidentd-services}/redis.
# kafka, pulsar: not supported yet (exit 2).
#
# `up` is idempotent: a running redis-server started by this script is
# reused. `down` stops only what this script started (the pid in its
# pidfile), so a Redis someone else runs is never touched.
set -euo pipefail

SERVICES_DIR="${INCIDENTD_SERVICES_DIR:-$HOME/.cache/incidentd-services}"
REDIS_PORT="${INCIDENTD_REDIS_PORT:-6390}"
REDIS_DIR="$SERVICES_DIR/redis"
REDIS_PIDFILE="$REDIS_DIR/redis.pid"
REDIS_LOG="$REDIS_DIR/redis.log"
# How long to wait for Redis to answer or to exit, in seconds.
WAIT_SECONDS=20

usage() {
    echo "usage: $0 up|down|status [redis|all]" >&2
    exit 64
}

# Prints the pid from the pidfile when that process is alive and is a
# redis-server; a stale pidfile (e.g. after a reboot) names nothing.
redis_pid() {
    [[ -f "$REDIS_PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$REDIS_PIDFILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Pids are reused: check it is still our server, not an unrelated process.
    grep -q "redis-server" "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

redis_install() {
    if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
        return
    fi
    echo "installing redis-server (Debian package)"
    # apt-cache is empty or stale until the first update.
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
}

redis_up() {
    redis_install
    mkdir -p "$REDIS_DIR"
    if pid="$(redis_pid)"; then
        echo "redis: already up (pid $pid, port $REDIS_PORT)"
    else
        # Append-only with an fsync per second: a test or load run survives a
        # restart of Redis; RDB snapshots are off, one persistence is enough.
        redis-server \
            --port "$REDIS_PORT" \
            --bind 127.0.0.1 \
            --protected-mode yes \
            --dir "$REDIS_DIR" \
            --pidfile "$REDIS_PIDFILE" \
            --logfile "$REDIS_LOG" \
            --daemonize yes \
            --appendonly yes \
            --appendfsync everysec \
            --save ""
    fi
    local waited=0
    until [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == "PONG" ]]; do
        if ((waited >= WAIT_SECONDS * 10)); then
            echo "redis: no PONG on 127.0.0.1:$REDIS_PORT after ${WAIT_SECONDS}s; last lines of $REDIS_LOG:" >&2
            tail -n 20 "$REDIS_LOG" >&2 || true
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "redis: up on 127.0.0.1:$REDIS_PORT (data in $REDIS_DIR)"
}

redis_down() {
    local pid
    if ! pid="$(redis_pid)"; then
        echo "redis: not running (nothing started by this script)"
        return
    fi
    kill "$pid"
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= WAIT_SECONDS * 10)); then
            echo "redis: pid $pid did not exit within ${WAIT_SECONDS}s; see $REDIS_LOG" >&2
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "redis: stopped (was pid $pid)"
}

redis_status() {
    local pid
    if pid="$(redis_pid)"; then
        echo "redis: up (pid $pid, port $REDIS_PORT)"
    else
        echo "redis: down (port $REDIS_PORT)"
    fi
}

action="${1:-}"
service="${2:-all}"
case "$action" in
up | down | status) ;;
*) usage ;;
esac
case "$service" in
redis | all) "redis_$action" ;;
kafka | pulsar)
    echo "$service: not supported yet" >&2
    exit 2
    ;;
*) usage ;;
esac
