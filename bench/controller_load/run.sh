#!/usr/bin/env bash
# Starts a controller (SQLite store, or a local one-member etcd with --store etcd), runs
# hafab-loadgen against it with N simulated nodes, prints the figures and a table row, and
# stops what it started. Builds nothing: scripts/build.sh hafab hafab-loadgen first.
#
#   bench/controller_load/run.sh --nodes 1000 [--store sqlite|etcd] [--detector star|ring]
#       [--window 20s] [--settle 5s] [--threads 2] [--ramp 2s] [--lease-ttl D] [--leader-ttl D]
#       [--heartbeat-interval 200ms] [--ring-probe-interval 100ms]
#       [--check] [--hafab BIN] [--loadgen BIN]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
hafab="$root/build/hafab"
loadgen="$root/build/bench/controller_load/hafab-loadgen"
store=sqlite
detector=star
nodes=100
check=0
ctl_args=()
gen_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --hafab) hafab="$2"; shift 2 ;;
    --loadgen) loadgen="$2"; shift 2 ;;
    --store) store="$2"; shift 2 ;;
    --detector) detector="$2"; gen_args+=(--detector "$2"); shift 2 ;;
    --nodes) nodes="$2"; gen_args+=("$1" "$2"); shift 2 ;;
    --window|--settle|--threads|--ramp|--heartbeat-interval|--ring-probe-interval) gen_args+=("$1" "$2"); shift 2 ;;
    # A busy machine can starve the controller for over a second: longer leases keep it from
    # losing its leader lease (and the agents theirs) without changing the heartbeat rate.
    --lease-ttl) ctl_args+=(--lease-ttl "$2"); gen_args+=(--lease-ttl "$2"); shift 2 ;;
    --leader-ttl) ctl_args+=(--leader-ttl "$2"); shift 2 ;;
    --check) check=1; gen_args+=("$1"); shift ;;
    --verbose) gen_args+=("$1"); shift ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$store" in sqlite|etcd) ;; *) echo "run.sh: --store sqlite or etcd" >&2; exit 2 ;; esac
for bin in "$hafab" "$loadgen"; do
  [ -x "$bin" ] || { echo "run.sh: $bin missing (scripts/build.sh hafab hafab-loadgen)" >&2; exit 2; }
done
# Thousands of agents keep two connections each open to the controller.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

dir="$(mktemp -d /tmp/hafab-loadgen-XXXXXX)"
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [ $rc -ne 0 ] && [ -f "$dir/controller.log" ]; then
    cp "$dir/controller.log" /tmp/hafab-loadgen-failed-controller.log
    echo "--- controller log (last 30 lines; all of it in /tmp/hafab-loadgen-failed-controller.log)" >&2
    tail -30 "$dir/controller.log" >&2
  fi
  rm -rf "$dir"
  exit $rc
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

store_args=()
# etcd's defaults refuse a transaction of more than 128 operations (or 1.5 MiB): a manifest
# that places more than ~60 instances is one commit of more than that (docs/deploy.md, "etcd").
if [ "$store" = etcd ]; then
  command -v etcd >/dev/null || { echo "run.sh: no etcd on PATH (scripts/setup.sh installs it)" >&2; exit 2; }
  client=$(free_port); peer=$(free_port)
  etcd --name=lg --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$client" --advertise-client-urls="http://127.0.0.1:$client" \
    --listen-peer-urls="http://127.0.0.1:$peer" --initial-advertise-peer-urls="http://127.0.0.1:$peer" \
    --initial-cluster="lg=http://127.0.0.1:$peer" --log-level=warn \
    --max-txn-ops=100000 --max-request-bytes=33554432 >"$dir/etcd.log" 2>&1 &
  pids+=($!)
  store_args=(--store "etcd://127.0.0.1:$client")
fi

# Each agent keeps two connections (heartbeats, long poll). Here they all come from 127.0.0.1,
# so the limit per address (against a flood from one peer) is raised with the total.
conns=$((3 * nodes + 100))
[ "$conns" -lt 4096 ] && conns=4096
"$hafab" controller --state-dir "$dir/state" --listen 127.0.0.1:0 --failure-detector "$detector" \
  --max-connections "$conns" --max-connections-per-peer "$conns" \
  "${store_args[@]}" "${ctl_args[@]}" >"$dir/controller.log" 2>&1 &
controller=$!
pids=("$controller" "${pids[@]}")  # the controller stops before its etcd
for _ in $(seq 300); do
  [ -s "$dir/state/api.url" ] && break
  kill -0 "$controller" 2>/dev/null || { echo "run.sh: the controller exited" >&2; exit 1; }
  sleep 0.1
done
[ -s "$dir/state/api.url" ] || { echo "run.sh: the controller wrote no api.url in 30 s" >&2; exit 1; }
echo "# controller pid $controller, state directory $dir/state"

"$loadgen" --state-dir "$dir/state" --controller-pid "$controller" --label "$store" "${gen_args[@]}"
if [ "$check" = 1 ]; then
  # The limits reached the controller's listener (hafab controller --max-connections*).
  grep -q "at most $conns connections, $conns from one address" "$dir/controller.log" || {
    echo "run.sh: the controller did not take --max-connections $conns" >&2; exit 1; }
fi
