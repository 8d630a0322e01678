#!/usr/bin/env bash
# Installs every Debian 12 package hafab needs. Idempotent; run as root (or with sudo).
set -euo pipefail
pkgs=(
  g++ cmake ninja-build ccache pkg-config dpkg-dev
  libboost-dev libboost-system-dev nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  libcli11-dev libsqlite3-dev libssl-dev libgtest-dev libgmock-dev googletest libbenchmark-dev
  curl iproute2 procps etcd-server etcd-client haproxy wrk
  postgresql-15 postgresql-client-15  # examples/postgres and its integration test
  clang-14 libclang-rt-14-dev llvm-14  # sanitizer and libFuzzer builds (scripts/sanitize.sh)
  libbpf-dev bpftool  # the gateway's kernel data path (BPF sockmap), compiled with clang-14
  chromium  # the dashboard's browser test (tests/e2e/dashboard, Playwright drives it)
  libmimalloc-dev  # hafab-sim's allocator (src/sim/CMakeLists.txt)
  prometheus  # promtool: every daemon's /metrics and deploy/prometheus rules are checked
)
# Node.js for Playwright: Debian's, unless a node is already installed (nodesource's bundles npm).
command -v node >/dev/null 2>&1 || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Playwright from npm, at the version package-lock.json pins (it downloads no browser: the test
# runs Debian's chromium).
browser_test="$(dirname "$0")/../tests/e2e/dashboard"
if [ ! -d "$browser_test/node_modules/playwright-core" ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$browser_test" --no-audit --no-fund \
    --loglevel=error
fi
# The Debian etcd, haproxy, prometheus and postgresql packages start system services; hafab's
# tests start their own. postgresql-15 also creates a cluster "main" on port 5432: stopped and not started
# at boot (its data stays; `pg_dropcluster 15 main` removes it).
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now etcd haproxy postgresql prometheus >/dev/null 2>&1 || true
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -f /etc/postgresql/15/main/start.conf ]; then
  $SUDO pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
  echo disabled | $SUDO tee /etc/postgresql/15/main/start.conf >/dev/null
fi
