#!/usr/bin/env bash
# Installs what the stack and the tests need, when missing: Prometheus 2.42 and promtool,
# Alertmanager (Debian packages); for the tests only (`install-deps.sh run` leaves them out)
# Chromium with chromedriver (Debian packages, for the UI tests) and Garage 2.5.0 (S3 server,
# built once with cargo and kept in ~/.cargo/bin). Safe to run repeatedly.
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
# The UI tests drive a real headless Chromium through chromedriver.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "install-deps: apt-get install chromium chromium-driver (UI tests)"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
if ! command -v garage >/dev/null 2>&1 || ! garage --version 2>/dev/null | grep -q '2\.5\.0'; then
  echo "install-deps: cargo install garage 2.5.0 (about 10 minutes, once)"
  cargo install garage --locked --version 2.5.0 --quiet
fi
