#!/usr/bin/env bash
# Runs the service on its embedded default (no broker, no Redis):
#   scripts/run.sh [serve options]      e.g. scripts/run.sh --listen 127.0.0.1:9000
# It installs protoc first when missing (the build needs it), then runs the
# release build with `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-protoc.sh
exec cargo run --release -- serve "$@"
