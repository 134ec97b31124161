#!/usr/bin/env bash
# The Pulsar client crate compiles Pulsar's protobuf definitions at build
# time and needs `protoc`: install Debian's protobuf-compiler when missing.
set -euo pipefail
if command -v protoc >/dev/null; then
    exit 0
fi
echo "installing protoc (Debian package protobuf-compiler), needed to build the Pulsar client"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
