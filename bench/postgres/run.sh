#!/usr/bin/env bash
# PostgreSQL failover bench (issue 14): hafab (examples/postgres), Patroni 3.0.2 (etcd,
# synchronous_mode, HAProxy on /primary; default and tuned ttl/loop_wait) and pg_auto_failover
# 2.0, three PostgreSQL 15 instances each on loopback, one after the other in one run: the
# primary's node SIGKILLed RUNS times, then a planned switchover; downtime, lost commits,
# rejoin time, client errors by class and single-copy commits (Debian's python3 with psycopg2; bench/postgres/bench.py says
# how each is measured). Prints a Markdown table; the per-run details go to --json.
#
# usage: bench/postgres/run.sh [--runs N] [--systems hafab,patroni,patroni-tuned,pgaf]
#                              [--json FILE]
# env: HAFAB_BIN (an existing hafab binary; else built in ./build), KEEP=1 keeps the work dir.
# Root: PostgreSQL runs as the postgres account. Installs its packages (bench/postgres/setup.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "run as root (the instances run as user postgres)" >&2; exit 1; }
bash "$ROOT/bench/postgres/setup.sh"
if [ -z "${HAFAB_BIN:-}" ]; then
  [ -d "$ROOT/build" ] || bash "$ROOT/scripts/build.sh" hafab
  cmake --build "$ROOT/build" --target hafab -j2 >/dev/null
  HAFAB_BIN=$ROOT/build/hafab
fi
WORK=$(mktemp -d /tmp/hafab-bench-postgres.XXXXXX)
chmod 0755 "$WORK"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
echo "work dir $WORK; $(date -u '+%F %H:%M UTC'); commit $(git -C "$ROOT" rev-parse --short HEAD)" >&2
/usr/bin/python3 "$ROOT/bench/postgres/bench.py" --hafab "$HAFAB_BIN" --work "$WORK" "$@"
