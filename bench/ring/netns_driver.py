#!/usr/bin/env python3
"""Drives the scenarios of bench/ring/netns.sh against a running cluster (controller, gateway
and one agent per network namespace): a writer through the gateway, the faults, the figures.

Prints one line per figure, `FIG <detector> <scenario> <name> <value>`, and one per broken
expectation, `FAIL <detector> <scenario> <why>`; exits 1 when any expectation failed.
Standard library only (http.client with keep-alive)."""
import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

FAILS = []
LABEL = None  # the run's name in the figures (--label; default the detector)


def fail(det, sc, why):
    FAILS.append(why)
    print(f"FAIL {LABEL or det} {sc} {why}", flush=True)


def fig(det, sc, name, value):
    print(f"FIG {LABEL or det} {sc} {name} {value}", flush=True)


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, flush=True)


class Api:
    def __init__(self, url, token):
        self.url, self.token = url.rstrip("/"), token

    def get(self, path):
        req = urllib.request.Request(self.url + path,
                                     headers={"Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(req, timeout=2) as r:
            return json.loads(r.read())

    def status(self):
        return self.get("/v1/status")

    def has_primary(self):
        p = self.primary()
        return p if p[1] else None

    def primary(self, role="kvd"):
        for i in self.status().get("instances", []):
            if i.get("role") == role and i.get("primary") and i.get("state") == "running":
                return i.get("instance"), i.get("node")
        return None, None

    def node(self, name):
        for n in self.status().get("nodes", []):
            if n.get("name") == name:
                return n
        return None

    def last_event(self):
        return self.status().get("last_event", 0)

    def events(self, after, node=None, types=None):
        out = []
        for e in self.get("/v1/events").get("events", []):
            if e.get("id", 0) <= after:
                continue
            if types and e.get("type") not in types:
                continue
            if node and f"node {node} " not in e.get("message", ""):
                continue
            out.append(e)
        return out


def wait_for(what, cond, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = cond()
        except Exception:  # the controller or a node is being faulted: try again
            v = None
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(interval)


class Writer:
    """PUTs distinct keys every `interval` through one keep-alive connection (reconnecting on
    error); a key is replaced by the next only once acknowledged."""

    def __init__(self, host, port, prefix, interval=0.005):
        self.host, self.port, self.prefix, self.interval = host, port, prefix, interval
        self.acks = []  # (key, sent, acked, instance, epoch), monotonic seconds
        self.failures = 0
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.running = False
        self.thread.join()

    def loop(self):
        conn, key, nxt = None, 0, time.monotonic()
        while self.running:
            sent = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
                k = f"{self.prefix}{key}"
                conn.request("PUT", "/kv/" + k, body=f"v{key}")
                r = conn.getresponse()
                r.read()
                done = time.monotonic()
                if r.status == 200:
                    with self.lock:
                        self.acks.append((k, sent, done, r.getheader("x-hafab-instance", ""),
                                          int(r.getheader("x-hafab-epoch", "0") or 0)))
                    key += 1
                else:
                    self.failures += 1
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception:
                self.failures += 1
                if conn is not None:
                    conn.close()
                conn = None
            nxt += self.interval
            now = time.monotonic()
            if nxt > now:
                time.sleep(nxt - now)  # pacing the load
            else:
                nxt = now

    def snapshot(self):
        with self.lock:
            return list(self.acks)

    def first_ack_sent_after(self, t):
        for a in reversed(self.snapshot()):
            if a[1] < t:
                break
        for a in self.snapshot():
            if a[1] >= t:
                return a
        return None

    def first_ack_newer(self, t, epoch):
        """The first write sent at or after t and acknowledged at an epoch above `epoch` (by a
        new primary)."""
        for a in self.snapshot():
            if a[1] >= t and a[4] > epoch:
                return a
        return None

    def check(self, host, port):
        """Every acknowledged key reads back its value (lost writes); no write acknowledged
        under an older epoch after a newer one was seen, and no two (instance, epoch)
        servers acknowledging in overlapping time (split brain)."""
        acks = self.snapshot()
        lost, why = 0, []
        conn = None
        patience = 10
        for k, _, _, inst, ep in acks:
            want = "v" + k[len(self.prefix):]
            deadline = time.monotonic() + patience
            while True:
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(host, port, timeout=3)
                    conn.request("GET", "/kv/" + k)
                    r = conn.getresponse()
                    body = r.read().decode()
                    if r.status == 200 or r.status == 404:
                        ok = r.status == 200 and body == want
                        break
                except Exception:
                    if conn is not None:
                        conn.close()
                    conn = None
                if time.monotonic() > deadline:
                    ok = False
                    patience = 0.5
                    break
                time.sleep(0.05)
            if not ok:
                lost += 1
                if len(why) < 5:
                    why.append(f"acknowledged key {k} ({inst} epoch {ep}) lost")
        split = 0
        max_ep = 0
        for k, _, _, inst, ep in acks:
            if ep < max_ep:
                split += 1
                if len(why) < 10:
                    why.append(f"key {k} acknowledged by {inst} at epoch {ep} after epoch {max_ep}")
            max_ep = max(max_ep, ep)
        ranges = {}
        for _, _, acked, inst, ep in acks:
            r = ranges.setdefault((inst, ep), [acked, acked])
            r[1] = acked
        items = sorted(ranges.items(), key=lambda kv: kv[1][0])
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                a, b = items[i][1], items[j][1]
                if a[0] < b[1] and b[0] < a[1]:
                    split += 1
                    why.append(f"{items[i][0]} and {items[j][0]} acknowledged in overlapping time")
        return len(acks), lost, split, why


def ns_pids(ns):
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def sh(*cmd):
    subprocess.run(cmd, check=True)


def ms(s):
    return int(round(s * 1000))


def ring_up(api, nodes):
    for n in nodes:
        j = api.node(n)
        if not j or j.get("state") != "up" or "ring" not in j or j["ring"].get("received", 0) < 10:
            return False
    return True


def scenario_stop(api, w, det, ns_of, lease):
    _, node = wait_for("a kvd primary", api.has_primary, 20)
    ns = ns_of(node)
    wait_for("writes before the stop", lambda: len(w.snapshot()) >= 100, 20)
    epoch0 = w.snapshot()[-1][4]
    after = api.last_event()
    pids = ns_pids(ns)
    t0 = time.monotonic()
    for p in pids:
        try:
            os.kill(p, 19)  # SIGSTOP
        except ProcessLookupError:
            pass
    log(f"[{det}] SIGSTOP {len(pids)} processes of {node} ({ns})")
    down = {}

    def done():
        if "t" not in down:
            ev = api.events(after, node, ["node-down"])
            if ev:
                down["t"] = time.monotonic() - t0
                down["msg"] = ev[0].get("message", "")
        return "t" in down and w.first_ack_newer(t0, epoch0) is not None

    try:
        wait_for("node-down and a write acknowledged by a new primary", done, 30)
    except TimeoutError as e:
        fail(det, "A", f"{e} (down={down})")
    first = w.first_ack_newer(t0, epoch0)
    for p in pids:
        try:
            os.kill(p, 18)  # SIGCONT
        except ProcessLookupError:
            pass
    new_node = api.primary()[1]
    fig(det, "A", "node", node)
    fig(det, "A", "node_down_ms", ms(down["t"]) if "t" in down else "none")
    fig(det, "A", "first_write_ms", ms(first[2] - t0) if first else "none")
    fig(det, "A", "new_primary", new_node)
    log(f"[{det}] node-down: {down.get('msg', '')}")
    if new_node == node:
        fail(det, "A", f"the primary did not move off {node}")
    try:
        wait_for(f"{node} back up", lambda: (api.node(node) or {}).get("state") == "up", 30)
    except TimeoutError as e:
        fail(det, "A", str(e))
    return down.get("t"), (first[2] - t0) if first else None


RING_RULES = ["pref 10 ipproto udp dport {p} prohibit", "pref 11 ipproto udp sport {p} prohibit"]


def cut_ring(ns, port):
    # The `local` rule (pref 0) moves behind the cut, so that datagrams to the local ring port
    # meet the prohibit first (as tests/e2e/ring_e2e_test.cc does).
    sh("ip", "-n", ns, "rule", "add", "pref", "100", "lookup", "local")
    sh("ip", "-n", ns, "rule", "del", "pref", "0")
    for r in RING_RULES:
        sh("ip", "-n", ns, "rule", "add", *r.format(p=port).split())


def heal_ring(ns):
    for pref in ("10", "11"):
        subprocess.run(["ip", "-n", ns, "rule", "del", "pref", pref])
    subprocess.run(["ip", "-n", ns, "rule", "add", "pref", "0", "lookup", "local"])
    subprocess.run(["ip", "-n", ns, "rule", "del", "pref", "100"])


def scenario_isolate(api, w, det, ns_of, lease, ring_port, hold_leases):
    inst, node = wait_for("a kvd primary", api.has_primary, 20)
    ns = ns_of(node)
    wait_for("writes before the cut", lambda: len(w.snapshot()) >= 100, 20)
    epoch0 = w.snapshot()[-1][4]
    after = api.last_event()
    t0 = time.monotonic()
    cut_ring(ns, ring_port)
    log(f"[{det}] ring UDP port {ring_port} of {node} ({ns}) cut, TCP to the controller passes")
    iso = {}
    try:
        def isolated():
            ev = api.events(after, node, ["node-isolated"])
            if ev:
                iso["e"] = ev[0]
            return bool(ev)

        wait_for("node-isolated", isolated, 15)
        fig(det, "B", "isolated_ms", ms(time.monotonic() - t0))
        log(f"[{det}] node-isolated: {iso['e'].get('message', '')}")
    except TimeoutError as e:
        fail(det, "B", str(e))
        fig(det, "B", "isolated_ms", "none")
    hold_until = time.monotonic() + hold_leases * lease
    moved = None
    while time.monotonic() < hold_until:
        p = api.primary()
        if p[1] is not None and p != (inst, node):
            moved = p
        time.sleep(0.1)
    downs = api.events(after, node, ["node-down"])
    ops = [e for e in api.events(after, None, None) if "failover" in e.get("type", "")]
    acks = [a for a in w.snapshot() if a[1] >= t0]
    epochs = sorted({a[4] for a in acks})
    fig(det, "B", "held_s", hold_leases * lease)
    fig(det, "B", "node_down_events", len(downs))
    fig(det, "B", "failover_events", len(ops))
    fig(det, "B", "epochs_during_cut", ",".join(map(str, epochs)))
    fig(det, "B", "writes_during_cut", len(acks))
    if downs:
        fail(det, "B", f"node-down for a node cut from its neighbours only: {downs[0].get('message')}")
    if moved or ops or any(e != epoch0 for e in epochs):
        fail(det, "B", f"failover while only the ring was cut: primary {moved}, events {ops[:2]}, epochs {epochs}")
    heal_ring(ns)
    t1 = time.monotonic()
    try:
        wait_for("no neighbour suspects the healed node",
                 lambda: not (api.node(node) or {}).get("ring", {}).get("suspected_by", [1]), 20)
        fig(det, "B", "healed_ms", ms(time.monotonic() - t1))
    except TimeoutError as e:
        fail(det, "B", str(e))


def scenario_cut(api, w, det, ns_of, lease, margin):
    inst, node = wait_for("a kvd primary", api.has_primary, 20)
    ns = ns_of(node)
    wait_for("writes before the cut", lambda: len(w.snapshot()) >= 100, 20)
    kvd = [p for p in ns_pids(ns) if comm(p) == "kvd"]
    if len(kvd) != 1:
        fail(det, "C", f"expected one kvd process in {ns}, found {kvd}")
    epoch0 = w.snapshot()[-1][4]
    after = api.last_event()
    t0 = time.monotonic()
    sh("ip", "-n", ns, "link", "set", "eth0", "down")
    log(f"[{det}] {node} ({ns}) cut from everyone (eth0 down); old primary pid(s) {kvd}")
    st = {}

    def done():
        now = time.monotonic() - t0
        if "down" not in st:
            ev = api.events(after, node, ["node-down"])
            if ev:
                st["down"] = now
                st["msg"] = ev[0].get("message", "")
        if "fenced" not in st and kvd and not any(alive(p) for p in kvd):
            st["fenced"] = now
        return "down" in st and ("fenced" in st or not kvd) and w.first_ack_newer(t0, epoch0)

    try:
        wait_for("node-down, the old primary fenced and a write after the cut", done, 30, 0.01)
    except TimeoutError as e:
        fail(det, "C", f"{e} ({st})")
    first = w.first_ack_newer(t0, epoch0)
    new = api.primary()
    fig(det, "C", "node", node)
    fig(det, "C", "node_down_ms", ms(st["down"]) if "down" in st else "none")
    fig(det, "C", "old_primary_killed_ms", ms(st["fenced"]) if "fenced" in st else "none")
    fig(det, "C", "first_write_ms", ms(first[2] - t0) if first else "none")
    fig(det, "C", "new_primary", new[1])
    log(f"[{det}] node-down: {st.get('msg', '')}")
    if new[1] == node:
        fail(det, "C", "the primary did not move")
    if first:
        late = [a for a in w.snapshot() if a[4] <= epoch0 and a[2] > first[2]]
        if late:
            fail(det, "C", f"old primary acknowledged after the new one: {late[:2]}")
    fig(det, "C", "fenced_before_new_write", "yes" if ("fenced" in st and first and st["fenced"] <= first[2] - t0) else "no")
    sh("ip", "-n", ns, "link", "set", "eth0", "up")
    try:
        wait_for(f"{node} back up", lambda: (api.node(node) or {}).get("state") == "up", 30)
    except TimeoutError as e:
        fail(det, "C", str(e))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--api", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--kvd", required=True, help="host:port of the kvd endpoint on the gateway")
    ap.add_argument("--detector", required=True)
    ap.add_argument("--scenarios", default="A")
    ap.add_argument("--label", default=None)
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--ns-prefix", default="hfn")
    ap.add_argument("--lease", type=float, default=1.5)
    ap.add_argument("--margin", type=float, default=0.5)
    ap.add_argument("--ring-port", type=int, default=7946)
    ap.add_argument("--hold-leases", type=float, default=4)
    a = ap.parse_args()
    global LABEL
    LABEL = a.label
    with open(a.token_file) as f:
        api = Api(a.api, f.read().strip())
    nodes = [f"n{i}" for i in range(1, a.nodes + 1)]
    ns_of = lambda n: a.ns_prefix + n[1:]
    det = a.detector
    log(f"[{det}] waiting for the {a.nodes} nodes up and a kvd primary")
    wait_for("every node up", lambda: all((api.node(n) or {}).get("state") == "up" for n in nodes), 60, 0.2)
    if det == "ring":
        wait_for("ring probes on every node", lambda: ring_up(api, nodes), 30, 0.2)
    wait_for("a kvd primary", lambda: api.primary()[1], 60, 0.2)
    host, port = a.kvd.rsplit(":", 1)
    wait_for("kvd through the gateway", lambda: _health(host, int(port)), 60, 0.2)
    w = Writer(host, int(port), f"{det}-{int(time.time())}-")
    w.start()
    try:
        for sc in a.scenarios:
            if sc == "A":
                scenario_stop(api, w, det, ns_of, a.lease)
            elif sc == "B":
                scenario_isolate(api, w, det, ns_of, a.lease, a.ring_port, a.hold_leases)
            elif sc == "C":
                scenario_cut(api, w, det, ns_of, a.lease, a.margin)
            n = len(w.snapshot())
            try:
                wait_for("writes after the scenario", lambda: len(w.snapshot()) >= n + 100, 20)
            except TimeoutError as e:
                fail(det, sc, str(e))
    except Exception as e:  # a wait that timed out outside a scenario's own checks
        fail(det, "-", f"{type(e).__name__}: {e}")
    w.stop()
    acked, lost, split, why = w.check(host, int(port))
    fig(det, "all", "acked", acked)
    fig(det, "all", "failed_requests", w.failures)
    fig(det, "all", "lost", lost)
    fig(det, "all", "split_brain", split)
    for x in why:
        log(x)
    if lost:
        fail(det, "all", f"{lost} acknowledged writes lost")
    if split:
        fail(det, "all", f"{split} split-brain violations")
    for n in nodes:
        j = api.node(n) or {}
        if det == "ring" and j.get("ring", {}).get("dropped_invalid", 0):
            fail(det, "all", f"{n} dropped invalid datagrams: {j['ring']}")
    sys.exit(1 if FAILS else 0)


def _health(host, port):
    try:
        c = http.client.HTTPConnection(host, port, timeout=1)
        c.request("GET", "/health")
        return c.getresponse().status == 200
    except Exception:
        return False


if __name__ == "__main__":
    main()
