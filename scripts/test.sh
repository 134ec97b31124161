#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, unit and
# integration tests. Installs and starts the real services the tests need
# with scripts/services.sh (Redis, Kafka and Pulsar), with empty data when
# it starts them, and leaves them running for the next run. Tests find them through INCIDENTD_TEST_REDIS_URL
# (redis://127.0.0.1:${INCIDENTD_REDIS_PORT:-6390}),
# INCIDENTD_TEST_KAFKA_BROKERS (127.0.0.1:${INCIDENTD_KAFKA_PORT:-9192}) and
# INCIDENTD_TEST_PULSAR_URL (pulsar://127.0.0.1:${INCIDENTD_PULSAR_PORT:-6660}).
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Build outside the clone so CI rebuilds incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/incidentd-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

scripts/ensure-protoc.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== services"
# Services this starts begin empty (see services.sh); running ones are kept.
INCIDENTD_SERVICES_FRESH=1 scripts/services.sh up redis kafka pulsar
export INCIDENTD_TEST_REDIS_URL="redis://127.0.0.1:${INCIDENTD_REDIS_PORT:-6390}"
export INCIDENTD_TEST_KAFKA_BROKERS="127.0.0.1:${INCIDENTD_KAFKA_PORT:-9192}"
export INCIDENTD_TEST_PULSAR_URL="pulsar://127.0.0.1:${INCIDENTD_PULSAR_PORT:-6660}"

echo "== cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast --lib --bins --tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# After the tests, so the configs the chart renders are also checked by the
# binary just built.
echo "== helm chart"
set +e
INCIDENTD_BIN="$CARGO_TARGET_DIR/debug/incidentd" scripts/helm-check.sh
helm_status=$?
set -e

# One closing line over every test binary, so a reader (or CI) sees the total.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
if ((helm_status != 0)); then
    echo "helm chart check failed" >&2
    exit "$helm_status"
fi
exit "$status"
