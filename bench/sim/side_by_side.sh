#!/usr/bin/env bash
# Two hafab-sim binaries on issue 15's 10 000-node run, at once, one pinned to each core, then
# again with the cores swapped (on a machine whose cores run at different and changing speeds,
# only runs made at the same moment compare). Prints, per run: which binary, its core, wall and
# CPU seconds, trace hash, events.
#   bash bench/sim/side_by_side.sh BEFORE_BINARY AFTER_BINARY [DURATION]   (default 600s)
set -euo pipefail
before=$1 after=$2 duration=${3:-600s}
args=(--seed 1 --nodes 10000 --duration "$duration" --settle 10s --fault-interval 2s
      --heartbeat-interval 1s --tick 250ms --probe-interval 1s --lease-ttl 5s
      --reconcile-interval 1s)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() {  # NAME BINARY CORE
  taskset -c "$3" /usr/bin/time -f "%U %S" -o "$out/$1.time" "$2" "${args[@]}" 2>/dev/null |
    tail -1 > "$out/$1.json"
  python3 - "$1" "$3" "$out/$1.json" "$out/$1.time" <<'PY'
import json, sys
name, core, summary, times = sys.argv[1:]
j = json.load(open(summary))
cpu = sum(float(x) for x in open(times).read().split())
print(f"{name:6} core {core}  wall {j['wall_s']:7.1f} s  cpu {cpu:7.1f} s  "
      f"{j['trace_hash']}  {j['events']} events")
PY
}
for cores in "0 1" "1 0"; do
  set -- $cores
  run before "$before" "$1" & run after "$after" "$2" & wait
done
