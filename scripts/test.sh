#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, unit and
# integration tests. Installs and starts the real services the tests need
# (none yet beyond the Rust toolchain). Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Build outside the clone so CI rebuilds incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/incidentd-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked
