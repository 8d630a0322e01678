#!/usr/bin/python3
"""Where each hafab failover of a bench/postgres run went, step by step.

  KEEP=1 bench/postgres/run.sh --systems hafab --json RUN.json   # prints its work dir
  bench/postgres/breakdown.py WORKDIR RUN.json                     # on the same machine, same boot

From the controller's events (node-down, the reconfiguration's steps), the hook's log (the new
primary's settings written, its promotion), the gateway's log (the routes taken), the
standbys' PostgreSQL logs (the WAL stream breaking: the SIGKILL itself) and the client's
acknowledgements in RUN.json (monotonic times, mapped to wall time through this boot's
offset). Per kill: kill -> node-down -> fence started -> collected -> promote -> the new
primary's settings written -> promoted -> routed -> the client's first INSERT sent -> acked.
"""
import collections
import datetime
import glob
import json
import re
import sys
import time

work, js = sys.argv[1], sys.argv[2]
S = work + "/hafab/state"
off = time.time() - time.monotonic()
def ts(s):  # 'YYYY-MM-DD HH:MM:SS.mmm' or with T
    s = s.replace("T", " ")[:23]
    return datetime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc).timestamp()
ev = []
for line in open(S + "/logs/controller.log"):
    m = re.match(r"(\S+) info \[hafab\] event (\S+): (.*)", line)
    if m: ev.append((ts(m.group(1)), m.group(2), m.group(3)))
hooks = []
for f in glob.glob(S + "/nodes/*/replicas/*/hook.log"):
    for line in open(f):
        m = re.match(r"(\S+ \S+) hafab-pg-hook\[(\S+)\]: (.*)", line)
        if m: hooks.append((ts(m.group(1)), m.group(2), m.group(3)))
hooks.sort()
gw = [ts(l[:23]) for l in open(S + "/logs/gateway.log") if "routing from version" in l]
d = json.load(open(js))["hafab"]
acks = d["acks"]
kills = [r for r in d["runs"] if r["kind"] == "kill"]
rows = []
for r in kills:
    lo, hi = r["ack_range"]
    rs = [a for a in acks if lo <= a[0] <= hi]
    i = max(range(1, len(rs)), key=lambda i: rs[i][2] - rs[i - 1][2])
    first = rs[i]
    t_first_ack = first[2] + off
    t_sent = first[1] + off
    t_kill = t_first_ack - r["downtime_s"]
    down = [e for e in ev if e[1] == "node-down" and e[0] > t_kill][0][0]
    op = re.search(r"\((op-\d+)\)", [e for e in ev if e[1] == "reconfigure-started" and e[0] >= down - 0.01][0][2]).group(1)
    mine = [e for e in ev if "(" + op + ")" in e[2]]
    def step(name, kind):
        for e in mine:
            if e[1] == "reconfigure-step" + ("-done" if kind == "done" else "") and " step " + name + " " in e[2] + " ":
                return e[0]
    fence_pub = step("fence", "start")
    collect_done = step("collect", "done")
    promote_start = step("promote", "start")
    done = [e for e in mine if e[1] == "reconfigure-done"][0]
    newp = re.search(r": (pg-\d) on", done[2]).group(1)
    route = done[0]
    conf_w = [h for h in hooks if h[1] == newp and h[0] > collect_done - 0.05 and "ANY" in h[2]]
    promoted = [h for h in hooks if h[1] == newp and h[0] > collect_done and "promoted" in h[2]]
    g = [t for t in gw if t >= route - 0.01]
    rows.append(dict(kill_to_down=down - t_kill, down_to_fence=fence_pub - down, fence_to_collect=collect_done - fence_pub,
                     promote_to_conf=(conf_w[0][0] - promote_start) if conf_w else None,
                     conf_to_promoted=(promoted[0][0] - conf_w[0][0]) if conf_w and promoted else None,
                     promoted_to_route=(route - promoted[0][0]) if promoted else None,
                     route_to_gw=(g[0] - route) if g else None,
                     route_to_sent=t_sent - route, sent_to_ack=first[2] - first[1], downtime=r["downtime_s"], load=r["load"],
                     steps=done[2].split("[")[-1].rstrip("]")))
for k in ["kill_to_down", "down_to_fence", "fence_to_collect", "promote_to_conf", "conf_to_promoted", "promoted_to_route", "route_to_gw", "route_to_sent", "sent_to_ack", "downtime"]:
    v = sorted(x[k] for x in rows if x[k] is not None)
    if v: print(f"{k:20s} median {v[len(v)//2]*1000:6.0f} ms  min {v[0]*1000:6.0f}  max {v[-1]*1000:6.0f}  (n={len(v)})")
for x in rows:
    print(f"  downtime {x['downtime']:.3f} load {x['load']}: kill->down {x['kill_to_down']*1000:.0f}, ->fence {x['down_to_fence']*1000:.0f}, ->collected {x['fence_to_collect']*1000:.0f}, promote->conf written {x['promote_to_conf'] and x['promote_to_conf']*1000:.0f}, ->promoted {x['conf_to_promoted'] and x['conf_to_promoted']*1000:.0f}, ->routed {x['promoted_to_route'] and x['promoted_to_route']*1000:.0f}, route->INSERT sent {x['route_to_sent']*1000:.0f}, ->acked {x['sent_to_ack']*1000:.0f} | {x['steps']}")
# The reconfiguration's own step durations (its reconfigure-done event).
st = collections.defaultdict(list)
for x in rows:
    for part in x["steps"].split(", "):
        n, v = part.split(" ")
        st[n].append(int(v.rstrip("ms")))
print("op steps median (max): " + ", ".join(f"{n} {sorted(v)[len(v)//2]} ({max(v)})" for n, v in st.items()))
# the actual SIGKILL: the standbys' WAL stream breaks
brk = []
for f in glob.glob(S + "/nodes/*/logs/pg-*.log"):
    for line in open(f):
        if "could not receive data from WAL stream" in line:
            brk.append(ts(line[:23]))
brk.sort()
lag = []
for r in kills:
    lo, hi = r["ack_range"]
    rs = [a for a in acks if lo <= a[0] <= hi]
    i = max(range(1, len(rs)), key=lambda i: rs[i][2] - rs[i - 1][2])
    t_first = rs[i][2] + off
    t_kill = t_first - r["downtime_s"]
    b = [t for t in brk if t >= t_kill - 0.05]
    if b: lag.append((b[0] - t_kill, t_first - b[0]))
lag.sort(key=lambda x: x[1])
v = [x[1] for x in lag]
print("hafab kill CLI until the SIGKILL (median, max): %.0f / %.0f ms" % (sorted(x[0] for x in lag)[len(lag)//2]*1000, max(x[0] for x in lag)*1000))
print("downtime from the actual SIGKILL: p50 %.2f max %.2f (n=%d)" % (v[len(v)//2], v[-1], len(v)))
