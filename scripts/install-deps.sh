#!/usr/bin/env bash
# Installs what the stack and the tests need, when missing: Prometheus 2.42 and promtool,
# Alertmanager (Debian packages) and Garage 2.5.0 (S3 server, built once with cargo and kept
# in ~/.cargo/bin; only the tests use it, so `install-deps.sh run` leaves it out). Safe to run
# repeatedly.
set -euo pipefail

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

export PATH="$HOME/.cargo/bin:$PATH"
if [ "${1:-}" = run ]; then
  exit 0
fi
if ! command -v garage >/dev/null 2>&1 || ! garage --version 2>/dev/null | grep -q '2\.5\.0'; then
  echo "install-deps: cargo install garage 2.5.0 (about 10 minutes, once)"
  cargo install garage --locked --version 2.5.0 --quiet
fi
