#!/usr/bin/env bash
# Builds hafab, kvd and the failover benchmark in build-bench-failover, then runs it:
#   bench/failover/run.sh [--runs N] [--scenario instance|node|both|hang|hang-tcp|replicated|all] [--verbose]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD_DIR:-$root/build-bench-failover}"
cmake -S "$root" -B "$build" -G Ninja >/dev/null
cmake --build "$build" --target hafab_bench_failover hafab kvd echo-app -j"${JOBS:-2}"
echo "machine: $(nproc) CPUs, $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$root" rev-parse --short HEAD)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
"$build/bench/failover/hafab_bench_failover" "$@" || rc=$?
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $rc
