#!/usr/bin/python3
"""PostgreSQL failover bench: hafab, Patroni and pg_auto_failover side by side (issue 14).

Run by bench/postgres/run.sh (which installs what it needs and builds hafab). Each system runs
three PostgreSQL 15 instances on loopback; one client commits one row per transaction through
the system's stable address; the primary's whole node (PostgreSQL and its agent) is SIGKILLed
--runs times, then one planned switchover. Per kill:

  downtime   kill -> the first acknowledged commit among those sent after the kill (by
             another server than the old primary); for the switchover, the longest time
             between two acknowledgements from the command on
  lost       acknowledged ids missing when all rows are read back at the end
  rejoin     kill -> the old node's PostgreSQL in recovery and streaming again. The node is
             restarted once the new primary acknowledged a commit (at least 3 s after the kill,
             at most 120 s: a node restarted before the failover would simply recover); hafab's
             is restarted by `hafab up --revive-after 10s`
  errors     client errors by class (SQLSTATE name, or `connection`), from the kill on
  single     commits acknowledged by a primary whose synchronous_standby_names was empty at
             the last sample (every 50 ms) before the ack: held by one copy only; and the
             time covered by those samples

Usage: bench.py --hafab BIN --work DIR [--runs N] [--systems hafab,patroni,patroni-tuned,pgaf]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg2
import psycopg2.errorcodes

PG_BIN = "/usr/lib/postgresql/15/bin"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def now():
    return time.monotonic()


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, file=sys.stderr, flush=True)


def wait_for(what, pred, timeout, step=0.05):
    deadline = now() + timeout
    while now() < deadline:
        try:
            if pred():
                return True
        except Exception:  # noqa: BLE001 - a probe that fails is "not yet"
            pass
        time.sleep(step)
    log(f"timed out after {timeout} s: {what}")
    return False


def as_postgres(cmd):
    """cmd run as the postgres account (PostgreSQL refuses root), exec'd: same pid."""
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"] + cmd


def error_class(e):
    if getattr(e, "pgcode", None):
        return psycopg2.errorcodes.lookup(e.pgcode)
    if isinstance(e, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        return "connection"
    return type(e).__name__


class Client(threading.Thread):
    """Commits INSERT INTO bench (id) VALUES (n) one per transaction (autocommit) through
    `dsn`; records (id, sent, acked, server port) for each acknowledged commit and
    (time, class) for each error. A lost session is opened again (20 ms apart)."""

    def __init__(self, dsn):
        super().__init__(daemon=True)
        self.dsn = dsn
        self.acks = []
        self.errors = []
        self.stop = False
        self.n = 0

    def run(self):
        conn = None
        while not self.stop:
            if conn is None:
                try:
                    conn = psycopg2.connect(self.dsn, connect_timeout=1)
                    conn.autocommit = True
                    cur = conn.cursor()
                except psycopg2.Error as e:
                    self.errors.append((now(), error_class(e)))
                    conn = None
                    time.sleep(0.02)
                    continue
            self.n += 1
            sent = now()
            try:
                cur.execute("INSERT INTO bench (id) VALUES (%s) RETURNING inet_server_port()",
                            (self.n,))
                port = cur.fetchone()[0]
                self.acks.append((self.n, sent, now(), port))
            except psycopg2.Error as e:
                self.errors.append((sent, error_class(e)))
                try:
                    conn.close()
                except psycopg2.Error:
                    pass
                conn = None
                time.sleep(0.02)
        if conn is not None:
            conn.close()


class Poller(threading.Thread):
    """Samples one PostgreSQL instance every 50 ms: (time, in recovery, synchronous_standby_names,
    synchronous standbys streaming, standbys streaming, wal receiver status); None when it does
    not answer."""

    QUERY = """SELECT pg_is_in_recovery(), current_setting('synchronous_standby_names'),
      (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'
         AND sync_state IN ('sync', 'quorum')),
      (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'),
      coalesce((SELECT status FROM pg_stat_wal_receiver), '')"""

    def __init__(self, port, user_dsn):
        super().__init__(daemon=True)
        self.port = port
        self.dsn = f"host=127.0.0.1 port={port} {user_dsn} application_name=bench-poller"
        self.samples = []
        self.stop = False

    def last(self):
        return self.samples[-1] if self.samples else (0, None)

    def run(self):
        conn = None
        while not self.stop:
            t = now()
            try:
                if conn is None:
                    conn = psycopg2.connect(self.dsn, connect_timeout=1)
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(self.QUERY)
                    self.samples.append((t, cur.fetchone()))
            except psycopg2.Error:
                self.samples.append((t, None))
                if conn is not None:
                    try:
                        conn.close()
                    except psycopg2.Error:
                        pass
                conn = None
            time.sleep(max(0.0, 0.05 - (now() - t)))
        if conn is not None:
            conn.close()


class System:
    """Three PostgreSQL instances under one HA system. Subclasses: start, stop, kill_node,
    revive_node, switchover, node_of_port."""

    user_dsn = "user=postgres password=postgres dbname=postgres"

    def __init__(self, name, work):
        self.name = name
        self.work = os.path.join(work, name)
        os.makedirs(self.work, exist_ok=True)
        os.chmod(self.work, 0o777)
        self.procs = []

    def spawn(self, cmd, logname, env=None, cwd=None):
        out = open(os.path.join(self.work, logname), "ab")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = now() + 30
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - now()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        # PostgreSQL servers detached from their agent (Patroni starts postgres in a session
        # of its own): each postmaster.pid under this system's directory.
        for d, _, files in os.walk(self.work):
            pid = self.postmaster_pid(d) if "postmaster.pid" in files else None
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if pid and b"postgres" in f.read():
                        self.kill_pids([pid])
            except OSError:
                pass

    def state(self, port):
        """The last sample of the instance on port (None: down)."""
        return self.pollers[port].last()[1]

    def primary_port(self):
        ports = [p for p in self.ports if (s := self.state(p)) is not None and not s[0]]
        return ports[0] if len(ports) == 1 else None

    def healthy(self):
        """One primary with both others streaming from it and a synchronous standby."""
        p = self.primary_port()
        if p is None:
            return False
        s = self.state(p)
        if s[1] == "" or s[2] < 1 or s[3] < 2:
            return False
        return all((st := self.state(q)) is not None and st[0] and st[4] == "streaming"
                   for q in self.ports if q != p)

    @staticmethod
    def port_answers(port, db="postgres", user="postgres"):
        c = psycopg2.connect(host="127.0.0.1", port=port, user=user, password="postgres",
                             dbname=db, connect_timeout=1)
        c.close()
        return True

    def kill_pids(self, pids):
        groups = set()
        for pid in pids:
            try:
                groups.add(os.getpgid(pid))
            except ProcessLookupError:
                pass
        for g in groups:
            try:
                os.killpg(g, signal.SIGKILL)
            except ProcessLookupError:
                pass

    @staticmethod
    def postmaster_pid(pgdata):
        try:
            with open(os.path.join(pgdata, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None


class Hafab(System):
    def __init__(self, work, hafab, base):
        super().__init__("hafab", work)
        self.hafab = hafab
        self.endpoint = base
        self.ports = [base + 1, base + 2, base + 3]
        self.state_dir = os.path.join(self.work, "state")
        self.dsn = f"host=127.0.0.1 port={self.endpoint} {self.user_dsn}"
        self.revives_itself = True
        self.revive_after = 10

    def cli(self, *args, timeout=60):
        r = subprocess.run([self.hafab, *args, "--state-dir", self.state_dir],
                           capture_output=True, text=True, timeout=timeout)
        return r.stdout + r.stderr

    def start(self):
        with open(os.path.join(ROOT, "examples/postgres/postgres.yaml")) as f:
            manifest = f.read()
        manifest = manifest.replace("listen: 127.0.0.1:7400", f"listen: 127.0.0.1:{self.endpoint}")
        manifest = manifest.replace("port: 7401", f"port: {self.ports[0]}")
        path = os.path.join(self.work, "postgres.yaml")
        with open(path, "w") as f:
            f.write(manifest)
        env = dict(os.environ, PATH=os.path.join(ROOT, "examples/postgres") + ":" + os.environ["PATH"])
        self.spawn([self.hafab, "up", path, "--state-dir", self.state_dir, "--no-watch",
                    "--revive-after", "10s"], "up.log", env=env, cwd=ROOT)

    def replicas(self):
        j = json.loads(self.cli("get", "replicas", "pg", "-o", "json"))
        return j.get("instances", [])

    def node_of_port(self, port):
        for r in self.replicas():
            if str(r.get("address", "")).endswith(f":{port}") or r.get("port") == port:
                return r["node"]
        raise RuntimeError(f"no replica on port {port}: {self.replicas()}")

    def kill_node(self, node):
        out = self.cli("kill", node)
        if "sent SIGKILL" not in out:
            raise RuntimeError(out)

    def revive_node(self, node):
        pass  # `up --revive-after 10s`

    def switchover(self):
        return self.cli("failover", "pg", timeout=120)

    def stop(self):
        self.stop_all()


class Patroni(System):
    """Patroni 3 with one etcd, HAProxy in front checking GET /primary on the REST API (the
    configuration of Patroni's docs/examples/haproxy.cfg)."""

    def __init__(self, work, base, tuned):
        super().__init__("patroni-tuned" if tuned else "patroni", work)
        self.ttl, self.loop_wait, self.retry = (10, 2, 4) if tuned else (30, 10, 10)
        self.etcd_port, self.etcd_peer, self.haproxy_port = base, base + 1, base + 2
        self.ports = [base + 10, base + 11, base + 12]
        self.rest = [base + 20, base + 21, base + 22]
        self.dsn = f"host=127.0.0.1 port={self.haproxy_port} {self.user_dsn}"
        self.nodes = {}  # name -> Popen
        self.revives_itself = False

    def config(self, i):
        d = os.path.join(self.work, f"pg{i}")
        os.makedirs(d, exist_ok=True)
        subprocess.run(["chown", "postgres:postgres", d], check=True)
        path = os.path.join(d, "patroni.yml")
        with open(path, "w") as f:
            f.write(f"""scope: bench
name: pg{i}
restapi:
  listen: 127.0.0.1:{self.rest[i]}
  connect_address: 127.0.0.1:{self.rest[i]}
etcd3:
  hosts: 127.0.0.1:{self.etcd_port}
bootstrap:
  dcs:
    ttl: {self.ttl}
    loop_wait: {self.loop_wait}
    retry_timeout: {self.retry}
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_log_hints: 'on'
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 512MB
  initdb:
  - encoding: UTF8
  - locale: C
  - data-checksums
  pg_hba:
  - host replication replicator 127.0.0.1/32 scram-sha-256
  - host all all 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:{self.ports[i]}
  connect_address: 127.0.0.1:{self.ports[i]}
  data_dir: {d}/data
  bin_dir: {PG_BIN}
  pgpass: {d}/pgpass
  authentication:
    replication: {{username: replicator, password: rep}}
    superuser: {{username: postgres, password: postgres}}
    rewind: {{username: postgres, password: postgres}}
  parameters:
    unix_socket_directories: '{d}'
""")
        return path

    def start_node(self, i):
        self.nodes[i] = self.spawn(as_postgres(["patroni", self.config(i)]), f"patroni{i}.log")

    def start(self):
        self.spawn(["etcd", "--name", "e", "--data-dir", os.path.join(self.work, "etcd"),
                    "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                    "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                    "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
                    "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.etcd_peer}",
                    "--initial-cluster", f"e=http://127.0.0.1:{self.etcd_peer}"], "etcd.log")
        wait_for("etcd", lambda: subprocess.run(
            ["etcdctl", f"--endpoints=127.0.0.1:{self.etcd_port}", "endpoint", "health"],
            capture_output=True).returncode == 0, 30)
        servers = "\n".join(
            f"    server pg{i} 127.0.0.1:{self.ports[i]} maxconn 100 check port {self.rest[i]}"
            for i in range(3))
        cfg = os.path.join(self.work, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(f"""global
    maxconn 100

defaults
    log global
    mode tcp
    retries 2
    timeout client 30m
    timeout connect 4s
    timeout server 30m
    timeout check 5s

listen primary
    bind 127.0.0.1:{self.haproxy_port}
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions
{servers}
""")
        self.spawn(["haproxy", "-db", "-f", cfg], "haproxy.log")
        for i in range(3):
            self.start_node(i)
            if i == 0:  # the first one bootstraps the cluster
                wait_for("patroni pg0 primary", lambda: self.port_answers(self.ports[0]), 120)

    def node_of_port(self, port):
        return self.ports.index(port)

    def kill_node(self, i):
        pm = self.postmaster_pid(os.path.join(self.work, f"pg{i}", "data"))
        self.kill_pids([self.nodes[i].pid] + ([pm] if pm else []))
        self.nodes[i].wait()

    def revive_node(self, i):
        self.start_node(i)

    def switchover(self):
        leader = f"pg{self.ports.index(self.primary_port())}"
        r = subprocess.run(as_postgres(["patronictl", "-c", os.path.join(self.work, "pg0", "patroni.yml"),
                                        "switchover", "--leader", leader, "--force"]),
                           capture_output=True, text=True, timeout=120)
        return r.stdout + r.stderr

    def stop(self):
        self.stop_all()


class AutoFailover(System):
    """pg_auto_failover 2.0: a monitor and three keepers (pg_autoctl), default settings;
    the client connects with a multi-host connection string, target_session_attrs=read-write."""

    def __init__(self, work, base):
        super().__init__("pgaf", work)
        self.monitor_port = base
        self.ports = [base + 1, base + 2, base + 3]
        hosts = ",".join(["127.0.0.1"] * 3)
        ports = ",".join(map(str, self.ports))
        self.dsn = (f"host={hosts} port={ports} target_session_attrs=read-write {self.user_dsn}")
        self.monitor_uri = (f"postgres://autoctl_node@127.0.0.1:{self.monitor_port}/"
                            "pg_auto_failover?sslmode=disable")
        self.env = dict(os.environ, PATH=f"{PG_BIN}:{os.environ['PATH']}",
                        XDG_CONFIG_HOME=os.path.join(self.work, "xdg-config"),
                        XDG_DATA_HOME=os.path.join(self.work, "xdg-data"),
                        XDG_RUNTIME_DIR=os.path.join(self.work, "xdg-run"), PGHOST="127.0.0.1")
        self.nodes = {}
        self.revives_itself = False

    def autoctl(self, *args, timeout=120):
        r = subprocess.run(as_postgres(["pg_autoctl", *args]), capture_output=True, text=True,
                           env=self.env, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"pg_autoctl {' '.join(args)}: {r.stdout}{r.stderr}")
        return r.stdout + r.stderr

    def pgdata(self, i):
        return os.path.join(self.work, f"node{i}")

    def start(self):
        subprocess.run(["chown", "postgres:postgres", self.work], check=True)
        mon = os.path.join(self.work, "monitor")
        self.autoctl("create", "monitor", "--pgdata", mon, "--pgport", str(self.monitor_port),
                     "--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl")
        self.spawn(as_postgres(["pg_autoctl", "run", "--pgdata", mon]), "monitor.log", env=self.env)
        wait_for("monitor", lambda: self.port_answers(self.monitor_port, "pg_auto_failover",
                                                      "autoctl_node"), 60)
        for i in range(3):
            self.autoctl("create", "postgres", "--pgdata", self.pgdata(i), "--pgport",
                         str(self.ports[i]), "--hostname", "127.0.0.1", "--name", f"node{i}",
                         "--auth", "trust", "--no-ssl", "--pgctl", f"{PG_BIN}/pg_ctl",
                         "--monitor", self.monitor_uri, timeout=300)
            self.start_node(i)
            want = "single" if i == 0 else "secondary"
            wait_for(f"pgaf node{i} {want}", lambda: self.node_state(i) == want, 180, step=0.5)

    def node_state(self, i):
        out = self.autoctl("show", "state", "--pgdata", self.pgdata(i), "--json")
        for n in json.loads(out):
            if n.get("nodename") == f"node{i}":
                return n.get("current_group_state")
        return None

    def start_node(self, i):
        self.nodes[i] = self.spawn(as_postgres(["pg_autoctl", "run", "--pgdata", self.pgdata(i)]),
                                   f"node{i}.log", env=self.env)

    def node_of_port(self, port):
        return self.ports.index(port)

    def kill_node(self, i):
        pm = self.postmaster_pid(self.pgdata(i))
        self.kill_pids([self.nodes[i].pid] + ([pm] if pm else []))
        self.nodes[i].wait()

    def revive_node(self, i):
        self.start_node(i)

    def switchover(self):
        return self.autoctl("perform", "switchover", "--monitor", self.monitor_uri,
                            "--formation", "default", "--group", "0", timeout=180)

    def stop(self):
        self.stop_all()


def percentile(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))]


def single_copy(system, acks, t0, t1):
    """Commits acknowledged in [t0, t1) by a primary whose last sample before the ack had
    synchronous_standby_names empty, and the sampled time they cover."""
    count, covered = 0, 0.0
    by_port = {p: system.pollers[p].samples for p in system.ports}
    marks = set()
    for (_, _, acked, port) in acks:
        if not t0 <= acked < t1 or port not in by_port:
            continue
        samples = by_port[port]
        lo, hi = 0, len(samples)  # last sample with time <= acked
        while lo < hi:
            mid = (lo + hi) // 2
            if samples[mid][0] <= acked:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0:
            continue
        t, s = samples[lo - 1]
        if s is not None and not s[0] and s[1] == "":
            count += 1
            if (port, lo - 1) not in marks:
                marks.add((port, lo - 1))
                nxt = samples[lo][0] if lo < len(samples) else t + 0.05
                covered += nxt - t
    return count, covered


def bench_system(system, runs, out):
    log(f"{system.name}: starting (load average {os.getloadavg()[0]:.1f})")
    load = [os.getloadavg()[0]]
    system.start()
    system.pollers = {p: Poller(p, system.user_dsn) for p in system.ports}
    for p in system.pollers.values():
        p.start()
    if not wait_for(f"{system.name} healthy", system.healthy, 300, step=0.2):
        raise RuntimeError(f"{system.name} never became healthy")

    def create():
        c = psycopg2.connect(system.dsn, connect_timeout=2)
        c.autocommit = True
        c.cursor().execute("CREATE TABLE IF NOT EXISTS bench (id bigint PRIMARY KEY)")
        c.close()
        return True

    wait_for("table created through the stable address", create, 120, step=0.5)
    client = Client(system.dsn)
    client.start()
    wait_for("commits flowing", lambda: len(client.acks) >= 50, 60)
    results = []
    for run in range(runs + 1):
        kind = "kill" if run < runs else "switchover"
        if not wait_for(f"{system.name} healthy before {kind} {run}", system.healthy, 300, step=0.2):
            results.append({"kind": kind, "failed": "not healthy before the run"})
            continue
        time.sleep(2)  # steady commits first
        old_port = system.primary_port()
        n_acks, n_err = len(client.acks), len(client.errors)
        # Which node to kill is looked up first: for hafab that is a CLI call (`hafab get
        # replicas`, ~0.1-0.3 s here), not part of the outage.
        node = system.node_of_port(old_port) if kind == "kill" else None
        t_kill = now()
        if kind == "kill":
            system.kill_node(node)
            log(f"{system.name} run {run}: killed node {node} (port {old_port})")
        else:
            log(f"{system.name}: switchover from port {old_port}")
            so_out = system.switchover()
            log(f"{system.name}: switchover: {so_out.strip()[-400:]}")
        first = None
        revived = None

        def first_ack_after():
            nonlocal first
            for (_, sent, acked, port) in client.acks[n_acks:]:
                if sent > t_kill and port != old_port:
                    first = acked
                    return True
            return False

        deadline = t_kill + 300
        rejoined = None
        while now() < deadline and (first is None or rejoined is None):
            if first is None:
                first_ack_after()
            if kind == "kill" and revived is None and not system.revives_itself and (
                    first is not None or now() - t_kill > 120) and now() - t_kill >= 3:
                system.revive_node(node)
                revived = now()
            s = system.state(old_port)
            if rejoined is None and s is not None and s[0] and s[4] == "streaming":
                rejoined = now()
            time.sleep(0.05)
        if kind == "kill" and system.revives_itself:
            revived = t_kill + system.revive_after
        # Let the run settle before counting its errors and single-copy commits.
        wait_for("healthy after the run", system.healthy, 120, step=0.2)
        t_end = now()
        errors = {}
        for (t, cls) in client.errors[n_err:]:
            errors[cls] = errors.get(cls, 0) + 1
        sc_count, sc_time = single_copy(system, client.acks, t_kill, t_end)
        r = {
            "kind": kind,
            "downtime_s": None if first is None else round(first - t_kill, 3),
            "max_gap_s": round(max_gap(client.acks, n_acks), 3),
            "rejoin_s": None if rejoined is None else round(rejoined - t_kill, 3),
            "rejoin_after_restart_s": None if rejoined is None or revived is None else round(rejoined - revived, 3),
            "errors": errors,
            "single_copy_commits": sc_count,
            "single_copy_s": round(sc_time, 3),
            "new_primary_port": system.primary_port(),
            "old_primary_port": old_port,
            "load": round(os.getloadavg()[0], 1),
            "ack_range": [client.acks[n_acks][0] if len(client.acks) > n_acks else None,
                          client.acks[-1][0] if client.acks else None],
        }
        log(f"{system.name} {kind} {run}: {json.dumps(r)}")
        results.append(r)
    time.sleep(1)
    client.stop = True
    client.join(30)
    # Every acknowledged id read back through the stable address.
    have = set()

    def read_back():
        c = psycopg2.connect(system.dsn, connect_timeout=2)
        with c.cursor() as cur:
            cur.execute("SELECT id FROM bench")
            have.update(r[0] for r in cur.fetchall())
        c.close()
        return True

    wait_for("read back", read_back, 120, step=0.5)
    lost = [a for a in client.acks if a[0] not in have]
    for r in results:
        lo, hi = r.get("ack_range", [None, None])
        r["lost"] = sum(1 for a in lost if lo is not None and lo <= a[0] <= hi)
    for p in system.pollers.values():
        p.stop = True
    summary = {"system": system.name, "runs": results, "acked": len(client.acks),
               "lost_total": len(lost), "errors_total": len(client.errors),
               "load": load + [r["load"] for r in results if "load" in r],
               "acks": client.acks, "errors": client.errors}
    out[system.name] = summary
    log(f"{system.name}: {len(client.acks)} acknowledged, {len(lost)} lost")
    return summary


def max_gap(acks, start):
    gaps = [acks[i][2] - acks[i - 1][2] for i in range(max(1, start), len(acks))]
    return max(gaps) if gaps else 0.0


def table(out):
    rows = ["| system | kills | downtime p50 s | p99 s | max | lost | rejoin p50 s (after restart) "
            "| single-copy commits (s) | read-only errors | other errors | switchover gap s, lost, errors "
            "| load average |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for name, s in out.items():
        kills = [r for r in s["runs"] if r["kind"] == "kill" and "failed" not in r]
        so = [r for r in s["runs"] if r["kind"] == "switchover" and "failed" not in r]
        down = [r["downtime_s"] for r in kills if r["downtime_s"] is not None]
        rej = [r["rejoin_s"] for r in kills if r["rejoin_s"] is not None]
        rej2 = [r["rejoin_after_restart_s"] for r in kills if r["rejoin_after_restart_s"] is not None]
        ro = sum(r["errors"].get("READ_ONLY_SQL_TRANSACTION", 0) for r in kills)
        other = sum(v for r in kills for k, v in r["errors"].items() if k != "READ_ONLY_SQL_TRANSACTION")
        sc = sum(r["single_copy_commits"] for r in kills)
        sct = sum(r["single_copy_s"] for r in kills)
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        sw = "-"
        if so:
            r = so[0]
            sw = f"{r['max_gap_s']:.2f}, {r['lost']}, {sum(r['errors'].values())} ({r['single_copy_commits']} single-copy)"
        rows.append(f"| {name} | {len(down)}/{len([r for r in s['runs'] if r['kind'] == 'kill'])} "
                    f"| {fmt(percentile(down, 50))} | {fmt(percentile(down, 99))} "
                    f"| {fmt(max(down) if down else None)} | {sum(r['lost'] for r in kills)} "
                    f"| {fmt(percentile(rej, 50))} ({fmt(percentile(rej2, 50))}) | {sc} ({sct:.1f}) "
                    f"| {ro} | {other} | {sw} | {min(s['load']):.0f}-{max(s['load']):.0f} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hafab", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--systems", default="hafab,patroni,patroni-tuned,pgaf")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the systems are stopped on the way
    out = {}
    makers = {
        "hafab": lambda: Hafab(a.work, a.hafab, 27400),
        "patroni": lambda: Patroni(a.work, 27500, tuned=False),
        "patroni-tuned": lambda: Patroni(a.work, 27600, tuned=True),
        "pgaf": lambda: AutoFailover(a.work, 27700),
    }
    for name in a.systems.split(","):
        system = makers[name]()
        try:
            bench_system(system, a.runs, out)
        except Exception as e:  # noqa: BLE001 - report and go on with the next system
            log(f"{name}: failed: {e!r}")
            out[name] = {"system": name, "failed": repr(e), "runs": []}
        finally:
            system.stop()
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
    print(table({k: v for k, v in out.items() if "failed" not in v}))
    for k, v in out.items():
        if "failed" in v:
            print(f"{k}: failed: {v['failed']}")


if __name__ == "__main__":
    main()
