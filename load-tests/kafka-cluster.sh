#!/usr/bin/env bash
# Runs the Kafka scenario against one fresh cluster replica at an offered
# rate, as benches/README.md's Kafka figures were measured.
#
#   load-tests/kafka-cluster.sh RATE [SCENARIO.toml]
#       RATE: alerts/s offered, 0 = as fast as the broker acknowledges
#       SCENARIO: default load-tests/scenarios/kafka-native.toml
#   INCIDENTD_BIN=PATH runs that service binary instead of this tree's
#   release build (to compare two builds on the same services).
#
# Starts Kafka and Redis with scripts/services.sh, creates topics of its
# own (<run>.alerts and <run>.keyed with 8 partitions, <run>.dead), starts
# the release build as a cluster member of group <run> (8 shards, Redis
# key prefix <run>) on 127.0.0.1:18081, and runs the scenario with its
# topic, target and rate replaced. Fresh topics and a fresh group each
# time, so nothing of an earlier run is read again; the topics and the
# run's Redis keys are deleted at the end (an open-throttle run leaves
# gigabytes in the topics, and keys left in Redis would make every later
# run's append-only-file rewrites copy them again).
# Results: load-results/kafka-<run>/ (the replica's log is kept there too).
# Every run stops by itself and sends only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

rate="${1:?usage: load-tests/kafka-cluster.sh RATE [SCENARIO.toml]}"
scenario="${2:-load-tests/scenarios/kafka-native.toml}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/incidentd-target}"
run="kafka-$(date -u +%Y%m%dT%H%M%SZ)"
# The ports scripts/services.sh starts the services on.
redis_port="${INCIDENTD_REDIS_PORT:-6390}"
brokers="127.0.0.1:${INCIDENTD_KAFKA_PORT:-9192}"
out="load-results/$run"
mkdir -p "$out"
pid=""
topics_created=0
cleanup() {
    [[ -n "$pid" ]] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    ((topics_created)) && scripts/services.sh kafka-topics --delete --topic "$run\\..*" || true
    ((topics_created)) && redis-cli -p "$redis_port" --scan --pattern "$run:*" | xargs -r -n 500 redis-cli -p "$redis_port" unlink >/dev/null || true
}
trap cleanup EXIT

scripts/services.sh up kafka redis
cargo build --release --locked -p incidentd -p incidentd-load
bin="$CARGO_TARGET_DIR/release"

create_topic() {
    scripts/services.sh kafka-topics --create --topic "$1" --partitions "$2" --replication-factor 1
}
topics_created=1
create_topic "$run.alerts" 8
create_topic "$run.keyed" 8
create_topic "$run.dead" 1

cat >"$out/incidentd.toml" <<TOML
[engine]
shards = 8
[store]
kind = "redis"
redis_url = "redis://127.0.0.1:$redis_port"
key_prefix = "$run"
[kafka]
brokers = "$brokers"
group_id = "$run"
keyed_topic = "$run.keyed"
dead_letter_topic = "$run.dead"
[[kafka.sources]]
topic = "$run.alerts"
format = "native"
[routing]
group_by = ["alertname"]
TOML
"${INCIDENTD_BIN:-$bin/incidentd}" serve --config "$out/incidentd.toml" --listen 127.0.0.1:18081 \
    --data-dir "$out/data" >"$out/incidentd.log" 2>&1 &
pid=$!
tries=0
until curl -sf -o /dev/null http://127.0.0.1:18081/readyz; do
    ((tries++ < 600)) || { echo "the replica did not become ready; see $out/incidentd.log" >&2; exit 1; }
    sleep 0.1
done

grep -v -e '^target *=' -e '^kafka_brokers *=' -e '^kafka_topic *=' -e '^rate *=' "$scenario" >"$out/scenario.toml"
printf 'target = "http://127.0.0.1:18081"\nkafka_brokers = "%s"\nkafka_topic = "%s"\nrate = %s\n' "$brokers" "$run.alerts" "$rate" >>"$out/scenario.toml"
"$bin/incidentd-load" run "$out/scenario.toml" --out "$out"

# Where the alerts' time went, from the replica's own metric: the mean age
# of a message once re-keyed and once its alerts were stored.
curl -sf http://127.0.0.1:18081/metrics >"$out/replica-metrics.txt"
awk '/^incidentd_kafka_record_age_seconds_(sum|count)\{/ {
        split($1, name, "{"); match($1, /stage="[a-z]+"/)
        stage = substr($1, RSTART + 7, RLENGTH - 8)
        if (name[1] ~ /_sum$/) sum[stage] = $2; else count[stage] = $2
    }
    END { for (s in count) if (count[s] > 0)
        printf "message age once %-8s mean %.1f ms over %d messages\n", s, 1000 * sum[s] / count[s], count[s] }' \
    "$out/replica-metrics.txt"
