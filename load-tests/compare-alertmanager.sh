#!/usr/bin/env bash
# Runs one HTTP scenario against Prometheus Alertmanager and against
# incidentd, on this machine, one after the other, and prints the ratio.
#
#   load-tests/compare-alertmanager.sh [SCENARIO.toml]
#       (default load-tests/scenarios/http-am-v2.toml)
#
# Alertmanager is Debian's prometheus-alertmanager (installed when
# missing), on 127.0.0.1:19093 with clustering off and a route that groups
# by alertname into a receiver that sends nothing. incidentd is the release
# build, standalone, on 127.0.0.1:18090, grouping by alertname. Both get the
# same scenario with `target` replaced and `observe = false` (Alertmanager
# has no event stream), so the figures compare acknowledged alerts/s and
# acknowledgement latency. What a 2xx means differs: Alertmanager has put
# the alerts in its in-memory store; incidentd has stored their effect.
# Results: load-results/compare-<time>/{alertmanager,incidentd}/.
# Every run stops by itself (the scenario's duration and drain) and sends
# only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

scenario="${1:-load-tests/scenarios/http-am-v2.toml}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/incidentd-target}"
out="load-results/compare-$(date -u +%Y%m%dT%H%M%SZ)"
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

if ! command -v prometheus-alertmanager >/dev/null; then
    echo "installing prometheus-alertmanager (Debian package)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-alertmanager >/dev/null
fi
cargo build --release --locked -p incidentd -p incidentd-load
bin="$CARGO_TARGET_DIR/release"

# Waits until URL answers 2xx, at most 30 s.
wait_http() {
    local url="$1" tries=0
    until curl -sf -o /dev/null "$url"; do
        ((tries++ < 300)) || { echo "no answer from $url" >&2; exit 1; }
        sleep 0.1
    done
}

# CPU seconds (user + system) a process has used so far: the host's speed
# varies from run to run, the work per alert much less.
cpu_seconds() {
    awk -v tck="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14 + $15) / tck}' "/proc/$1/stat"
}

# Runs the load generator on scenario $2 into $out/$1 and writes the CPU
# seconds process $3 used meanwhile to $out/$1/cpu_seconds.
measure() {
    local name="$1" scenario_file="$2" pid="$3" before
    before="$(cpu_seconds "$pid")"
    "$bin/incidentd-load" run "$scenario_file" --out "$out/$name"
    awk -v after="$(cpu_seconds "$pid")" -v before="$before" \
        'BEGIN {printf "%.2f\n", after - before}' >"$out/$name/cpu_seconds"
}

# The scenario with another target, and no event stream to read.
scenario_for() {
    local target="$1" file="$2"
    grep -v -e '^target *=' -e '^observe *=' "$scenario" >"$file"
    printf 'target = "%s"\nobserve = false\n' "$target" >>"$file"
}

cat >"$work/alertmanager.yml" <<'YAML'
route:
  receiver: blackhole
  group_by: ["alertname"]
receivers:
  - name: blackhole
YAML
prometheus-alertmanager --config.file="$work/alertmanager.yml" \
    --storage.path="$work/am-data" --web.listen-address=127.0.0.1:19093 \
    --cluster.listen-address= --log.level=warn >"$work/alertmanager.log" 2>&1 &
pids+=($!)
wait_http http://127.0.0.1:19093/-/ready
scenario_for http://127.0.0.1:19093 "$work/am.toml"
measure alertmanager "$work/am.toml" "${pids[0]}"
kill "${pids[0]}"

printf '[routing]\ngroup_by = ["alertname"]\n' >"$work/incidentd.toml"
"$bin/incidentd" serve --config "$work/incidentd.toml" --listen 127.0.0.1:18090 \
    --data-dir "$work/incidentd-data" >"$work/incidentd.log" 2>&1 &
pids+=($!)
wait_http http://127.0.0.1:18090/readyz
scenario_for http://127.0.0.1:18090 "$work/incidentd.toml.scn"
measure incidentd "$work/incidentd.toml.scn" "${pids[1]}"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
rows = {name: json.load(open(f"{out}/{name}/result.json")) for name in ("alertmanager", "incidentd")}
per_cpu = {}
print(f"{'target':<14}{'acked alerts/s':>16}{'ack p50 ms':>12}{'ack p99 ms':>12}{'errors':>8}{'CPU s':>8}{'alerts/CPU s':>14}")
for name, r in rows.items():
    errors = sum(r["errors"].values()) if isinstance(r["errors"], dict) else r["errors"]
    cpu = float(open(f"{out}/{name}/cpu_seconds").read())
    per_cpu[name] = r["alerts"]["acked"] / max(cpu, 1e-9)
    print(f"{name:<14}{r['throughput_alerts_per_s']:>16.0f}{r['ack_latency_ms']['p50']:>12.1f}{r['ack_latency_ms']['p99']:>12.1f}{errors:>8}{cpu:>8.1f}{per_cpu[name]:>14.0f}")
ratio = rows["incidentd"]["throughput_alerts_per_s"] / max(rows["alertmanager"]["throughput_alerts_per_s"], 1e-9)
print(f"incidentd / alertmanager throughput: {ratio:.2f}x, per CPU second: {per_cpu['incidentd'] / max(per_cpu['alertmanager'], 1e-9):.2f}x   (results in {out})")
PY
