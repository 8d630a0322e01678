// hafab-loadgen: N simulated nodes against a real controller, each running the real agent
// (agent::Agent with its ControllerClient over http::ConnectionPool, so the heartbeats, long
// polls and, with failure_detector ring, the UDP ring probes are the agent's own) over a
// NullLauncher whose instances are not processes. Several agents share each io_context thread.
//
// It joins the N nodes (each with its own credential, derived from the controller's
// cluster.key as `hafab up` does), applies a manifest that places one instance per node
// (load-balanced roles and active-passive pairs), waits for it to run, then measures over a
// fixed window: the controller's CPU (/proc/PID/stat utime+stime, % of one core), the
// heartbeats it handled per second (its /metrics), and the heartbeat round trip p50/p99 as the
// agents see it. bench/controller_load/run.sh starts the controller (SQLite or etcd) and runs
// it; README "Benchmarks" and bench/RESULTS.md have the figures.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent.h"
#include "agent/controller_client.h"
#include "agent/procfs.h"
#include "bench/controller_load/null_launcher.h"
#include "bench/controller_load/timed_link.h"
#include "controller/tokens.h"
#include "core/duration.h"
#include "http/http.h"
#include "manifest/limits.h"
#include "testing/fake_provider.h"

namespace hafab::bench {
namespace {

namespace asio = boost::asio;
using nlohmann::json;
using namespace std::chrono_literals;

struct Flags {
  std::string state_dir;
  std::string controller;  // "" = STATE_DIR/api.url
  pid_t controller_pid = 0;
  int nodes = 100;
  int threads = 2;
  std::string detector = "star";
  std::string data_dir;
  std::string ramp = "";  // "" = 2 ms per node
  std::string settle = "5s";
  std::string window = "20s";
  std::string label;
  std::string lease_ttl;                      // settings.lease_ttl of the manifest; "" = left out
  std::string heartbeat_interval = "200ms";   // the agents' (the star's); the ring's controller
                                              // sets its own keep-alive
  std::string ring_probe_interval = "100ms";  // the agents' ring probes (the product's default)
  bool check = false;
  bool verbose = false;
};

// One simulated node: the real agent over a NullLauncher and an in-memory volume provider.
struct SimNode {
  NullLauncher launcher;
  testing::FakeProvider provider;
  std::unique_ptr<agent::ControllerClient> client;
  std::unique_ptr<TimedLink> link;
  std::unique_ptr<agent::Agent> agent;
  std::unique_ptr<asio::steady_timer> start_timer;
};

// The agents of one io_context thread.
struct Group {
  asio::io_context io;
  HeartbeatStats stats;
  std::vector<std::unique_ptr<SimNode>> nodes;
  std::thread thread;
};

std::string NodeName(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "ln%05d", i);
  return buf;
}

// The workload: one instance per node. Active-passive pairs (a primary and a standby) on a
// twentieth of the nodes, at most 100 roles; the rest load-balanced, in roles of at most
// kMaxInstancesPerRole.
struct Workload {
  int active_passive_roles = 0;
  std::vector<int> load_balanced;  // instances of each load-balanced role
  // Instances that run (the standbys of active-passive roles wait without running).
  int running() const {
    int n = active_passive_roles;
    for (int i : load_balanced) n += i;
    return n;
  }
};

Workload PlanWorkload(int nodes) {
  Workload w;
  w.active_passive_roles = std::clamp(nodes / 40, 1, 100);
  int left = std::min(nodes, manifest::kMaxTotalInstances) - 2 * w.active_passive_roles;
  while (left > 0) {
    int n = std::min(left, manifest::kMaxInstancesPerRole);
    w.load_balanced.push_back(n);
    left -= n;
  }
  return w;
}

std::string Manifest(const Workload& w, const std::string& detector, const std::string& lease_ttl) {
  std::ostringstream m;
  m << "cluster: loadgen\nsettings:\n  failure_detector: " << detector << "\n";
  if (!lease_ttl.empty()) m << "  lease_ttl: " << lease_ttl << "\n";
  m << "roles:\n";
  int port = 20000;
  for (size_t i = 0; i < w.load_balanced.size(); ++i) {
    m << "  - name: web" << i << "\n    mode: load-balanced\n    command: web-app\n"
      << "    instances: " << w.load_balanced[i] << "\n    port: " << port << "\n"
      << "    endpoint:\n      listen: 127.0.0.1:" << 40000 + i << "\n";
    port += 1000;
  }
  for (int i = 0; i < w.active_passive_roles; ++i) {
    m << "  - name: db" << i << "\n    mode: active-passive\n    command: db-app\n"
      << "    instances: 2\n    port: " << port << "\n"
      << "    endpoint:\n      listen: 127.0.0.1:" << 41000 + i << "\n";
    port += 2;
  }
  return m.str();
}

class Api {
 public:
  Api(std::string url, std::string token) : url_(std::move(url)), token_(std::move(token)) {}
  Result<json> Call(const std::string& method, const std::string& path,
                    const std::string& body = "") const {
    HAFAB_ASSIGN_OR_RETURN(
        http::Response r,
        http::Fetch(method, url_ + path, body, {{"Authorization", "Bearer " + token_}}, 10s));
    if (r.status / 100 != 2) {
      return Status::Internal(method + " " + path + ": HTTP " + std::to_string(r.status) + " " +
                              r.body);
    }
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded()) return Status::Internal(path + ": not JSON");
    return j;
  }
  // The value of a counter sample in /metrics, e.g. `hafab_controller_heartbeats_total{from=
  // "agent"}`; -1 when it is not there.
  double Metric(const std::string& sample) const {
    auto r =
        http::Fetch("GET", url_ + "/metrics", "", {{"Authorization", "Bearer " + token_}}, 10s);
    if (!r.ok() || r->status != 200) return -1;
    std::istringstream in(r->body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(sample + " ", 0) == 0) return std::stod(line.substr(sample.size() + 1));
    }
    return -1;
  }
  const std::string& url() const { return url_; }

 private:
  std::string url_;
  std::string token_;
};

// Nodes of this run (named ln*) that the controller has up.
int NodesUp(const Api& api) {
  auto r = api.Call("GET", "/v1/nodes");
  if (!r.ok()) return -1;
  int up = 0;
  for (const auto& n : r->value("nodes", json::array())) {
    if (n.value("name", "").rfind("ln", 0) == 0 && n.value("state", "") == "up") ++up;
  }
  return up;
}

int InstancesRunning(const Api& api) {
  auto r = api.Call("GET", "/v1/status");
  if (!r.ok()) return -1;
  int running = 0;
  for (const auto& i : r->value("instances", json::array())) {
    if (i.value("state", "") == "running") ++running;
  }
  return running;
}

// Polls `pred` every 200 ms until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& pred, Duration timeout) {
  const TimePoint deadline = RealClock().Now() + timeout;
  while (RealClock().Now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return pred();
}

uint64_t CpuTicks(pid_t pid) {
  auto st = agent::ReadProcStat(pid);
  return st ? st->cpu_ticks : 0;
}

double Percentile(std::vector<uint32_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k] / 1000.0;
}

Result<std::string> ReadTrimmed(const std::string& path) { return controller::ReadTokenFile(path); }

int Run(const Flags& f) {
  // Progress lines ("# ...") reach a pipe or file as they are printed: scripts wait on them.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  spdlog::set_level(f.verbose ? spdlog::level::info : spdlog::level::err);
  if (f.nodes < 1 || f.threads < 1) {
    spdlog::error("--nodes and --threads: must be at least 1");
    return 2;
  }
  auto key = controller::ReadTokenFile(f.state_dir + "/cluster.key");
  auto admin = controller::ReadTokenFile(f.state_dir + "/admin.token");
  if (!key.ok() || !admin.ok()) {
    spdlog::error("--state-dir {}: {}", f.state_dir,
                  (!key.ok() ? key.status() : admin.status()).message());
    return 2;
  }
  std::string url = f.controller;
  if (url.empty()) {
    auto u = ReadTrimmed(f.state_dir + "/api.url");
    if (!u.ok()) {
      spdlog::error("no --controller and {}", u.status().message());
      return 2;
    }
    url = *u;
  }
  Duration ramp = std::chrono::milliseconds(2) * f.nodes, settle, window, interval,
           probe = std::chrono::milliseconds(100);
  for (auto [flag, text, out] :
       {std::tuple{"--ramp", f.ramp, &ramp}, std::tuple{"--settle", f.settle, &settle},
        std::tuple{"--window", f.window, &window},
        std::tuple{"--heartbeat-interval", f.heartbeat_interval, &interval},
        std::tuple{"--ring-probe-interval", f.ring_probe_interval, &probe}}) {
    if (text.empty()) continue;
    auto d = ParseDuration(text);
    if (!d.ok() || *d < Duration::zero()) {
      spdlog::error("{}: {}", flag, d.ok() ? "must not be negative" : d.status().message());
      return 2;
    }
    *out = *d;
  }
  if (window <= Duration::zero() || interval <= Duration::zero() || probe <= Duration::zero()) {
    spdlog::error("--window, --heartbeat-interval, --ring-probe-interval: must be positive");
    return 2;
  }
  std::string data_dir = f.data_dir;
  if (data_dir.empty()) {
    char tmpl[] = "/dev/shm/hafab-loadgen-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      spdlog::error("cannot create a data directory under /dev/shm");
      return 1;
    }
    data_dir = tmpl;
  }
  const Api api(url, *admin);
  const Workload workload = PlanWorkload(f.nodes);

  // The nodes, round-robin over the groups, each started at its point of the ramp.
  std::vector<std::unique_ptr<Group>> groups;
  for (int t = 0; t < f.threads; ++t) groups.push_back(std::make_unique<Group>());
  for (int i = 0; i < f.nodes; ++i) {
    Group& g = *groups[static_cast<size_t>(i % f.threads)];
    auto n = std::make_unique<SimNode>();
    const std::string name = NodeName(i);
    agent::AgentOptions o;
    o.node = name;
    // An address of its own, as a machine has (all of 127/8 is loopback): with one address
    // for all, every placement would look at every instance for a free port (PortFor).
    o.address = "127.1." + std::to_string(i / 250) + "." + std::to_string(1 + i % 250);
    o.data_dir = data_dir + "/" + name;
    o.heartbeat_interval = interval;
    o.ring.probe_interval = probe;
    o.labels = {{"fault_domain", "fd" + std::to_string(i % 5)},
                {"update_domain", "ud" + std::to_string(i % 10)}};
    o.usage = [](const std::vector<pid_t>&) { return std::map<pid_t, agent::GroupUsage>(); };
    std::error_code ec;
    std::filesystem::create_directories(o.data_dir + "/run", ec);
    std::filesystem::create_directories(o.data_dir + "/logs", ec);
    if (ec) {
      spdlog::error("{}: {}", o.data_dir, ec.message());
      return 1;
    }
    n->client = std::make_unique<agent::ControllerClient>(g.io, std::vector<std::string>{url},
                                                          controller::AgentCredential(*key, name));
    n->link = std::make_unique<TimedLink>(*n->client, g.stats);
    n->agent = std::make_unique<agent::Agent>(g.io, RealClock(), n->launcher, n->provider, nullptr,
                                              *n->link, o);
    n->start_timer = std::make_unique<asio::steady_timer>(g.io);
    n->start_timer->expires_after(ramp * i / f.nodes);
    n->start_timer->async_wait([a = n->agent.get()](boost::system::error_code ec) {
      if (!ec) a->Start();
    });
    g.nodes.push_back(std::move(n));
  }
  const auto started = std::chrono::steady_clock::now();
  for (auto& g : groups) {
    g->thread = std::thread([io = &g->io] {
      auto guard = asio::make_work_guard(*io);
      io->run();
    });
  }
  auto stop = [&] {
    for (auto& g : groups) g->io.stop();
    for (auto& g : groups) g->thread.join();
  };
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };

  int exit_code = 0;
  const Duration join_timeout = std::max<Duration>(60s, ramp + 30ms * f.nodes);
  if (!WaitFor([&] { return NodesUp(api) == f.nodes; }, join_timeout)) {
    spdlog::error("only {} of {} nodes up after {}s", NodesUp(api), f.nodes, elapsed());
    stop();
    return 1;
  }
  std::printf("# %d nodes up after %.1fs\n", f.nodes, elapsed());
  auto applied =
      api.Call("POST", "/v1/apply?file=loadgen.yaml", Manifest(workload, f.detector, f.lease_ttl));
  if (!applied.ok()) {
    spdlog::error("apply: {}", applied.status().message());
    stop();
    return 1;
  }
  const int want_running = workload.running();
  if (!WaitFor([&] { return InstancesRunning(api) >= want_running; }, join_timeout)) {
    spdlog::error("only {} of {} instances running after {}s", InstancesRunning(api), want_running,
                  elapsed());
    stop();
    return 1;
  }
  std::printf("# %d instances running after %.1fs (%zu load-balanced roles, %d active-passive)\n",
              want_running, elapsed(), workload.load_balanced.size(),
              workload.active_passive_roles);
  std::this_thread::sleep_for(settle);  // the benchmark's fixed warm-up, not a wait on a state

  // The window.
  const std::string hb_metric = "hafab_controller_heartbeats_total{from=\"agent\"}";
  const std::string ka_metric = "hafab_controller_agent_keepalives_total{result=\"held\"}";
  for (auto& g : groups) (void)g->stats.Take();
  const double hb0 = api.Metric(hb_metric);
  const double ka0 = api.Metric(ka_metric);
  const uint64_t ctl0 = f.controller_pid > 0 ? CpuTicks(f.controller_pid) : 0;
  const uint64_t own0 = CpuTicks(getpid());
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(window);
  const uint64_t ctl1 = f.controller_pid > 0 ? CpuTicks(f.controller_pid) : 0;
  const uint64_t own1 = CpuTicks(getpid());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double hb1 = api.Metric(hb_metric);
  const double ka1 = api.Metric(ka_metric);
  std::vector<uint32_t> rtt;
  int64_t failed = 0;
  for (auto& g : groups) {
    HeartbeatStats::Window w = g->stats.Take();
    rtt.insert(rtt.end(), w.rtt_us.begin(), w.rtt_us.end());
    failed += w.failed;
  }
  const int up_after = NodesUp(api);
  const int running_after = InstancesRunning(api);
  stop();

  const double tps = static_cast<double>(agent::ClockTicksPerSecond());
  const double ctl_cpu =
      f.controller_pid > 0 ? 100.0 * static_cast<double>(ctl1 - ctl0) / tps / secs : -1;
  const double own_cpu = 100.0 * static_cast<double>(own1 - own0) / tps / secs;
  const double answered = static_cast<double>(rtt.size());
  const double handled = hb0 >= 0 && hb1 >= 0 ? (hb1 - hb0) / secs : -1;
  // Of them keep-alives (-1: a controller without them).
  const double keepalives = ka0 >= 0 && ka1 >= 0 ? (ka1 - ka0) / secs : -1;
  const double p50 = Percentile(rtt, 0.50), p99 = Percentile(rtt, 0.99),
               max = rtt.empty() ? 0 : *std::max_element(rtt.begin(), rtt.end()) / 1000.0;
  std::printf(
      "nodes=%d detector=%s window_s=%.1f controller_cpu_pct=%.1f loadgen_cpu_pct=%.1f "
      "heartbeats_per_s_handled=%.0f keepalives_per_s=%.0f heartbeats_per_s_answered=%.0f "
      "failed=%lld rtt_p50_ms=%.2f rtt_p99_ms=%.2f rtt_max_ms=%.2f nodes_up=%d "
      "instances_running=%d\n",
      f.nodes, f.detector.c_str(), secs, ctl_cpu, own_cpu, handled, keepalives, answered / secs,
      static_cast<long long>(failed), p50, p99, max, up_after, running_after);
  std::printf("| %s | %d | %s | %.1f | %.0f | %.2f | %.2f | %lld | %.1f |\n",
              f.label.empty() ? "-" : f.label.c_str(), f.nodes, f.detector.c_str(), ctl_cpu,
              handled, p50, p99, static_cast<long long>(failed), own_cpu);
  std::fflush(stdout);

  if (f.check) {
    // The smoke test's conditions: every node still up, every instance running, heartbeats
    // answered throughout the window (each node at least once a second), none failed.
    if (up_after != f.nodes) {
      spdlog::error("check: {} of {} nodes up at the end", up_after, f.nodes);
      exit_code = 1;
    }
    // A steady node's heartbeats are keep-alives (its report unchanged).
    if (keepalives < handled / 2) {
      spdlog::error("check: {:.0f} of {:.0f} heartbeats a second were keep-alives", keepalives,
                    handled);
      exit_code = 1;
    }
    if (running_after < want_running) {
      spdlog::error("check: {} of {} instances running at the end", running_after, want_running);
      exit_code = 1;
    }
    if (answered < f.nodes * secs) {
      spdlog::error("check: {} heartbeats answered in {}s, fewer than one a second per node",
                    answered, secs);
      exit_code = 1;
    }
    if (failed > 0) {
      spdlog::error("check: {} heartbeats failed", failed);
      exit_code = 1;
    }
    if (handled < 0) {
      spdlog::error("check: the controller's /metrics has no {}", hb_metric);
      exit_code = 1;
    }
  }
  if (f.data_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(data_dir, ec);
  }
  return exit_code;
}

}  // namespace
}  // namespace hafab::bench

int main(int argc, char** argv) {
  hafab::bench::Flags f;
  CLI::App app{
      "hafab-loadgen: N simulated nodes, each the real agent over a launcher that starts no "
      "processes, against a running controller; prints the controller's CPU and the heartbeat "
      "round trip over a window (bench/controller_load/run.sh)"};
  app.add_option("--state-dir", f.state_dir,
                 "The controller's state directory (cluster.key, admin.token, api.url)")
      ->required();
  app.add_option("--controller", f.controller, "Controller URL (default: STATE_DIR/api.url)");
  app.add_option("--controller-pid", f.controller_pid,
                 "The controller's pid, for its CPU (/proc/PID/stat); none = not measured");
  app.add_option("--nodes", f.nodes, "Simulated nodes")->capture_default_str();
  app.add_option("--threads", f.threads, "io_context threads the agents share")
      ->capture_default_str();
  app.add_option("--detector", f.detector, "settings.failure_detector of the manifest applied")
      ->check(CLI::IsMember({"star", "ring"}))
      ->capture_default_str();
  app.add_option("--data-dir", f.data_dir,
                 "Parent of the agents' data directories (default: a new one in /dev/shm, "
                 "removed at the end)");
  app.add_option("--ramp", f.ramp, "Spread the agents' starts over this long (default 2ms a node)");
  app.add_option("--settle", f.settle, "Wait after every instance runs, before the window")
      ->capture_default_str();
  app.add_option("--window", f.window, "Measurement window")->capture_default_str();
  app.add_option("--lease-ttl", f.lease_ttl,
                 "settings.lease_ttl of the manifest applied (default: left out)");
  app.add_option("--heartbeat-interval", f.heartbeat_interval,
                 "The agents' heartbeat interval (with the star; the ring's controller answers "
                 "with its own keep-alive)")
      ->capture_default_str();
  app.add_option("--ring-probe-interval", f.ring_probe_interval,
                 "How often each agent probes a ring neighbour (with --detector ring). The "
                 "controller sees the same messages either way; a longer one lets one "
                 "generator process on a small machine keep 1 000 ring agents on time")
      ->capture_default_str();
  app.add_option("--label", f.label, "First column of the table row (e.g. the store)");
  app.add_flag("--check", f.check,
               "Exit 1 unless every node stays up, every instance runs and every heartbeat in "
               "the window is answered (the smoke test)");
  app.add_flag("--verbose", f.verbose, "The agents' info logs");
  CLI11_PARSE(app, argc, argv);
  return hafab::bench::Run(f);
}
