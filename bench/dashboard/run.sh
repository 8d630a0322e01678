#!/usr/bin/env bash
# The dashboard's page weight and the controller's CPU with 5 dashboards open (measure.mjs),
# on examples/quickstart.yaml (NODES=3) or the same roles on NODES loopback nodes, with the
# endpoints moved to free ports. Needs build/hafab, chromium and tests/e2e/dashboard's npm
# packages (scripts/setup.sh). Usage: bash bench/dashboard/run.sh [NODES] (results on stdout).
#
# bash bench/dashboard/run.sh NODES --simulated: the NODES are hafab-loadgen's agents (real
# protocol, no processes: bench/controller_load) instead of real agents and their instances,
# so that the controller is not starved by them on a small machine (scripts/build.sh hafab
# hafab-loadgen first).
set -euo pipefail
cd "$(dirname "$0")/../.."
nodes=${1:-3}
if [ "${2:-}" = --simulated ]; then
  phase=${PHASE_SECONDS:-60}
  out=$(mktemp /tmp/hafab-dashboard-bench.XXXXXX)
  # The generator's window outlasts both phases and the first dashboard's load (up to 30 s).
  bash bench/controller_load/run.sh --nodes "$nodes" --window "$((2 * phase + 300))s" > "$out" 2>&1 &
  gen=$!
  # Stopping the generator ends run.sh, which stops the controller.
  trap 'pkill -TERM -P $gen 2>/dev/null; wait $gen 2>/dev/null || true; rm -f "$out"' EXIT
  for _ in $(seq 1 600); do
    grep -q "instances running after" "$out" && break
    kill -0 $gen 2>/dev/null || { cat "$out" >&2; exit 1; }
    sleep 0.5
  done
  read -r pid state < <(sed -n 's/^# controller pid \([0-9]*\), state directory \(.*\)$/\1 \2/p' "$out")
  grep "^#" "$out"
  echo "cluster: $nodes simulated nodes, controller pid $pid; load $(cut -d' ' -f1-3 /proc/loadavg)"
  sleep 10  # settle
  API=$(cat "$state/api.url") READ_TOKEN=$(cat "$state/read.token") CONTROLLER_PID=$pid \
    PHASE_SECONDS=$phase CHROMIUM=${HAFAB_CHROMIUM:-$(command -v chromium)} \
    node bench/dashboard/measure.mjs
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi
dir=$(mktemp -d /tmp/hafab-dashboard-bench.XXXXXX)
manifest=$dir/cluster.yaml
# The quickstart with other ports (7000, 7080 -> 17000, 17080; 7101, 7201 -> 17101, 17201),
# and its three nodes replaced by NODES nodes over 3 fault and 5 update domains.
sed -e 's/127.0.0.1:7000/127.0.0.1:17000/; s/127.0.0.1:7080/127.0.0.1:17080/' \
    -e 's/port: 7101/port: 17101/; s/port: 7201/port: 17201/' \
    -e '/^  - {name: n[0-9]/d' examples/quickstart.yaml > "$manifest"
list=""
for i in $(seq 1 "$nodes"); do
  list+="  - {name: n$i, fault_domain: fd$(( (i - 1) % 3 + 1 )), update_domain: ud$(( (i - 1) % 5 + 1 )), address: 127.0.0.1}\n"
done
sed -i "s/^nodes:\$/nodes:\n${list%\\n}/" "$manifest"
build/hafab up "$manifest" --state-dir "$dir/state" --no-watch > "$dir/up.log" 2>&1 &
up=$!
trap 'kill -TERM $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 600); do
  [ -s "$dir/state/api.url" ] && build/hafab status --state-dir "$dir/state" 2>/dev/null | grep -q "kvd.*primary.*running" && break
  sleep 0.5
done
api=$(cat "$dir/state/api.url")
pid=$(pgrep -f -- " controller --volume-root $dir/state/" | head -1)
echo "cluster: $nodes nodes, controller pid $pid at $api; load $(cut -d' ' -f1-3 /proc/loadavg)"
sleep 10  # settle
API=$api READ_TOKEN=$(cat "$dir/state/read.token") CONTROLLER_PID=$pid \
  CHROMIUM=${HAFAB_CHROMIUM:-$(command -v chromium)} node bench/dashboard/measure.mjs
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
