#!/usr/bin/env bash
# The gateway benchmark: the same HTTP load (wrk) through
#   (a) a direct connection to the backend, (b) HAProxy (Debian 2.6, TCP mode),
#   (c) hafab's gateway on its user-space data path (--data-path user: epoll + splice),
#   (d) hafab's gateway on its kernel data path (--data-path kernel: BPF sockmap; left out,
#       with a note, where the program cannot be loaded),
# measuring keep-alive requests/s, short connections/s (Connection: close), bulk throughput
# (1 MiB responses on keep-alive connections) and p50/p99 latency (keep-alive, small
# responses), the gateway's CPU time per keep-alive request, and its idle RSS. Prints a
# Markdown table with ratios vs HAProxy and vs direct.
#
# usage: bench/gateway/run.sh [--threads N] [--duration SECS] [--rounds R] [--no-pin]
#   --threads N   data-path threads of both proxies (gateway --threads, haproxy nbthread); 1
#   --duration    seconds per wrk run; 5
#   --rounds R    each measurement is repeated R times, targets interleaved; median shown; 3
#   --no-pin      do not pin; by default the proxy runs on CPU 0, wrk and the backend on CPU 1
# env: BUILD (build dir, default build-bench), HAFAB_BIN (use this hafab binary, do not build it), WRK_CONNS (connections for conn/s
#      and keep-alive req/s, 32), LAT_CONNS (connections for the latency run, 8).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build-bench}
THREADS=1
DURATION=5
ROUNDS=3
PIN=1
WRK_CONNS=${WRK_CONNS:-32}
LAT_CONNS=${LAT_CONNS:-8}
while [[ $# -gt 0 ]]; do
  case $1 in
    --threads) THREADS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

NCPU=$(nproc)
if [[ $PIN == 1 && $NCPU -ge 2 ]]; then
  PROXY_CPUS=0
  LOAD_CPUS=1
  PIN_DESC="proxy on CPU 0; wrk and backend on CPU 1"
else
  PIN=0
  PROXY_CPUS=all
  LOAD_CPUS=all
  PIN_DESC="no pinning ($NCPU CPUs shared by wrk, proxy and backend)"
fi
pin() {  # pin CPUS cmd...: runs cmd (exec'd, so that its pid is the one to kill)
  local cpus=$1; shift
  if [[ $PIN == 1 ]]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}
spawn() {  # spawn CPUS LOG cmd...: starts cmd in the background, pid in $!
  local cpus=$1 log=$2; shift 2
  (pin "$cpus" "$@") </dev/null >"$log" 2>&1 &
}

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
if [[ -n ${HAFAB_BIN:-} ]]; then
  HAFAB=$HAFAB_BIN
  cmake --build "$BUILD" --target hafab_bench_http_backend -j2 >/dev/null
else
  HAFAB=$BUILD/hafab
  cmake --build "$BUILD" --target hafab hafab_bench_http_backend -j2 >/dev/null
fi

WORK=$(mktemp -d /tmp/hafab-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 never opened; logs:" >&2
  tail -n 20 "$WORK"/*.log >&2 || true
  exit 1
}
rss_kib() { awk '/^VmRSS/ {print $2}' /proc/"$1"/status; }

BACKEND_PORT=$(free_port)
HAPROXY_PORT=$(free_port)
GATEWAY_PORT=$(free_port)

spawn "$LOAD_CPUS" "$WORK/backend.log" "$BUILD/bench/hafab_bench_http_backend" "$BACKEND_PORT" "$THREADS"
PIDS+=($!)
wait_port "$BACKEND_PORT"

cat > "$WORK/haproxy.cfg" <<CFG
global
  nbthread $THREADS
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend bench
  bind 127.0.0.1:$HAPROXY_PORT
  default_backend app
backend app
  server app1 127.0.0.1:$BACKEND_PORT
CFG
spawn "$PROXY_CPUS" "$WORK/haproxy.log" /usr/sbin/haproxy -db -f "$WORK/haproxy.cfg"
HAPROXY_PID=$!
PIDS+=($HAPROXY_PID)
wait_port "$HAPROXY_PORT"

cat > "$WORK/routes.json" <<JSON
{"version": 1, "endpoints": [{"role": "bench", "mode": "load-balanced",
  "listen": "127.0.0.1:$GATEWAY_PORT",
  "backends": [{"instance": "app1", "address": "127.0.0.1", "port": $BACKEND_PORT,
                "ready": true}]}]}
JSON
spawn "$PROXY_CPUS" "$WORK/gateway.log" "$HAFAB" --log-level warn gateway --id bench \
  --routes-file "$WORK/routes.json" --threads "$THREADS" --data-path user
GATEWAY_PID=$!
PIDS+=($GATEWAY_PID)
wait_port "$GATEWAY_PORT"

declare -A PORT=([direct]=$BACKEND_PORT [haproxy]=$HAPROXY_PORT [gateway]=$GATEWAY_PORT)
declare -A PID=([haproxy]=$HAPROXY_PID [gateway]=$GATEWAY_PID)
TARGETS=(direct haproxy gateway)
KERNEL_NOTE=""
KERNEL_PORT=$(free_port)
sed "s/:$GATEWAY_PORT\"/:$KERNEL_PORT\"/" "$WORK/routes.json" >"$WORK/routes-kernel.json"
spawn "$PROXY_CPUS" "$WORK/gateway-kernel.log" "$HAFAB" --log-level warn gateway --id bench-k \
  --routes-file "$WORK/routes-kernel.json" --threads "$THREADS" --data-path kernel
KERNEL_PID=$!
for _ in $(seq 100); do
  if ! kill -0 "$KERNEL_PID" 2>/dev/null; then break; fi
  if (exec 3<>/dev/tcp/127.0.0.1/"$KERNEL_PORT") 2>/dev/null; then break; fi
  sleep 0.05
done
if kill -0 "$KERNEL_PID" 2>/dev/null; then
  PIDS+=($KERNEL_PID)
  PORT[gateway_kernel]=$KERNEL_PORT
  PID[gateway_kernel]=$KERNEL_PID
  TARGETS+=(gateway_kernel)
else
  KERNEL_NOTE="kernel data path not measured: $(tail -n 1 "$WORK/gateway-kernel.log")"
fi
sleep 0.5
GW_RSS_IDLE=$(rss_kib "$GATEWAY_PID")
HA_RSS_IDLE=$(rss_kib "$HAPROXY_PID")
cpu_ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }  # utime + stime of the process
RESULTS=$WORK/results.txt
: >"$RESULTS"

# run_wrk TARGET KIND: appends "TARGET KIND value" lines (parsed from wrk's output).
run_wrk() {
  local target=$1 kind=$2 url="http://127.0.0.1:${PORT[$1]}" out ticks0=0 ticks1=0
  [[ -n ${PID[$target]:-} ]] && ticks0=$(cpu_ticks "${PID[$target]}")
  case $kind in
    ka) out=$(pin "$LOAD_CPUS" wrk -t1 -c"$WRK_CONNS" -d"${DURATION}s" "$url/") ;;
    conn) out=$(pin "$LOAD_CPUS" wrk -t1 -c"$WRK_CONNS" -d"${DURATION}s" -H 'Connection: close' "$url/") ;;
    bulk) out=$(pin "$LOAD_CPUS" wrk -t1 -c4 -d"${DURATION}s" "$url/bulk") ;;
    lat) out=$(pin "$LOAD_CPUS" wrk -t1 -c"$LAT_CONNS" -d"${DURATION}s" --latency "$url/") ;;
  esac
  [[ -n ${PID[$target]:-} ]] && ticks1=$(cpu_ticks "${PID[$target]}")
  python3 - "$target" "$kind" "$((ticks1 - ticks0))" "$(getconf CLK_TCK)" >>"$RESULTS" <<PY
import re, sys
target, kind, ticks, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
out = """$out"""
def dur_us(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    v = float(m.group(1)); u = m.group(2)
    return v * {"us": 1, "ms": 1e3, "s": 1e6}[u]
def size_mb(s):
    m = re.match(r"([\d.]+)([KMG]?B)", s)
    return float(m.group(1)) * {"B": 1/1048576, "KB": 1/1024, "MB": 1, "GB": 1024}[m.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
errs = re.search(r"Socket errors: (.*)", out)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if kind == "ka":
    print(target, "ka_rps", rps)
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    if ticks and reqs:
        print(target, "cpu_us_per_req", ticks / hz * 1e6 / reqs)
elif kind == "conn":
    print(target, "conn_per_s", rps)
elif kind == "bulk":
    print(target, "mb_per_s", size_mb(re.search(r"Transfer/sec:\s+(\S+)", out).group(1)))
else:
    print(target, "p50_us", dur_us(re.search(r"\s50%\s+(\S+)", out).group(1)))
    print(target, "p99_us", dur_us(re.search(r"\s99%\s+(\S+)", out).group(1)))
    print(target, "lat_rps", rps)
if errs or non2xx:
    print(target, "errors_" + kind, (errs.group(1) if errs else "") + (" non2xx " + non2xx.group(1) if non2xx else ""))
PY
}

for round in $(seq "$ROUNDS"); do
  for kind in ka conn bulk lat; do
    for target in "${TARGETS[@]}"; do
      run_wrk "$target" "$kind"
    done
  done
  echo "round $round/$ROUNDS done" >&2
done
GW_RSS_LOADED=$(rss_kib "$GATEWAY_PID")
HA_RSS_LOADED=$(rss_kib "$HAPROXY_PID")

python3 - "$RESULTS" <<PY
import statistics, sys, collections
vals = collections.defaultdict(list); errors = collections.defaultdict(list)
for line in open(sys.argv[1]):
    t, k, v = line.rstrip("\n").split(" ", 2)
    if k.startswith("errors_"): errors[t].append(k[7:] + ": " + v)
    else: vals[(t, k)].append(float(v))
m = {key: statistics.median(v) for key, v in vals.items()}
def g(t, k): return m.get((t, k), float("nan"))
print("machine: $NCPU CPUs ($(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}')), kernel $(uname -r)")
print("setup: threads=$THREADS, $PIN_DESC, ${DURATION}s per run, median of $ROUNDS rounds")
print("       keep-alive req/s: wrk -t1 -c$WRK_CONNS GET / (13-byte body);")
print("       conn/s: wrk -t1 -c$WRK_CONNS -H 'Connection: close' GET /;")
print("       throughput: wrk -t1 -c4 GET /bulk (1 MiB bodies, keep-alive);")
print("       latency: wrk -t1 -c$LAT_CONNS --latency GET / (keep-alive)")
print()
print("| metric | direct | HAProxy 2.6 | gateway, user path | gateway, kernel path | user / HAProxy | kernel / HAProxy | kernel / direct |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
def row(name, k, fmt):
    d, h, w, kp = g("direct", k), g("haproxy", k), g("gateway", k), g("gateway_kernel", k)
    print(f"| {name} | {fmt.format(d)} | {fmt.format(h)} | {fmt.format(w)} | {fmt.format(kp)} "
          f"| {w / h:.2f}x | {kp / h:.2f}x | {kp / d:.2f}x |")
row("keep-alive req/s", "ka_rps", "{:.0f}")
row("proxy CPU us per keep-alive request (process only)", "cpu_us_per_req", "{:.1f}")
row("connections/s", "conn_per_s", "{:.0f}")
row("throughput MB/s", "mb_per_s", "{:.0f}")
row("p50 latency us", "p50_us", "{:.0f}")
row("p99 latency us", "p99_us", "{:.0f}")
row("req/s in latency run", "lat_rps", "{:.0f}")
add = {t: g(t, "p99_us") - g("direct", "p99_us") for t in ("haproxy", "gateway", "gateway_kernel")}
print(f"| added p99 vs direct, us | - | {add['haproxy']:.0f} | {add['gateway']:.0f} | {add['gateway_kernel']:.0f} | | | |")
print()
print("RSS: gateway idle $GW_RSS_IDLE KiB ($((GW_RSS_IDLE / 1024)) MiB), after load $GW_RSS_LOADED KiB; "
      "HAProxy idle $HA_RSS_IDLE KiB, after load $HA_RSS_LOADED KiB")
if "$KERNEL_NOTE":
    print("$KERNEL_NOTE")
print("CPU per request counts the proxy process only: on the kernel path the bytes are moved in "
      "softirq and kworker context, charged to no process (and, pinned, mostly on the load CPU).")
for t, e in errors.items():
    print(f"wrk errors via {t}: " + "; ".join(e))
PY
