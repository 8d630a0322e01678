#!/usr/bin/env bash
# Replication benchmark: kvd PUT latency and throughput, single-node vs replicated (3 kvd
# replicas on loopback, quorum 2: the primary acknowledges once it and one secondary have
# the record fsynced). wrk, keep-alive, one new key per request, at 1 and 16 connections.
# Prints a Markdown table, single-node and replicated side by side.
#
# usage: bench/replication/run.sh [--duration SECS]
#   --duration  seconds per wrk run; 4
# env: BUILD (build dir with kvd, default ./build; built if missing), CONNS ("1 16").
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
DURATION=4
CONNS=${CONNS:-"1 16"}
while [[ $# -gt 0 ]]; do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is not installed (scripts/setup.sh)" >&2; exit 1; }
[[ -x $BUILD/kvd ]] || cmake --build "$BUILD" --target kvd -j2 >/dev/null
KVD=$BUILD/kvd

WORK=$(mktemp -d /tmp/hafab-bench-replication.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_health() {
  for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "kvd on port $1 never answered" >&2
  exit 1
}
kvd() {  # kvd NAME PORT [CONFIG]: starts one kvd, pid in PIDS
  local name=$1 port=$2 config=${3:-}
  if [[ -n $config ]]; then
    HAFAB_REPLICA_CONFIG=$config HAFAB_INSTANCE=$name HAFAB_PORT=$port HAFAB_HOST=127.0.0.1 \
      HAFAB_VOLUME_DIR=$WORK/$name "$KVD" 2>"$WORK/$name.log" &
  else
    HAFAB_INSTANCE=$name HAFAB_PORT=$port HAFAB_HOST=127.0.0.1 \
      HAFAB_VOLUME_DIR=$WORK/$name "$KVD" 2>"$WORK/$name.log" &
  fi
  PIDS+=($!)
  wait_health "$port"
}

cat >"$WORK/put.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("PUT", "/kv/key-" .. n, nil, "value-" .. n .. "-0123456789abcdef0123456789abcdef")
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.0f %.2f %.2f %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status + summary.errors.timeout))
end
LUA
measure() {  # measure PORT CONNS -> "req/s p50 p99 errors"
  wrk -t1 -c"$2" -d"${DURATION}s" -s "$WORK/put.lua" "http://127.0.0.1:$1/" | grep '^RESULT' |
    cut -d' ' -f2-
}

# Single node.
single=$(free_port)
kvd single "$single"
# Replicated: kv-0 primary, kv-1 and kv-2 secondaries, quorum 2.
ports=($(free_port) $(free_port) $(free_port))
config() {  # config SELF ROLE
  local replicas="" i
  for i in 0 1 2; do
    local role=secondary; [[ $i == 0 ]] && role=primary
    replicas+="${replicas:+,}{\"instance\":\"kv-$i\",\"address\":\"127.0.0.1:${ports[$i]}\",\"role\":\"$role\"}"
  done
  echo "{\"instance\":\"kv-$1\",\"role\":\"$2\",\"epoch\":1,\"quorum\":2,\"primary\":{\"instance\":\"kv-0\",\"address\":\"127.0.0.1:${ports[0]}\"},\"replicas\":[$replicas]}"
}
kvd kv-1 "${ports[1]}" "$(config 1 secondary)"
kvd kv-2 "${ports[2]}" "$(config 2 secondary)"
kvd kv-0 "${ports[0]}" "$(config 0 primary)"
for _ in $(seq 200); do
  curl -fs "http://127.0.0.1:${ports[0]}/hafab/v1/replica" | grep -q '"role":"primary"' && break
  sleep 0.05
done

echo "kvd PUT, wrk -t1, ${DURATION}s per case, $(nproc) CPUs, data in $WORK ($(df -T "$WORK" | awk 'NR==2 {print $2}'))"
echo
echo "| connections | single req/s | replicated req/s | ratio | single p50 / p99 ms | replicated p50 / p99 ms | errors (single / replicated) |"
echo "|---|---|---|---|---|---|---|"
for c in $CONNS; do
  read -r s_rps s_p50 s_p99 s_err < <(measure "$single" "$c")
  read -r r_rps r_p50 r_p99 r_err < <(measure "${ports[0]}" "$c")
  ratio=$(python3 -c "print(f'{$r_rps / $s_rps:.2f}')")
  echo "| $c | $s_rps | $r_rps | $ratio | $s_p50 / $s_p99 | $r_p50 / $r_p99 | $s_err / $r_err |"
done
echo
echo "replicas' positions after the run:"
for i in 0 1 2; do echo "  kv-$i $(curl -fs "http://127.0.0.1:${ports[$i]}/hafab/v1/replica")"; done
