#include "tests/faults/scenarios.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "controller/reconfigure_procedure.h"
#include "http/http.h"
#include "tests/e2e/kv_checker.h"
#include "tests/e2e/replica_set.h"
#include "tests/faults/netns.h"

namespace hafab::faults {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using e2e::Cluster;
using e2e::KvChecker;
using e2e::Replica;
using e2e::ReplicaSet;
using nlohmann::json;

// The controller's failover steps, in order (src/controller/failover.cc).
const std::vector<std::string> kSteps = {"detect",        "fence",  "stop",  "detach", "promote",
                                         "wait_detached", "attach", "start", "route"};

std::set<std::string> OpIds(Cluster& c) {
  std::set<std::string> ids;
  auto ops = c.Api("GET", "/v1/ops");
  if (ops.ok()) {
    for (const auto& op : ops->value("operations", json::array())) ids.insert(op.value("id", ""));
  }
  return ids;
}

// A kvd failover away from `node`, not in `before`, that finished.
bool FailoverDone(Cluster& c, const std::string& node, const std::set<std::string>& before) {
  auto ops = c.Api("GET", "/v1/ops");
  if (!ops.ok()) return false;
  for (const auto& op : ops->value("operations", json::array())) {
    if (op.value("role", "") == "kvd" && op.value("old_node", "") == node &&
        !before.count(op.value("id", "")) && op.value("state", "") == "done") {
      return true;
    }
  }
  return false;
}

// Every node up and no operation running, in a /v1/status answer.
bool AllUpNothingRunning(const json& status) {
  for (const auto& n : status.value("nodes", json::array())) {
    if (n.value("state", "") != "up") return false;
  }
  for (const auto& op : status.value("operations", json::array())) {
    if (op.value("state", "") == "running") return false;
  }
  return true;
}

// Every node up, no operation running, a ready kvd primary, a kvd standby on another node
// and kvd answering through the gateway: the state each fault starts from.
bool Settled(Cluster& c) {
  auto st = c.Api("GET", "/v1/status");
  if (!st.ok()) return false;
  if (!AllUpNothingRunning(*st)) return false;
  bool primary = false, standby = false;
  for (const auto& i : st->value("instances", json::array())) {
    if (i.value("role", "") != "kvd") continue;
    if (i.value("primary", false)) {
      primary = i.value("state", "") == "running" && i.value("ready", false);
    } else if (i.value("state", "") == "stopped") {
      standby = true;
    }
  }
  if (!primary || !standby) return false;
  auto r = http::Fetch("GET", c.kvd_url() + "/health", "", {}, 500ms);
  return r.ok() && r->status == 200;
}

int InstancePort(Cluster& c, const std::string& instance) {
  auto st = c.Api("GET", "/v1/status");
  if (!st.ok()) return 0;
  for (const auto& i : st->value("instances", json::array())) {
    if (i.value("instance", "") == instance) return i.value("port", 0);
  }
  return 0;
}

// The agent pid of `node` from <state>/up.json (0 if unknown).
pid_t AgentPid(Cluster& c, const std::string& node) {
  std::ifstream in(c.state_dir() + "/up.json");
  auto up = json::parse(in, nullptr, false);
  if (!up.is_object()) return 0;
  auto agents = up.value("agents", json::object());
  return agents.contains(node) ? agents[node].get<pid_t>() : 0;
}

// Connections the gateway has handed to its kernel data path so far (its /stats).
int64_t GatewaySpliced(Cluster& c) {
  std::ifstream in(c.state_dir() + "/gateway.addr");
  std::string addr;
  if (!std::getline(in, addr)) return 0;
  auto r = http::Fetch("GET", "http://" + addr + "/stats", "", {}, 2s);
  if (!r.ok() || r->status != 200) return 0;
  auto stats = json::parse(r->body, nullptr, false);
  int64_t spliced = 0;
  if (stats.is_object()) {
    for (const auto& e : stats.value("endpoints", json::array())) {
      spliced += e.value("spliced", int64_t{0});
    }
  }
  return spliced;
}

// What a fault needs to know about the cluster at injection time.
struct Target {
  std::string primary;
  std::string node;
  std::set<std::string> ops_before;
};

// The skeleton every scenario shares; subclasses say how to inject and what recovery is.
class ClusterScenario : public Scenario {
 public:
  Result<IterationResult> RunOnce(Random& rng) override {
    IterationResult res;
    if (cluster_ && FreshClusterEachTime()) HAFAB_RETURN_IF_ERROR(Finish());
    if (!cluster_) {
      e2e::ClusterOptions opts;
      HAFAB_RETURN_IF_ERROR(ConfigureCluster(&opts, &res.skipped));
      if (clients_.data_path == "kernel" && geteuid() != 0) {
        res.skipped = "the gateway's kernel data path needs root here";
      }
      if (!res.skipped.empty()) return res;
      opts.extra_up_args.insert(opts.extra_up_args.end(),
                                {"--gateway-data-path", clients_.data_path});
      std::vector<std::pair<std::string, std::string>> env = ClusterEnv(rng, &res.detail);
      for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
      cluster_ = std::make_unique<Cluster>(opts);
      Status started = cluster_->Start(60s);
      for (const auto& [k, v] : env) unsetenv(k.c_str());  // `up` has its copy
      if (!started.ok()) return started.WithContext("starting the cluster");
      HAFAB_RETURN_IF_ERROR(Prepare(*cluster_));
    }
    Cluster& c = *cluster_;
    note_.clear();
    HAFAB_RETURN_IF_ERROR(c.WaitFor(
        "a settled cluster", [&] { return IsSettled(c); }, 60s));
    Target t;
    std::tie(t.primary, t.node) = c.Primary(Role());
    if (t.node.empty()) return Status::Internal("no " + Role() + " primary");
    t.ops_before = OpIds(c);

    std::string prefix = "i" + std::to_string(++iteration_) + "-";
    KvChecker gw(c.kvd_url(), 10ms, prefix);
    gw.set_keep_alive(clients_.keep_alive);
    gw.Start();
    HAFAB_RETURN_IF_ERROR(c.WaitFor(
        "20 acknowledged writes", [&] { return gw.acked() >= 20; }, 20s));
    // Clients that reach the primary without the gateway (same host, other side of a
    // partition): the old primary must stop acknowledging them before a new one starts.
    std::unique_ptr<KvChecker> direct;
    if (DirectClients()) {
      int port = InstancePort(c, t.primary);
      if (port == 0) return Status::Internal("no port for " + t.primary);
      direct = std::make_unique<KvChecker>(DirectUrl(t, port), 10ms, prefix + "direct-");
      direct->set_read_url(c.kvd_url());
      direct->set_netns(DirectNetns(t));
      if (DirectTimeout()) direct->set_request_timeout(*DirectTimeout());
      direct->Start();
      HAFAB_RETURN_IF_ERROR(c.WaitFor(
          "20 direct writes", [&] { return direct->acked() >= 20; }, 20s));
    }

    const TimePoint injected = RealClock().Now();
    const int64_t injected_wall_ms = WallNowMs();
    HAFAB_RETURN_IF_ERROR(Inject(c, t, rng, &res.detail));
    const TimePoint fault_in_place = RealClock().Now();
    fault_in_place_ = fault_in_place;
    direct_ = direct.get();
    int64_t after_fault = gw.acked();
    Status recovered = WaitRecovered(c, t);
    if (recovered.ok()) {
      recovered = c.WaitFor(
          "writes to resume", [&] { return gw.acked() >= after_fault + 30; }, 30s);
    }
    Status cleaned = Cleanup(c, t);
    direct_ = nullptr;
    gw.Stop();
    res.spliced = GatewaySpliced(c);
    if (direct) direct->Stop();
    HAFAB_RETURN_IF_ERROR(recovered.WithContext(res.detail));
    HAFAB_RETURN_IF_ERROR(cleaned);
    if (!note_.empty()) res.detail += "; " + note_;
    DescribeTimeline(c, Role(), t, gw.Acks(), injected, injected_wall_ms, &res.detail);

    e2e::CheckReport rep = gw.Check();
    res.acked = rep.acked;
    res.lost = rep.lost;
    res.split_brain = rep.split_brain;
    for (Duration d : rep.downtime) res.downtime += d;
    std::vector<std::string> why = rep.violations;
    if (direct) {
      e2e::CheckReport drep = direct->Check();
      res.acked += drep.acked;
      res.lost += drep.lost;
      for (size_t i = 0; i < drep.violations.size() && why.size() < 20; ++i) {
        if (drep.violations[i].find("lost") != std::string::npos) why.push_back(drep.violations[i]);
      }
      // Split brain over both clients' acknowledgements, in the order they were acknowledged.
      std::vector<e2e::Ack> all = gw.Acks();
      std::vector<e2e::Ack> d = direct->Acks();
      all.insert(all.end(), d.begin(), d.end());
      std::stable_sort(all.begin(), all.end(),
                       [](const e2e::Ack& a, const e2e::Ack& b) { return a.acked < b.acked; });
      res.split_brain = KvChecker::SplitBrain(all, &why);
      if (DirectAcksEndAtFault()) res.split_brain += AckedAfter(d, fault_in_place, &why);
      DescribeHandover(all, t, &res.detail);
    }
    for (const auto& w : why) res.detail += "\n    " + w;
    return res;
  }

  Status Finish() override {
    Status st = Status::Ok();
    if (cluster_) {
      st = cluster_->Stop();
      cluster_.reset();
    }
    Status after = AfterStop();
    return st.ok() ? after : st;
  }

 protected:
  // The role the faults hit: the e2e manifest's active-passive kvd unless overridden.
  virtual std::string Role() const { return "kvd"; }
  virtual bool IsSettled(Cluster& c) { return Settled(c); }
  virtual bool FreshClusterEachTime() const { return false; }
  virtual bool DirectClients() const { return false; }
  // The old primary must acknowledge no direct write sent once the fault is in place (a
  // replicated primary cut off from its secondaries has no quorum); each one is a violation.
  virtual bool DirectAcksEndAtFault() const { return false; }
  // The direct clients' request timeout (none: KvChecker's).
  virtual std::optional<Duration> DirectTimeout() const { return std::nullopt; }
  // Where the direct clients write (the primary's instance port) and the network namespace
  // their thread joins ("" = this one).
  virtual std::string DirectUrl(const Target& t, int port) {
    return "http://127.0.0.1:" + std::to_string(port);
  }
  virtual std::string DirectNetns(const Target& t) { return ""; }
  // Options of the next cluster; sets *skip to why the scenario cannot run on this machine.
  virtual Status ConfigureCluster(e2e::ClusterOptions* o, std::string* skip) {
    return Status::Ok();
  }
  // Runs after the cluster stopped (and when there was none): removes what Configure made.
  virtual Status AfterStop() { return Status::Ok(); }
  // Environment for `hafab up` (and so every process it starts); may describe it in *detail.
  virtual std::vector<std::pair<std::string, std::string>> ClusterEnv(Random& rng,
                                                                      std::string* detail) {
    return {};
  }
  // Runs once on a freshly started cluster.
  virtual Status Prepare(Cluster& c) { return Status::Ok(); }
  virtual Status Inject(Cluster& c, const Target& t, Random& rng, std::string* detail) = 0;
  // Waits until the fabric has dealt with the fault (writes resuming is checked after).
  virtual Status WaitRecovered(Cluster& c, const Target& t) { return Status::Ok(); }
  // Leaves nothing stopped or hung behind (runs even when recovery failed).
  virtual Status Cleanup(Cluster& c, const Target& t) { return Status::Ok(); }

  Status HafabKill(Cluster& c, std::vector<std::string> args) {
    args.insert(args.begin(), "kill");
    args.push_back("--state-dir");
    args.push_back(c.state_dir());
    std::string out;
    int rc = c.Hafab(args, &out);
    if (rc != 0) return Status::Internal("hafab kill failed (" + std::to_string(rc) + "): " + out);
    return Status::Ok();
  }

  Status WaitFailover(Cluster& c, const Target& t) {
    return c.WaitFor(
        "a finished kvd failover away from " + t.node,
        [&] { return FailoverDone(c, t.node, t.ops_before); }, 45s);
  }

  std::unique_ptr<Cluster> cluster_;
  int iteration_ = 0;
  std::string note_;  // what WaitRecovered measured, added to the iteration's detail
  // During WaitRecovered and Cleanup: when Inject returned, and the direct client (if any).
  TimePoint fault_in_place_{};
  KvChecker* direct_ = nullptr;

 private:
  static int64_t WallNowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  // Where the time went, relative to the fault's injection: the gateway client's last
  // acknowledgement before it and first after it, and the failover's steps (their start in
  // the controller's journal; the controller runs on this host's wall clock).
  static void DescribeTimeline(Cluster& c, const std::string& role, const Target& t,
                               const std::vector<e2e::Ack>& acks, TimePoint injected,
                               int64_t injected_wall_ms, std::string* detail) {
    // The first ack after the fault that ends a gap of more than 200 ms (the fault's window;
    // `hafab kill` takes a moment to land, writes go on until then).
    std::optional<TimePoint> last_before, first_after, prev;
    for (const auto& a : acks) {
      if (a.acked < injected) {
        last_before = a.acked;
      } else if (!first_after && prev && a.acked - *prev > 200ms) {
        first_after = a.acked;
      }
      prev = a.acked;
    }
    auto rel = [&](TimePoint p) {
      return std::to_string(static_cast<int64_t>(ToMillis(p - injected)));
    };
    std::string line = "\n    timeline (ms from the fault): last ack before it " +
                       (last_before ? rel(*last_before) : "-") + ", first ack after the outage " +
                       (first_after ? "+" + rel(*first_after) : "-");
    auto ops = c.Api("GET", "/v1/ops");
    for (const auto& op : ops.ok() ? ops->value("operations", json::array()) : json::array()) {
      if (op.value("role", "") != role || t.ops_before.count(op.value("id", ""))) continue;
      line += "; " + op.value("id", "") + ":";
      for (const auto& s : op.value("steps", json::array())) {
        line += " " + s.value("name", "") + " +" +
                std::to_string(s.value("started_ms", int64_t{0}) - injected_wall_ms);
      }
      line += " done +" + std::to_string(op.value("finished_ms", int64_t{0}) - injected_wall_ms);
    }
    *detail += line;
  }

  // Direct acknowledgements of writes sent at or after `fault` (each described in *why).
  static int64_t AckedAfter(const std::vector<e2e::Ack>& acks, TimePoint fault,
                            std::vector<std::string>* why) {
    int64_t n = 0;
    for (const auto& a : acks) {
      if (a.sent < fault) continue;
      if (++n <= 5) {
        why->push_back("direct key " + std::to_string(a.key) + " sent " +
                       std::to_string(static_cast<int64_t>(ToMillis(a.sent - fault))) +
                       "ms after the fault was in place was acknowledged by " + a.instance +
                       " at epoch " + std::to_string(a.epoch));
      }
    }
    return n;
  }

  // With direct clients: how long after the old primary's last acknowledgement the first
  // write was acknowledged by another instance (the margin fencing left; negative would be
  // split brain, which the check above reports).
  static void DescribeHandover(const std::vector<e2e::Ack>& acks, const Target& t,
                               std::string* detail) {
    std::optional<TimePoint> last_old, first_new;
    for (const auto& a : acks) {
      if (a.instance == t.primary) {
        if (!last_old || a.acked > *last_old) last_old = a.acked;
      }
    }
    for (const auto& a : acks) {
      if (a.instance != t.primary && (!first_new || a.acked < *first_new)) first_new = a.acked;
    }
    if (last_old && first_new) {
      *detail += "; old primary's last ack -> first ack by another: " +
                 std::to_string(static_cast<int64_t>(ToMillis(*first_new - *last_old))) + "ms";
    }
  }
};

// SIGKILL of the primary instance: the agent restarts it in place or the role fails over.
class InstanceKill : public ClusterScenario {
 public:
  std::string name() const override { return "instance_kill"; }

 protected:
  Status Inject(Cluster& c, const Target& t, Random&, std::string* detail) override {
    *detail = "SIGKILL " + t.primary + " on " + t.node;
    return HafabKill(c, {t.primary});
  }
};

// SIGSTOP of the primary instance: a hung service (it still completes TCP handshakes from its
// listen backlog). The e2e manifest's HTTP liveness probe, like the quickstart's, catches it.
class InstanceStop : public ClusterScenario {
 public:
  std::string name() const override { return "instance_stop"; }

 protected:
  Status Inject(Cluster& c, const Target& t, Random&, std::string* detail) override {
    *detail = "SIGSTOP " + t.primary + " on " + t.node;
    return HafabKill(c, {t.primary, "--signal", "STOP"});
  }
  Status Cleanup(Cluster& c, const Target& t) override {
    // The agent usually SIGKILLed the hung group already; if not, nothing stays stopped.
    (void)HafabKill(c, {t.primary, "--signal", "CONT"});
    return Status::Ok();
  }
};

// SIGKILL of the primary's node: its agent and every process it started.
class NodeKill : public ClusterScenario {
 public:
  std::string name() const override { return "node_kill"; }

 protected:
  Status Inject(Cluster& c, const Target& t, Random&, std::string* detail) override {
    *detail = "SIGKILL node " + t.node + " (primary " + t.primary + ")";
    return HafabKill(c, {t.node});
  }
  Status WaitRecovered(Cluster& c, const Target& t) override { return WaitFailover(c, t); }
};

// SIGSTOP of the primary's agent only (a hung guest agent): its watchdog must kill the
// primary when the lease runs out, before the controller moves the volume. Clients that
// talk to the primary directly see whether it stopped acknowledging in time.
class AgentStop : public ClusterScenario {
 public:
  std::string name() const override { return "agent_stop"; }

 protected:
  bool DirectClients() const override { return true; }
  Status Inject(Cluster& c, const Target& t, Random&, std::string* detail) override {
    agent_ = AgentPid(c, t.node);
    if (agent_ <= 0) return Status::Internal("no agent pid for " + t.node + " in up.json");
    *detail = "SIGSTOP agent of " + t.node + " (pid " + std::to_string(agent_) + ", primary " +
              t.primary + ")";
    if (kill(agent_, SIGSTOP) != 0) return Status::Internal("kill(SIGSTOP) failed");
    return Status::Ok();
  }
  Status WaitRecovered(Cluster& c, const Target& t) override { return WaitFailover(c, t); }
  Status Cleanup(Cluster& c, const Target& t) override {
    if (agent_ > 0) kill(agent_, SIGCONT);
    agent_ = 0;
    return Status::Ok();
  }

 private:
  pid_t agent_ = 0;
};

// The controller SIGKILLs itself (HAFAB_TEST_CRASH_AT_STEP) right after recording the start
// of a random failover step of a node-kill failover; `up` restarts it and it must resume.
class ControllerCrash : public ClusterScenario {
 public:
  std::string name() const override { return "controller_crash"; }

 protected:
  bool FreshClusterEachTime() const override { return true; }
  std::vector<std::pair<std::string, std::string>> ClusterEnv(Random& rng,
                                                              std::string* detail) override {
    step_ = kSteps[rng.Uniform(kSteps.size())];
    return {{"HAFAB_TEST_CRASH_AT_STEP", step_}};
  }
  Status Inject(Cluster& c, const Target& t, Random&, std::string* detail) override {
    *detail = "controller crash at step " + step_ + ", SIGKILL node " + t.node;
    return HafabKill(c, {t.node});
  }
  Status WaitRecovered(Cluster& c, const Target& t) override { return WaitFailover(c, t); }

 private:
  std::string step_;
};

// A volume detach that takes seconds: `up` runs the controller and the agents with the
// ExecProvider and the scripts of tests/faults/provider/ (LocalProvider's behaviour, plus a
// 2 s sleep in every detach and force-detach). Odd iterations fail kvd over on purpose (the
// old agent detaches: the failover's wait_detached step must wait for it), even ones kill the
// primary's node (the controller force-detaches). Either way the new primary's volume must
// be attached only after the script finished the detach (provider.log against the
// operation's attach step).
class SlowDetach : public ClusterScenario {
 public:
  static constexpr double kDelaySeconds = 2;
  std::string name() const override { return "slow_detach"; }

 protected:
  Status ConfigureCluster(e2e::ClusterOptions* o, std::string*) override {
    if (dir_.empty()) {
      char tmpl[] = "/tmp/hafab-faults-provider-XXXXXX";
      if (mkdtemp(tmpl) == nullptr) return Status::Internal("mkdtemp failed");
      dir_ = tmpl;
    }
    std::string scripts = std::string(HAFAB_FAULTS_DIR) + "/provider/";
    json config = {{"attach", scripts + "attach.sh"},
                   {"detach", scripts + "detach.sh"},
                   {"describe", scripts + "describe.sh"},
                   {"mount_root", dir_ + "/volumes/mounts"},
                   {"timeout", "20s"},
                   {"retries", 2},
                   {"retry_delay", "200ms"}};
    std::ofstream(dir_ + "/provider.json") << config.dump(2) << "\n";
    o->extra_up_args = {"--provider", "exec", "--provider-config", dir_ + "/provider.json"};
    return Status::Ok();
  }
  std::vector<std::pair<std::string, std::string>> ClusterEnv(Random&, std::string*) override {
    return {{"HAFAB_TEST_PROVIDER_ROOT", dir_ + "/volumes"},
            {"HAFAB_TEST_DETACH_DELAY", std::to_string(kDelaySeconds)}};
  }
  Status Inject(Cluster& c, const Target& t, Random&, std::string* detail) override {
    planned_ = iteration_ % 2 == 1;
    if (planned_) {
      *detail = "planned failover of kvd from " + t.node + " (" + t.primary + "), 2 s detach";
      auto r = c.Api("POST", "/v1/roles/kvd/failover", "{}");
      return r.ok() ? Status::Ok() : r.status().WithContext("hafab failover kvd");
    }
    *detail = "SIGKILL node " + t.node + " (" + t.primary + "), 2 s force-detach";
    return HafabKill(c, {t.node});
  }
  Status WaitRecovered(Cluster& c, const Target& t) override {
    HAFAB_RETURN_IF_ERROR(WaitFailover(c, t));
    // The finished operation's steps, and when the script finished detaching from t.node.
    auto ops = c.Api("GET", "/v1/ops");
    if (!ops.ok()) return ops.status();
    json op;
    for (const auto& o : ops->value("operations", json::array())) {
      if (o.value("role", "") == "kvd" && o.value("old_node", "") == t.node &&
          !t.ops_before.count(o.value("id", ""))) {
        op = o;
      }
    }
    std::map<std::string, json> steps;
    for (const auto& st : op.value("steps", json::array())) steps[st.value("step", "")] = st;
    if (!steps.count("attach")) return Status::Internal("the failover has no attach step");
    int64_t attach_began = steps["attach"].value("started_ms", int64_t{0});
    // provider.log spans every iteration on this cluster: only this failover's lines count.
    const int64_t op_began = op.value("created_ms", int64_t{0});
    int64_t detached = 0;
    int conflicts = 0;
    std::ifstream log(dir_ + "/volumes/provider.log");
    for (std::string line; std::getline(log, line);) {
      std::istringstream in(line);
      int64_t ms = 0;
      std::string what, vol, node;
      in >> ms >> what >> vol >> node;
      if (vol != "kvd-data") continue;
      if (ms < op_began) continue;
      if (what == "detached" && node == t.node && ms <= attach_began + 60000) detached = ms;
      if (what == "attach" && line.find("conflict") != std::string::npos) ++conflicts;
    }
    std::string detail =
        "wait_detached " + std::to_string(steps["wait_detached"].value("duration_ms", -1)) +
        "ms, detach " + std::to_string(steps["detach"].value("duration_ms", -1)) + "ms";
    if (detached == 0) {
      return Status::Internal("no completed detach of kvd-data from " + t.node +
                              " in provider.log (" + detail + ")");
    }
    if (attach_began < detached) {
      return Status::Internal("the attach step began " + std::to_string(detached - attach_began) +
                              "ms before the detach from " + t.node + " completed (" + detail +
                              ")");
    }
    note_ = detail + ", attach began " + std::to_string(attach_began - detached) +
            "ms after the detach completed, " + std::to_string(conflicts) + " refused attaches";
    return Status::Ok();
  }
  Status AfterStop() override {
    std::error_code ec;
    if (!dir_.empty() && !std::getenv("HAFAB_KEEP_TEST_DIRS"))
      std::filesystem::remove_all(dir_, ec);
    dir_.clear();
    return Status::Ok();
  }

 private:
  std::string dir_;  // provider.json and the volumes (mounts/, records/, provider.log)
  bool planned_ = false;
};

// A network partition: the primary's node (its own network namespace, joined to the others
// by a veth pair to a bridge) is cut off from the controller and the gateway while its agent
// and instances keep running. A client inside that namespace keeps writing straight to the
// old primary: it must stop acknowledging (the agent self-fences when its lease runs out)
// before another instance is promoted. After the failover the link comes back and the node
// must rejoin with its instance as a stopped standby.
class Partition : public ClusterScenario {
 public:
  std::string name() const override { return "partition"; }

 protected:
  bool DirectClients() const override { return true; }
  std::string DirectUrl(const Target& t, int port) override {
    return "http://" + lab_.NodeAddress(t.node) + ":" + std::to_string(port);
  }
  std::string DirectNetns(const Target& t) override { return lab_.NetnsPath(t.node); }
  Status ConfigureCluster(e2e::ClusterOptions* o, std::string* skip) override {
    Status made = lab_.Create(o->nodes);
    if (!made.ok()) {
      *skip = made.message();
      return Status::Ok();
    }
    o->api_listen = lab_.host_address() + ":0";
    o->node_addresses = lab_.NodeAddresses();
    o->extra_up_args = {"--agent-wrapper", lab_.AgentWrapper()};
    return Status::Ok();
  }
  Status Inject(Cluster& c, const Target& t, Random&, std::string* detail) override {
    *detail = "partition: " + t.node + " (" + lab_.NodeAddress(t.node) + ", primary " + t.primary +
              ") cut off from the controller and the gateway";
    cut_ = t.node;
    return lab_.Cut(t.node);
  }
  Status WaitRecovered(Cluster& c, const Target& t) override {
    HAFAB_RETURN_IF_ERROR(WaitFailover(c, t));
    HAFAB_RETURN_IF_ERROR(lab_.Heal(t.node));
    cut_.clear();
    TimePoint healed = RealClock().Now();
    // Rejoined: the node is up again and its kvd instance is a stopped standby.
    Status rejoined = c.WaitFor(
        t.node + " to rejoin with " + t.primary + " as a stopped standby",
        [&] {
          auto st = c.Api("GET", "/v1/status");
          if (!st.ok()) return false;
          bool up = false, standby = false;
          for (const auto& n : st->value("nodes", json::array())) {
            if (n.value("node", "") == t.node) up = n.value("state", "") == "up";
          }
          for (const auto& i : st->value("instances", json::array())) {
            if (i.value("instance", "") == t.primary) {
              standby = !i.value("primary", true) && i.value("state", "") == "stopped";
            }
          }
          return up && standby;
        },
        30s);
    if (rejoined.ok()) {
      note_ = t.node + " rejoined as a standby " +
              std::to_string(static_cast<int64_t>(ToMillis(RealClock().Now() - healed))) +
              "ms after the heal";
    }
    return rejoined;
  }
  Status Cleanup(Cluster&, const Target&) override {
    if (cut_.empty()) return Status::Ok();
    Status healed = lab_.Heal(cut_);
    cut_.clear();
    return healed;
  }
  Status AfterStop() override { return lab_.Destroy(); }

 private:
  NetnsLab lab_;
  std::string cut_;  // the node cut off now, if any
};

// ---- Replicated roles: examples/replicated.yaml as shipped (3 kvd replicas, quorum 2, 4
// nodes; only its ports replaced by free ones and, for a partition, its node addresses).

constexpr const char* kReplicatedRole = "kv";  // the replicated role of examples/replicated.yaml

ReplicaSet Replicas(Cluster& c) { return e2e::Replicas(c, kReplicatedRole); }

// The role's reconfiguration not in `before` that moved the primary away from `old_primary`
// and finished (null if there is none yet).
json ReconfigurationDone(Cluster& c, const std::string& old_primary,
                         const std::set<std::string>& before) {
  auto ops = c.Api("GET", "/v1/ops");
  if (!ops.ok()) return nullptr;
  for (const auto& op : ops->value("operations", json::array())) {
    if (op.value("kind", "") == "reconfigure" && op.value("role", "") == kReplicatedRole &&
        op.value("old_primary", "") == old_primary && !before.count(op.value("id", "")) &&
        op.value("state", "") == "done") {
      return op;
    }
  }
  return nullptr;
}

// Every node up, no operation running, three replicas settled at one epoch, and the
// primary answering through the gateway.
bool ReplicatedSettled(Cluster& c) {
  auto st = c.Api("GET", "/v1/status");
  if (!st.ok()) return false;
  if (!AllUpNothingRunning(*st)) return false;
  if (!e2e::ParseReplicas(*st, kReplicatedRole).Settled()) return false;
  auto r = http::Fetch("GET", c.kvd_url() + "/hafab/v1/replica", "", {}, 500ms);
  if (!r.ok() || r->status != 200) return false;
  json j = json::parse(r->body, nullptr, false);
  return j.is_object() && j.value("role", "") == "primary";
}

class ReplicatedScenario : public ClusterScenario {
 protected:
  std::string Role() const override { return kReplicatedRole; }
  bool IsSettled(Cluster& c) override { return ReplicatedSettled(c); }
  Status ConfigureCluster(e2e::ClusterOptions* o, std::string* skip) override {
    o->example = e2e::kReplicated;
    o->nodes = 4;
    // A killed node is back well before the example's rebuild_after (30 s): its replica
    // rejoins rather than being rebuilt elsewhere.
    o->revive_after = "4s";
    // TEST OF THE HARNESS ONLY (ctest faults_replicated_quorum_one_is_caught): a smaller
    // quorum than the example's, so that a cut-off primary acknowledges alone.
    if (const char* q = std::getenv("HAFAB_FAULTS_REPL_QUORUM")) {
      o->example_edits.push_back({"      quorum: 2 ", std::string("      quorum: ") + q + " "});
    }
    return Status::Ok();
  }
  // The primary moved away from t.primary in a finished reconfiguration (its id in note_).
  Status WaitPrimaryMoved(Cluster& c, const Target& t) {
    json op;
    HAFAB_RETURN_IF_ERROR(c.WaitFor(
        "a finished reconfiguration of " + Role() + " away from " + t.primary,
        [&] {
          op = ReconfigurationDone(c, t.primary, t.ops_before);
          return op.is_object();
        },
        45s));
    note_ = "new primary " + op.value("new_primary", "") + " at epoch " +
            std::to_string(op.value("epoch", int64_t{0}));
    return Status::Ok();
  }
  // The replicas settled again with `instance` (back from a fault) a secondary.
  Status WaitRejoined(Cluster& c, const std::string& instance, Duration timeout) {
    ReplicaSet set;
    Status s = c.WaitFor(
        instance + " back as a secondary",
        [&] {
          set = Replicas(c);
          const Replica* r = set.Find(instance);
          return set.Settled() && r != nullptr && r->kind == "secondary";
        },
        timeout);
    return s.ok() ? s : s.WithContext("last seen: " + set.ToString());
  }
};

// SIGKILL of the primary's node: the most advanced secondary is promoted; `up` revives the
// node 4 s later and its replica must come back as a secondary of the new epoch.
class ReplPrimaryKill : public ReplicatedScenario {
 public:
  std::string name() const override { return "repl_primary_kill"; }

 protected:
  Status Inject(Cluster& c, const Target& t, Random&, std::string* detail) override {
    *detail = "SIGKILL node " + t.node + " (primary " + t.primary + ")";
    return HafabKill(c, {t.node});
  }
  Status WaitRecovered(Cluster& c, const Target& t) override {
    HAFAB_RETURN_IF_ERROR(WaitPrimaryMoved(c, t));
    return WaitRejoined(c, t.primary, 40s);
  }
};

// SIGKILL of a random secondary's node: the primary keeps a quorum with the other secondary
// and goes on acknowledging; the replica comes back (revived node) and catches up.
class ReplSecondaryKill : public ReplicatedScenario {
 public:
  std::string name() const override { return "repl_secondary_kill"; }

 protected:
  Status Inject(Cluster& c, const Target& t, Random& rng, std::string* detail) override {
    std::vector<Replica> secondaries;
    for (const auto& r : Replicas(c).replicas) {
      if (r.kind == "secondary") secondaries.push_back(r);
    }
    if (secondaries.empty()) return Status::Internal("no secondary of " + Role());
    victim_ = secondaries[rng.Uniform(secondaries.size())];
    *detail = "SIGKILL node " + victim_.node + " (secondary " + victim_.instance + ", primary " +
              t.primary + ")";
    return HafabKill(c, {victim_.node});
  }
  Status WaitRecovered(Cluster& c, const Target& t) override {
    HAFAB_RETURN_IF_ERROR(c.WaitFor(
        "the controller to see " + victim_.node + " down",
        [&] {
          auto st = c.Api("GET", "/v1/status");
          if (!st.ok()) return false;
          for (const auto& n : st->value("nodes", json::array())) {
            if (n.value("node", "") == victim_.node) return n.value("state", "") != "up";
          }
          return false;
        },
        10s));
    HAFAB_RETURN_IF_ERROR(WaitRejoined(c, victim_.instance, 40s));
    auto [primary, node] = c.Primary(Role());
    if (primary != t.primary) {
      return Status::Internal("the primary moved from " + t.primary + " to " + primary +
                              " for a secondary's loss");
    }
    return Status::Ok();
  }

 private:
  Replica victim_;
};

// The controller _exit(137)s right after recording the start of a reconfiguration step
// (HAFAB_TEST_CRASH_AT_STEP); `up` restarts it and it must resume the operation. The steps
// are taken in turn, one per iteration (a fresh cluster each: the crash step is in `up`'s
// environment). `drain` runs only in a planned switchover to a named replica, so its
// iterations are one (`hafab failover kv --to <a secondary>`); the other steps alternate per
// round of steps between a primary node kill and a planned switchover.
class ReplControllerCrash : public ReplicatedScenario {
 public:
  std::string name() const override { return "repl_controller_crash"; }

 protected:
  bool FreshClusterEachTime() const override { return true; }
  std::vector<std::pair<std::string, std::string>> ClusterEnv(Random&, std::string*) override {
    constexpr size_t kN = std::size(controller::kReconfigureSteps);
    step_ = controller::kReconfigureSteps[turn_ % kN];
    planned_ = step_ == "drain" || (turn_ / kN) % 2 == 1;
    ++turn_;
    return {{"HAFAB_TEST_CRASH_AT_STEP", step_}};
  }
  Status Inject(Cluster& c, const Target& t, Random&, std::string* detail) override {
    if (!planned_) {
      *detail = "controller crash at step " + step_ + ", SIGKILL node " + t.node + " (primary " +
                t.primary + ")";
      return HafabKill(c, {t.node});
    }
    std::string to;
    for (const auto& r : Replicas(c).replicas) {
      if (r.kind == "secondary") to = r.instance;
    }
    *detail = "controller crash at step " + step_ + ", hafab failover " + Role() + " --to " + to +
              " (from " + t.primary + ")";
    auto r = c.Api("POST", "/v1/roles/" + Role() + "/failover", json{{"to", to}}.dump());
    // The controller may exit while answering (it records the first step in the request):
    // the operation is journaled, WaitRecovered sees whether it went through.
    if (r.ok() || r.status().code() == StatusCode::kUnavailable) return Status::Ok();
    return r.status().WithContext("failover --to " + to);
  }
  Status WaitRecovered(Cluster& c, const Target& t) override {
    HAFAB_RETURN_IF_ERROR(WaitPrimaryMoved(c, t));
    HAFAB_RETURN_IF_ERROR(WaitRejoined(c, t.primary, 40s));
    // The controller did crash at that step (`up` restarted it, the new one resumed).
    std::ifstream log(c.state_dir() + "/logs/controller.log");
    const std::string crashed = "HAFAB_TEST_CRASH_AT_STEP=" + step_ + ":";
    for (std::string line; std::getline(log, line);) {
      if (line.find(crashed) != std::string::npos) return Status::Ok();
    }
    return Status::Internal("the controller never crashed at step " + step_ + " (no \"" + crashed +
                            "\" in controller.log)");
  }

 private:
  size_t turn_ = 0;
  std::string step_;
  bool planned_ = false;
};

// A network partition (tests/faults/netns.h) that cuts the primary's node from the controller,
// the gateway and both secondaries while everything on it keeps running. A client inside that
// namespace keeps writing straight to the old primary: without a quorum it must acknowledge
// nothing sent after the cut. A new primary must serve; after the heal the old one must rejoin
// as a secondary of the new epoch with the records it never acknowledged moved aside into
// `<log>.diverged-epoch-<E>` in its data directory.
class ReplPartition : public ReplicatedScenario {
 public:
  std::string name() const override { return "repl_partition"; }

 protected:
  bool DirectClients() const override { return true; }
  bool DirectAcksEndAtFault() const override { return true; }
  std::string DirectUrl(const Target& t, int port) override {
    return "http://" + lab_.NodeAddress(t.node) + ":" + std::to_string(port);
  }
  std::string DirectNetns(const Target& t) override { return lab_.NetnsPath(t.node); }
  Status ConfigureCluster(e2e::ClusterOptions* o, std::string* skip) override {
    HAFAB_RETURN_IF_ERROR(ReplicatedScenario::ConfigureCluster(o, skip));
    Status made = lab_.Create(o->nodes);
    if (!made.ok()) {
      *skip = made.message();
      return Status::Ok();
    }
    // The deployment, not the role: where each node and the controller's API are.
    o->example_edits.push_back(
        {"cluster: replicated\n",
         "cluster: replicated\nsettings:\n  api_listen: " + lab_.host_address() + ":0\n"});
    for (int i = 1; i <= o->nodes; ++i) {
      std::string n = std::to_string(i);
      std::string node = "{name: n" + n + ", fault_domain: fd" + n + ", update_domain: ud" + n;
      o->example_edits.push_back(
          {node + ", address: 127.0.0.1}", node + ", address: " + lab_.NodeAddress("n" + n) + "}"});
    }
    o->extra_up_args = {"--agent-wrapper", lab_.AgentWrapper()};
    return Status::Ok();
  }
  Status Inject(Cluster& c, const Target& t, Random&, std::string* detail) override {
    *detail = "partition: " + t.node + " (" + lab_.NodeAddress(t.node) + ", primary " + t.primary +
              ") cut off from the controller, the gateway and both secondaries";
    cut_ = t.node;
    asides_before_ = Asides(c, t.primary);
    return lab_.Cut(t.node);
  }
  // A client that gives up on a write after 500 ms and sends the next: the old primary
  // (which waits up to 5 s for a quorum) gets writes all through the partition.
  std::optional<Duration> DirectTimeout() const override { return 500ms; }
  Status WaitRecovered(Cluster& c, const Target& t) override {
    if (std::getenv("HAFAB_FAULTS_REPL_QUORUM")) HAFAB_RETURN_IF_ERROR(AcceptDataLoss(c, t));
    HAFAB_RETURN_IF_ERROR(WaitPrimaryMoved(c, t));
    std::string moved = note_;
    // The old primary has a write sent after the cut (its tail: it must not acknowledge it,
    // AckedAfter counts those it did) before the heal.
    HAFAB_RETURN_IF_ERROR(c.WaitFor(
        "a direct write sent after the cut to be answered or given up on",
        [&] {
          auto sends = direct_->UnacknowledgedSends();
          auto acks = direct_->AcksSnapshot();
          return (!sends.empty() && sends.back() >= fault_in_place_) ||
                 (!acks.empty() && acks.back().sent >= fault_in_place_);
        },
        10s));
    HAFAB_RETURN_IF_ERROR(lab_.Heal(t.node));
    cut_.clear();
    TimePoint healed = RealClock().Now();
    HAFAB_RETURN_IF_ERROR(WaitRejoined(c, t.primary, 30s));
    note_ = moved + "; " + t.primary + " rejoined as a secondary " +
            std::to_string(static_cast<int64_t>(ToMillis(RealClock().Now() - healed))) +
            "ms after the heal";
    // Its unacknowledged tail (the direct client's writes after the cut) is moved aside when
    // it first follows the new primary (it may say "secondary" a moment before).
    std::map<std::string, uintmax_t> now;
    std::string fresh;
    Status aside = c.WaitFor(
        "a moved-aside tail in " + t.primary + "'s data directory",
        [&] {
          now = Asides(c, t.primary);
          for (const auto& [path, size] : now) {
            if (!asides_before_.count(path) && size > 0) fresh = path;
          }
          return !fresh.empty();
        },
        10s);
    if (!aside.ok()) {
      return aside.WithContext(std::to_string(now.size()) + " diverged-epoch files, none new");
    }
    note_ += ", tail moved aside: " + fs::path(fresh).filename().string() + " (" +
             std::to_string(now[fresh]) + " bytes)";
    return Status::Ok();
  }
  Status Cleanup(Cluster&, const Target&) override {
    if (cut_.empty()) return Status::Ok();
    Status healed = lab_.Heal(cut_);
    cut_.clear();
    return healed;
  }
  Status AfterStop() override { return lab_.Destroy(); }

 private:
  // With quorum 1 the reconfiguration needs all three replicas (every write quorum must
  // overlap them) and waits in collect: the operator's `hafab failover kv --accept-data-loss`
  // once it says quorum-lost.
  Status AcceptDataLoss(Cluster& c, const Target& t) {
    HAFAB_RETURN_IF_ERROR(c.WaitFor(
        "a quorum-lost event",
        [&] {
          auto ev = c.Api("GET", "/v1/events");
          if (!ev.ok()) return false;
          for (const auto& e : ev->value("events", json::array())) {
            if (e.value("type", "") == "quorum-lost" && !t.ops_before.count(e.value("op", ""))) {
              return true;
            }
          }
          return false;
        },
        20s));
    auto r =
        c.Api("POST", "/v1/roles/" + Role() + "/failover", json{{"accept_data_loss", true}}.dump());
    return r.ok() ? Status::Ok() : r.status().WithContext("failover --accept-data-loss");
  }

  // `instance`'s moved-aside tails (path -> size): <data>/replicas/<instance>/*.diverged-epoch-*
  // anywhere under the cluster's state directory (each agent's data directory is there).
  static std::map<std::string, uintmax_t> Asides(Cluster& c, const std::string& instance) {
    std::map<std::string, uintmax_t> out;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(c.state_dir(), ec), end; !ec && it != end;
         it.increment(ec)) {
      const fs::path& p = it->path();
      if (p.filename().string().find(".diverged-epoch-") == std::string::npos) continue;
      if (p.parent_path().filename() != instance ||
          p.parent_path().parent_path().filename() != "replicas") {
        continue;
      }
      out[p.string()] = fs::file_size(p, ec);
    }
    return out;
  }

  NetnsLab lab_;
  std::string cut_;
  std::map<std::string, uintmax_t> asides_before_;
};

}  // namespace

std::vector<std::string> ScenarioNames(const std::string& group) {
  std::vector<std::string> active_passive = {"instance_kill", "instance_stop",    "node_kill",
                                             "agent_stop",    "controller_crash", "slow_detach",
                                             "partition"};
  std::vector<std::string> replicated = {"repl_primary_kill", "repl_secondary_kill",
                                         "repl_partition", "repl_controller_crash"};
  if (group == "active-passive") return active_passive;
  if (group == "replicated") return replicated;
  active_passive.insert(active_passive.end(), replicated.begin(), replicated.end());
  return active_passive;
}

Result<std::unique_ptr<Scenario>> MakeScenario(const std::string& name) {
  if (name == "instance_kill") return std::unique_ptr<Scenario>(new InstanceKill());
  if (name == "instance_stop") return std::unique_ptr<Scenario>(new InstanceStop());
  if (name == "node_kill") return std::unique_ptr<Scenario>(new NodeKill());
  if (name == "agent_stop") return std::unique_ptr<Scenario>(new AgentStop());
  if (name == "controller_crash") return std::unique_ptr<Scenario>(new ControllerCrash());
  if (name == "slow_detach") return std::unique_ptr<Scenario>(new SlowDetach());
  if (name == "partition") return std::unique_ptr<Scenario>(new Partition());
  if (name == "repl_primary_kill") return std::unique_ptr<Scenario>(new ReplPrimaryKill());
  if (name == "repl_secondary_kill") return std::unique_ptr<Scenario>(new ReplSecondaryKill());
  if (name == "repl_partition") return std::unique_ptr<Scenario>(new ReplPartition());
  if (name == "repl_controller_crash") {
    return std::unique_ptr<Scenario>(new ReplControllerCrash());
  }
  return Status::NotFound("no scenario named " + name);
}

}  // namespace hafab::faults
