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
cargo test --workspace --no-fail-fast
echo "== cargo bench --no-run"
cargo bench --workspace --no-run --quiet
