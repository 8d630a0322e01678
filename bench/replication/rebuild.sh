#!/usr/bin/env bash
# Replica rebuild: examples/replicated.yaml as shipped (3 kvd replicas on n1..n3, n4 spare)
# under `hafab up`; MB megabytes written through the gateway; then a secondary's node is
# drained (taken away for good): the controller gives its replica up and rebuilds one on n4,
# which copies the primary's data and joins the quorum. Prints the time from the drain to
# the new replica joining, the bytes it copied and the rate, and checks that every value
# written reads back from the new replica itself.
#
# usage: bench/replication/rebuild.sh [--mb MB]    (default 100; uses ports 7300-7304)
# env: BUILD (build dir with hafab and kvd, default ./build)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
MB=100
while [[ $# -gt 0 ]]; do
  case $1 in
    --mb) MB=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for t in hafab kvd; do
  [[ -x $BUILD/$t ]] || cmake --build "$BUILD" --target "$t" -j2 >/dev/null
done
export PATH=$BUILD:$PATH
WORK=$(mktemp -d /tmp/hafab-bench-rebuild.XXXXXX)
STATE=$WORK/state
UP=
cleanup() {
  if [[ -n $UP ]]; then
    kill -INT "$UP" 2>/dev/null || true
    wait "$UP" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
replicas() { hafab get replicas kv -o json --state-dir "$STATE"; }
# The field `what` of the replica on `node` (python3 reads the JSON).
replica_on() {
  python3 -c '
import json, sys
for i in json.load(sys.stdin)["instances"]:
    if i["node"] == sys.argv[1]:
        r = i.get("replica", {}); says = r.get("says") or {}
        print(i["instance"], r.get("role", ""), i.get("port", 0), says.get("state", ""))
' "$1"
}

hafab up "$ROOT/examples/replicated.yaml" --state-dir "$STATE" >"$WORK/up.log" 2>&1 &
UP=$!
for _ in $(seq 300); do
  curl -sf -m 1 -X PUT --data-binary x http://127.0.0.1:7300/kv/ready >/dev/null && break
  sleep 0.1
done
curl -sf -m 1 http://127.0.0.1:7300/kv/ready >/dev/null || { tail "$WORK/up.log"; exit 1; }

head -c $((1024 * 1024)) /dev/urandom >"$WORK/value"
start=$(now_ms)
for i in $(seq "$MB"); do
  curl -sf -m 30 -X PUT --data-binary @"$WORK/value" "http://127.0.0.1:7300/kv/big$i" >/dev/null
done
echo "wrote $MB MiB through the gateway in $(($(now_ms) - start)) ms"

victim=$(replicas | python3 -c '
import json, sys
print(next(i["node"] for i in json.load(sys.stdin)["instances"]
           if i.get("replica", {}).get("role") == "secondary"))')
echo "draining $victim (a secondary's node)"
t0=$(now_ms)
hafab drain "$victim" --state-dir "$STATE" >/dev/null
joined=
for _ in $(seq 6000); do
  read -r name role port state < <(replicas | replica_on n4) || true
  if [[ ${role:-} == secondary ]]; then joined=$(now_ms); break; fi
  sleep 0.05
done
[[ -n $joined ]] || { echo "the new replica did not join"; replicas; exit 1; }
bytes=$(du -sb "$STATE"/nodes/n4/replicas/"$name" | cut -f1)
ms=$((joined - t0))
echo "rebuilt $name on n4 and joined the quorum $ms ms after the drain;" \
  "it holds $((bytes / 1024 / 1024)) MiB: $((bytes / 1024 / 1024 * 1000 / (ms > 0 ? ms : 1))) MiB/s"

# Every value, read from the new replica itself (a secondary serves local reads).
bad=0
for i in $(seq "$MB"); do
  curl -sf -m 10 "http://127.0.0.1:$port/kv/big$i" | cmp -s - "$WORK/value" || bad=$((bad + 1))
done
echo "values read back from $name: $MB, wrong or missing: $bad"
[[ $bad -eq 0 ]]
