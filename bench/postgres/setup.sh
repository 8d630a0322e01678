#!/usr/bin/env bash
# Installs what bench/postgres/run.sh needs beyond scripts/setup.sh (PostgreSQL 15, etcd,
# HAProxy): Patroni 3 and pg_auto_failover 2 from Debian 12, and psycopg2 for the client.
# Bench-only, so that CI does not install them. Idempotent; run as root (or with sudo).
set -euo pipefail
pkgs=(
  postgresql-15 postgresql-client-15 etcd-server etcd-client haproxy
  patroni python3-etcd                                  # Patroni with its etcd (v2 API) store
  pg-auto-failover-cli postgresql-15-auto-failover      # pg_autoctl and its extension
  python3-psycopg2                                      # bench/postgres/client.py (libpq)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench setup: installing ${missing[*]}"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian starts the packages' services; the bench runs its own instances.
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now etcd haproxy postgresql patroni >/dev/null 2>&1 || true
fi
if [ -f /etc/postgresql/15/main/start.conf ]; then
  $SUDO pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
  echo disabled | $SUDO tee /etc/postgresql/15/main/start.conf >/dev/null
fi
