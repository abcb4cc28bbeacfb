#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the real peers (Prometheus, Alertmanager,
# Garage) when missing, then format and lint checks, every test, and a compile of every
# benchmark so none rots.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
# Peers built by hand are never installed here: say which tests skip without them.
[ -n "${THANOS_BIN:-}" ] || echo "THANOS_BIN is unset: the Thanos mix and compaction tests skip (tests/thanos_mixed.rs, tests/compact_thanos.rs)"
[ -n "${PROMETHEUS3_BIN:-}" ] || echo "PROMETHEUS3_BIN is unset: the Prometheus 3.x differentials skip (*_prometheus_3 in promql/tests/vs_prometheus.rs, gauntlet/tests/query_differential.rs, gauntlet/tests/native_histograms.rs)"
cargo test --workspace --no-fail-fast
echo "== cargo bench --no-run"
cargo bench --workspace --no-run --quiet
