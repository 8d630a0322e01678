// Failover benchmark: on an embedded cluster (`hafab up`, 3 nodes, kvd active-passive with 2
// instances, default lease and fence settings), SIGKILLs (a) the kvd primary instance and
// (b) the primary's whole node, and (c) SIGSTOPs the kvd primary (a hung process) on the
// quickstart manifest as shipped, and (d) the same with the kvd role's liveness probe switched
// to tcp (blind to the hang: readiness failover_after fails it over), --runs times each, while
// a client writes through the gateway every 5 ms. Downtime of a run = last write acknowledged
// before the kill -> first write sent after the kill and acknowledged. For node kills it also reads
// the failover operation's step timeline (GET /v1/ops/{id}). Every run must lose no acknowledged
// write and show no split brain; the exit code is non-zero otherwise. (e) `replicated`: the
// primary's node SIGKILLed on examples/replicated.yaml as shipped (3 kvd replicas, quorum 2):
// the same measurement, with the reconfiguration's step timeline.
//
//   failover_bench [--runs N] [--scenario instance|node|both|hang|hang-tcp|replicated|all]
//                  [--verbose]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/cluster.h"
#include "tests/e2e/kv_checker.h"

namespace hafab::bench {
namespace {

using namespace std::chrono_literals;
using e2e::Cluster;
using e2e::KvChecker;
using nlohmann::json;

enum class Fault { kInstanceKill, kNodeKill, kHang, kReplicaNodeKill };

constexpr const char* kReplicatedRole = "kv";  // examples/replicated.yaml's role

struct Options {
  int runs = 20;
  bool instance = true;
  bool node = true;
  bool hang = false;
  bool hang_tcp = false;
  bool replicated = false;
  bool verbose = false;
};

struct RunResult {
  double downtime_ms = 0;
  std::map<std::string, double> steps_ms;  // node kills: failover/reconfigure step -> duration
  std::vector<std::string> step_order;
};

struct Scenario {
  std::string name;
  std::vector<RunResult> runs;
  int failed_runs = 0;  // runs that did not finish (cluster restarted)
  int violations = 0;   // runs with lost writes or split brain
};

double Ms(Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::set<std::string> OpIds(Cluster& c) {
  std::set<std::string> ids;
  auto ops = c.Api("GET", "/v1/ops");
  if (ops.ok()) {
    for (const auto& op : ops->value("operations", json::array())) ids.insert(op.value("id", ""));
  }
  return ids;
}

// Steady: every node up, a ready kvd primary, a running standby, no operation in progress.
bool Steady(Cluster& c) {
  auto st = c.Api("GET", "/v1/status");
  if (!st.ok()) return false;
  for (const auto& n : st->value("nodes", json::array())) {
    if (n.value("state", "") != "up") return false;
  }
  bool primary = false;
  bool standby = false;
  for (const auto& i : st->value("instances", json::array())) {
    if (i.value("role", "") != "kvd") continue;
    if (i.value("kind", "") == "primary" && i.value("state", "") == "running" &&
        i.value("ready", false)) {
      primary = true;
    }
    if (i.value("kind", "") == "standby" && i.value("state", "") != "unknown") standby = true;
  }
  for (const auto& op : st->value("operations", json::array())) {
    if (op.value("state", "") == "running") return false;
  }
  return primary && standby;
}

// Steady, replicated: every node up, three replicas each saying what the controller's record
// says (one primary, two secondaries) at the role's epoch, no operation in progress.
bool SteadyReplicated(Cluster& c) {
  auto st = c.Api("GET", "/v1/status");
  if (!st.ok()) return false;
  for (const auto& n : st->value("nodes", json::array())) {
    if (n.value("state", "") != "up") return false;
  }
  for (const auto& op : st->value("operations", json::array())) {
    if (op.value("state", "") == "running") return false;
  }
  int primaries = 0;
  int settled = 0;
  for (const auto& i : st->value("instances", json::array())) {
    if (i.value("role", "") != kReplicatedRole || !i.contains("replica")) continue;
    const json& r = i["replica"];
    if (!r.contains("says") || !r["says"].is_object()) return false;
    const json& says = r["says"];
    if (says.value("role", "") != r.value("role", "") ||
        says.value("epoch", int64_t{-1}) != r.value("epoch", int64_t{0})) {
      return false;
    }
    primaries += r.value("role", "") == "primary";
    ++settled;
  }
  return primaries == 1 && settled == 3;
}

// One kill and its measurement. Returns an error text, or "" on success (then *out is set).
// `expect_failover`: wait for the failover operation and record its step times.
std::string RunOnce(Cluster& c, Fault fault, bool expect_failover, int run, const Options& o,
                    RunResult* out, bool* violation) {
  const bool replicated = fault == Fault::kReplicaNodeKill;
  const bool node_kill = fault == Fault::kNodeKill || replicated;
  const char* tag = replicated ? "r" : node_kill ? "n" : fault == Fault::kHang ? "h" : "i";
  // The operation that moves the primary: a reconfiguration for a replicated role.
  const std::string op_kind = replicated ? "reconfigure" : "failover";
  Status steady = c.WaitFor(
      "a steady cluster", [&] { return replicated ? SteadyReplicated(c) : Steady(c); }, 60s);
  if (!steady.ok()) return steady.message();
  auto [instance, node] = replicated ? c.Primary(kReplicatedRole) : c.KvdPrimary();
  if (instance.empty()) return "no primary";
  const std::string target = node_kill ? node : instance;

  KvChecker checker(c.kvd_url(), 5ms, "r" + std::to_string(run) + tag + "-");
  checker.Start();
  Status warm = c.WaitFor(
      "writes before the kill", [&] { return checker.acked() >= 40; }, 10s);
  if (!warm.ok()) return warm.message();
  std::set<std::string> before = OpIds(c);

  TimePoint t_kill = RealClock().Now();
  std::string text;
  int rc = c.Hafab({"kill", target, "--signal", fault == Fault::kHang ? "STOP" : "KILL",
                    "--state-dir", c.state_dir()},
                   &text);
  TimePoint t_killed = RealClock().Now();
  if (rc != 0) return "hafab kill " + target + " exited " + std::to_string(rc) + ": " + text;

  std::optional<TimePoint> last_before, first_after;
  Status back = c.WaitFor(
      "a write acknowledged after the kill",
      [&] {
        for (const auto& a : checker.AcksSnapshot()) {
          if (a.acked <= t_kill) last_before = a.acked;
          if (a.sent >= t_killed) {
            first_after = a.acked;
            return true;
          }
        }
        return false;
      },
      30s);
  if (!back.ok()) return back.message();

  std::string op_id;
  if (expect_failover) {
    Status done = c.WaitFor(
        "the " + op_kind + " away from " + node + " to finish",
        [&] {
          auto ops = c.Api("GET", "/v1/ops");
          if (!ops.ok()) return false;
          for (const auto& op : ops->value("operations", json::array())) {
            if (op.value("kind", "") == op_kind && op.value("old_node", "") == node &&
                !before.count(op.value("id", "")) && op.value("state", "") == "done") {
              op_id = op.value("id", "");
              return true;
            }
          }
          return false;
        },
        30s);
    if (!done.ok()) return done.message();
    auto op = c.Api("GET", "/v1/ops/" + op_id);
    if (!op.ok()) return op.status().message();
    const json& body = op->contains("operation") ? (*op)["operation"] : *op;
    for (const auto& s : body.value("steps", json::array())) {
      std::string name = s.value("name", "");
      out->step_order.push_back(name);
      out->steps_ms[name] += s.value("duration_ms", int64_t{0});
    }
  }
  // A little more traffic on the new primary, then check what the client saw.
  int64_t acked_now = checker.acked();
  (void)c.WaitFor(
      "writes after the kill", [&] { return checker.acked() >= acked_now + 20; }, 10s);
  checker.Stop();
  e2e::CheckReport rep = checker.Check();
  if (rep.lost != 0 || rep.split_brain != 0) {
    *violation = true;
    std::fprintf(stderr, "run %d (%s %s): VIOLATION %s\n", run, tag, target.c_str(),
                 rep.ToString().c_str());
  }
  out->downtime_ms = Ms(*first_after - (last_before ? *last_before : t_kill));
  if (o.verbose) {
    std::fprintf(stderr, "run %d: kill %s -> %.0f ms (acked %lld, failed requests %lld)%s%s\n", run,
                 target.c_str(), out->downtime_ms, static_cast<long long>(rep.acked),
                 static_cast<long long>(rep.failed_requests), op_id.empty() ? "" : ", op ",
                 op_id.c_str());
  }
  return "";
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  // Nearest rank: the smallest value with at least p of the runs at or below it.
  size_t rank = static_cast<size_t>(std::max(1.0, std::ceil(p * static_cast<double>(v.size()))));
  return v[std::min(rank, v.size()) - 1];
}

std::unique_ptr<Cluster> StartCluster(const std::string& example, bool tcp_liveness) {
  e2e::ClusterOptions co;
  co.nodes = 3;
  co.kvd_instances = 2;
  co.echo_instances = 0;
  co.lease_ttl = "";       // the manifest default
  co.revive_after = "3s";  // longer than lease + fence margin: the node is seen down first
  co.example = example;
  if (tcp_liveness) co.example_edits = {e2e::kQuickstartKvdTcpLiveness};
  auto c = std::make_unique<Cluster>(co);
  Status s = c->Start(60s);
  if (!s.ok()) {
    std::fprintf(stderr, "cluster did not start: %s\n", s.message().c_str());
    return nullptr;
  }
  return c;
}

// Runs `fault` --runs times on *c (started on the quickstart manifest for hangs, and with a
// tcp liveness probe for kvd when `tcp_liveness`).
void RunScenario(Scenario& sc, Fault fault, bool tcp_liveness, const Options& o,
                 std::unique_ptr<Cluster>& c) {
  int attempts = 0;
  for (int run = 0; static_cast<int>(sc.runs.size()) < o.runs; ++run) {
    if (++attempts > o.runs * 2) break;
    if (!c) {
      c = StartCluster(fault == Fault::kHang              ? e2e::kQuickstart
                       : fault == Fault::kReplicaNodeKill ? e2e::kReplicated
                                                          : "",
                       tcp_liveness);
    }
    if (!c) break;
    RunResult r;
    bool violation = false;
    const bool expect_op =
        fault == Fault::kNodeKill || fault == Fault::kReplicaNodeKill || tcp_liveness;
    std::string err = RunOnce(*c, fault, expect_op, run, o, &r, &violation);
    if (violation) ++sc.violations;
    if (!err.empty()) {
      ++sc.failed_runs;
      std::fprintf(stderr, "run %d (%s): %s\nrestarting the cluster\n", run, sc.name.c_str(),
                   err.substr(0, 2000).c_str());
      (void)c->Stop(30s);
      c.reset();
      continue;
    }
    sc.runs.push_back(std::move(r));
  }
}

void Print(const Scenario& sc) {
  std::vector<double> d;
  for (const auto& r : sc.runs) d.push_back(r.downtime_ms);
  double mean = 0;
  for (double x : d) mean += x;
  if (!d.empty()) mean /= static_cast<double>(d.size());
  std::printf("| %s | %zu | %.0f | %.0f | %.0f | %.0f | %.0f | %d | %d |\n", sc.name.c_str(),
              d.size(), Percentile(d, 0.5), Percentile(d, 0.99),
              d.empty() ? 0.0 : *std::max_element(d.begin(), d.end()),
              d.empty() ? 0.0 : *std::min_element(d.begin(), d.end()), mean, sc.failed_runs,
              sc.violations);
}

void PrintSteps(const Scenario& sc) {
  if (sc.runs.empty() || sc.runs.front().step_order.empty()) return;
  std::printf(
      "\nsteps (%s), mean over %zu runs:\n\n| step | mean ms | max ms "
      "|\n|---|---:|---:|\n",
      sc.name.c_str(), sc.runs.size());
  double total = 0;
  for (const auto& step : sc.runs.front().step_order) {
    double sum = 0, mx = 0;
    for (const auto& r : sc.runs) {
      auto it = r.steps_ms.find(step);
      double v = it == r.steps_ms.end() ? 0 : it->second;
      sum += v;
      mx = std::max(mx, v);
    }
    double m = sum / static_cast<double>(sc.runs.size());
    total += m;
    std::printf("| %s | %.0f | %.0f |\n", step.c_str(), m, mx);
  }
  std::printf("| (sum) | %.0f | |\n", total);
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      o.runs = std::atoi(argv[++i]);
    } else if (a == "--scenario" && i + 1 < argc) {
      std::string s = argv[++i];
      o.instance = s == "instance" || s == "both" || s == "all";
      o.node = s == "node" || s == "both" || s == "all";
      o.hang = s == "hang" || s == "all";
      o.hang_tcp = s == "hang-tcp" || s == "all";
      o.replicated = s == "replicated" || s == "all";
    } else if (a == "--verbose" || a == "-v") {
      o.verbose = true;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--runs N] [--scenario "
                   "instance|node|both|hang|hang-tcp|replicated|all] "
                   "[--verbose]\n",
                   argv[0]);
      return 2;
    }
  }
  if (o.runs <= 0) return 2;
  std::unique_ptr<Cluster> c;
  Scenario inst;
  inst.name = "instance kill (hafab kill kvd-N)";
  Scenario node;
  node.name = "node kill (hafab kill nX)";
  Scenario hang;
  hang.name = "hang, quickstart (hafab kill kvd-N --signal STOP)";
  Scenario hang_tcp;
  hang_tcp.name = "hang, quickstart with tcp liveness";
  Scenario repl;
  repl.name = "replicated kvd, node kill (hafab kill nX)";
  if (o.instance) RunScenario(inst, Fault::kInstanceKill, false, o, c);
  if (o.node) RunScenario(node, Fault::kNodeKill, false, o, c);
  if (c) (void)c->Stop(30s);
  c.reset();
  if (o.hang) RunScenario(hang, Fault::kHang, false, o, c);
  if (c) (void)c->Stop(30s);
  c.reset();
  if (o.hang_tcp) RunScenario(hang_tcp, Fault::kHang, true, o, c);
  if (c) (void)c->Stop(30s);
  c.reset();
  if (o.replicated) RunScenario(repl, Fault::kReplicaNodeKill, false, o, c);
  if (c) (void)c->Stop(30s);

  std::printf(
      "\n| scenario | runs | p50 ms | p99 ms | max ms | min ms | mean ms | restarts | "
      "lost/split-brain runs |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  if (o.instance) Print(inst);
  if (o.node) Print(node);
  if (o.hang) Print(hang);
  if (o.hang_tcp) Print(hang_tcp);
  if (o.replicated) Print(repl);
  if (o.node) PrintSteps(node);
  if (o.hang_tcp) PrintSteps(hang_tcp);
  if (o.replicated) PrintSteps(repl);
  bool ok = true;
  for (const auto& [want, sc] :
       {std::pair(o.instance, &inst), std::pair(o.node, &node), std::pair(o.hang, &hang),
        std::pair(o.hang_tcp, &hang_tcp), std::pair(o.replicated, &repl)}) {
    if (sc->violations != 0 || (want && static_cast<int>(sc->runs.size()) < o.runs)) ok = false;
  }
  if (!ok) std::fprintf(stderr, "FAILED: violations or incomplete runs\n");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace hafab::bench

int main(int argc, char** argv) { return hafab::bench::Main(argc, argv); }
