#include "tests/faults/scenarios.h"

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "http/http.h"
#include "tests/e2e/kv_checker.h"

namespace hafab::faults {
namespace {

using namespace std::chrono_literals;
using e2e::Cluster;
using e2e::KvChecker;
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

// Every node up, no operation running, a ready kvd primary, a kvd standby on another node
// and kvd answering through the gateway: the state each fault starts from.
bool Settled(Cluster& c) {
  auto st = c.Api("GET", "/v1/status");
  if (!st.ok()) return false;
  for (const auto& n : st->value("nodes", json::array())) {
    if (n.value("state", "") != "up") return false;
  }
  for (const auto& op : st->value("operations", json::array())) {
    if (op.value("state", "") == "running") return false;
  }
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
      std::vector<std::pair<std::string, std::string>> env = ClusterEnv(rng, &res.detail);
      for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
      cluster_ = std::make_unique<Cluster>();
      Status started = cluster_->Start(60s);
      for (const auto& [k, v] : env) unsetenv(k.c_str());  // `up` has its copy
      if (!started.ok()) return started.WithContext("starting the cluster");
      HAFAB_RETURN_IF_ERROR(Prepare(*cluster_));
    }
    Cluster& c = *cluster_;
    HAFAB_RETURN_IF_ERROR(c.WaitFor(
        "a settled cluster", [&] { return Settled(c); }, 60s));
    Target t;
    std::tie(t.primary, t.node) = c.KvdPrimary();
    if (t.node.empty()) return Status::Internal("no kvd primary");
    t.ops_before = OpIds(c);

    std::string prefix = "i" + std::to_string(++iteration_) + "-";
    KvChecker gw(c.kvd_url(), 10ms, prefix);
    gw.Start();
    HAFAB_RETURN_IF_ERROR(c.WaitFor(
        "20 acknowledged writes", [&] { return gw.acked() >= 20; }, 20s));
    // Clients that reach the primary without the gateway (same host, other side of a
    // partition): the old primary must stop acknowledging them before a new one starts.
    std::unique_ptr<KvChecker> direct;
    if (DirectClients()) {
      int port = InstancePort(c, t.primary);
      if (port == 0) return Status::Internal("no port for " + t.primary);
      direct = std::make_unique<KvChecker>("http://127.0.0.1:" + std::to_string(port), 10ms,
                                           prefix + "direct-");
      direct->set_read_url(c.kvd_url());
      direct->Start();
      HAFAB_RETURN_IF_ERROR(c.WaitFor(
          "20 direct writes", [&] { return direct->acked() >= 20; }, 20s));
    }

    HAFAB_RETURN_IF_ERROR(Inject(c, t, rng, &res.detail));
    int64_t after_fault = gw.acked();
    Status recovered = WaitRecovered(c, t);
    if (recovered.ok()) {
      recovered = c.WaitFor(
          "writes to resume", [&] { return gw.acked() >= after_fault + 30; }, 30s);
    }
    Status cleaned = Cleanup(c, t);
    gw.Stop();
    if (direct) direct->Stop();
    HAFAB_RETURN_IF_ERROR(recovered.WithContext(res.detail));
    HAFAB_RETURN_IF_ERROR(cleaned);

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
    }
    for (const auto& w : why) res.detail += "\n    " + w;
    return res;
  }

  Status Finish() override {
    if (!cluster_) return Status::Ok();
    Status st = cluster_->Stop();
    cluster_.reset();
    return st;
  }

 protected:
  virtual bool FreshClusterEachTime() const { return false; }
  virtual bool DirectClients() const { return false; }
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

// SIGSTOP of the primary instance: a hung service that only liveness probes can catch.
class InstanceStop : public ClusterScenario {
 public:
  std::string name() const override { return "instance_stop"; }

 protected:
  // The e2e manifest probes kvd's liveness over TCP, which a stopped process still passes
  // (the kernel completes the handshake from the listen backlog). A hung service is caught
  // by an HTTP liveness probe: apply the same manifest with one.
  Status Prepare(Cluster& c) override {
    std::string file = c.state_dir() + "/../cluster.yaml";
    std::ifstream in(file);
    std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string tcp = "liveness: {kind: tcp,";
    auto at = yaml.find(tcp);
    if (at == std::string::npos) return Status::Internal("no tcp liveness probe in " + file);
    yaml.replace(at, tcp.size(), "liveness: {kind: http, path: /health,");
    auto r = c.Api("POST", "/v1/apply?file=cluster.yaml", yaml);
    return r.ok() ? Status::Ok() : r.status().WithContext("applying an http liveness probe");
  }
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

}  // namespace

std::vector<std::string> ScenarioNames() {
  return {"instance_kill", "instance_stop", "node_kill", "agent_stop", "controller_crash"};
}

Result<std::unique_ptr<Scenario>> MakeScenario(const std::string& name) {
  if (name == "instance_kill") return std::unique_ptr<Scenario>(new InstanceKill());
  if (name == "instance_stop") return std::unique_ptr<Scenario>(new InstanceStop());
  if (name == "node_kill") return std::unique_ptr<Scenario>(new NodeKill());
  if (name == "agent_stop") return std::unique_ptr<Scenario>(new AgentStop());
  if (name == "controller_crash") return std::unique_ptr<Scenario>(new ControllerCrash());
  return Status::NotFound("no scenario named " + name);
}

}  // namespace hafab::faults
