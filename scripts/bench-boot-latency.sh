#!/usr/bin/env bash
# Boot latency of a test kernel: Ferrite under KVM beside QEMU TCG, in one run.
# Usage: scripts/bench-boot-latency.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p frontend -p testsuite --bin ferrite --bin bench-boot-latency
exec target/release/bench-boot-latency target/release/ferrite "${1:-10}"
