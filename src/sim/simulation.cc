#include "sim/simulation.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <tuple>
#include <utility>

#include "controller/controller.h"
#include "core/fnv.h"
#include "core/random.h"
#include "sim/event_queue.h"
#include "sim/kv_model.h"
#include "sim/network.h"
#include "sim/sim_gateway.h"
#include "sim/sim_node.h"
#include "store/sqlite_store.h"
#include "testing/fake_provider.h"
#include "testing/fault_store.h"

namespace hafab::sim {
namespace {

using std::chrono::milliseconds;

constexpr const char* kFaultNames[] = {"node-crash",       "process-crash", "process-hang",
                                       "partition",        "isolation",     "store-outage",
                                       "controller-crash", "switchover",    "slow-node"};

double Ms(Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

Percentiles Summarize(std::vector<double> v) {
  Percentiles p;
  p.n = v.size();
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]; };
  p.p50 = at(0.5);
  p.p99 = at(0.99);
  p.max = v.back();
  return p;
}

nlohmann::json ToJson(const Percentiles& p) {
  return {{"n", p.n}, {"p50", p.p50}, {"p99", p.p99}, {"max", p.max}};
}

// Whether `a` and `b` list the same roles in the same order.
bool SameRoles(const wire::Routes& a, const wire::Routes& b) {
  return std::equal(a.endpoints.begin(), a.endpoints.end(), b.endpoints.begin(), b.endpoints.end(),
                    [](const auto& x, const auto& y) { return x.role == y.role; });
}

std::string LastPart(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The cluster the simulation builds: `nodes` nodes over five fault and five update domains; a
// third of the instances in active-passive roles (primary + standby, an endpoint, most with a
// volume),
// the rest in load-balanced roles of four.
manifest::Manifest BuildManifest(const SimOptions& o) {
  manifest::Manifest m;
  m.cluster = "sim";
  const int domains = std::min(5, o.nodes);
  for (int i = 0; i < o.nodes; ++i) {
    manifest::Node n;
    n.name = "n" + std::to_string(i);
    n.fault_domain = "fd" + std::to_string(i % domains);
    n.update_domain = "ud" + std::to_string((i / domains) % domains);
    n.address = "10." + std::to_string(i >> 16) + "." + std::to_string((i >> 8) & 255) + "." +
                std::to_string(i & 255);
    m.nodes.push_back(n);
  }
  const int instances = o.instances > 0 ? o.instances : 3 * o.nodes;
  const int ap_roles = std::max(1, instances / 6);
  const int lb_roles = std::max(1, (instances - 2 * ap_roles) / 4);
  manifest::Probe probe;
  probe.kind = manifest::ProbeKind::kHttp;
  probe.path = "/health";
  probe.interval = o.probe_interval;
  probe.timeout = o.probe_interval;
  probe.failover_after = probe.DefaultFailoverAfter();
  int listen = 10000;
  // The role it adds (the pointer is valid until the next one).
  auto role = [&](std::string name, manifest::RoleMode mode, std::string command, int instances,
                  int port) {
    manifest::Role& r = m.roles.emplace_back();
    r.name = std::move(name);
    r.mode = mode;
    r.command = std::move(command);
    r.instances = instances;
    r.port = port;
    r.endpoint = manifest::Endpoint{"127.0.0.1:" + std::to_string(listen++), {}};
    r.probes.readiness = probe;
    return &r;
  };
  for (int i = 0; i < ap_roles; ++i) {
    manifest::Role* r =
        role("kv" + std::to_string(i), manifest::RoleMode::kActivePassive, "kvd", 2, 7000);
    r->probes.liveness = probe;
    // One in four has no volume (a singleton such as a scheduler): only the fabric keeps it
    // from running twice.
    if (i % 4 != 3) r->volume = r->name + "-data";
  }
  for (int i = 0; i < lb_roles; ++i) {
    role("web" + std::to_string(i), manifest::RoleMode::kLoadBalanced, "echo-app", 4, 8000);
  }
  return m;
}

class Simulation;

// A node's link to the simulated controller over the simulated network (agent/control_link.h).
class SimControlLink final : public agent::ControlLink {
 public:
  SimControlLink(Simulation& sim, std::string node);
  void Heartbeat(const wire::AgentHeartbeat& heartbeat, Duration timeout,
                 std::function<void(Result<wire::HeartbeatAnswer>)> done) override;
  void FetchAssignments(const std::string& node, uint64_t after, uint64_t digest, Duration wait,
                        std::function<void(Result<wire::AssignmentList>)> done) override;
  std::string Describe() const override { return "sim"; }

 private:
  template <typename T>
  void Call(Duration timeout, const char* what,
            std::function<Result<T>(controller::Controller&)> call,
            std::function<void(Result<T>)> done);

  Simulation& sim_;
  std::string node_;
  SimNetwork::Link& up_;    // to the controller
  SimNetwork::Link& down_;  // from it
};

class Simulation final : public ProcessObserver {
 public:
  explicit Simulation(const SimOptions& o)
      : o_(o),
        events_(clock_),
        random_(o.seed * 0x9E3779B97F4A7C15ULL + 1),
        client_random_(o.seed + 7),
        net_(events_, o.seed + 13, NetworkOptions{o.min_delay, o.max_delay, o.loss}),
        manifest_(BuildManifest(o)) {
    dir_ = o.work_dir;
    if (dir_.empty()) {
      dir_ = (std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp");
      dir_ += "/hafab-sim-" + std::to_string(getpid()) + "-" + std::to_string(o.seed) + "-" +
              std::to_string(reinterpret_cast<uintptr_t>(this) & 0xffff);
    }
    std::filesystem::create_directories(dir_);
  }
  ~Simulation() override {
    nodes_.clear();
    controller_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  SimResult Run();

  // --- what the links and nodes call
  controller::Controller* LiveController() {
    return controller_ && !controller_->crashed() ? controller_.get() : nullptr;
  }
  // After every call into the controller: a crash at a step is noticed here.
  void AfterControllerCall() {
    if (controller_ && controller_->crashed() && !controller_down_)
      ControllerDown("crashed at step");
  }
  EventQueue& events() { return events_; }
  SimNetwork& net() { return net_; }
  void CountNodeMessage() { ++result_.node_messages; }
  void CountControllerHeartbeat() { ++result_.controller_heartbeats; }
  void Started(const SimProcess& p) override;

 private:
  void StartController();
  void ControllerDown(const std::string& why);
  void ControllerTick();
  // `rebooted`: its silence since a crash ends when its agent starts, not before.
  void StartNode(const std::string& name, bool rebooted = false);
  void GatewayHeartbeat(SimGateway& gw);
  void PushRoutes();
  void AnswerPoll(SimGateway& gw);
  void FetchRoutes(SimGateway& gw);
  void Installed(SimGateway& gw);
  void ClientWrite(const std::string& role, int key);
  // An agent's ring probe to `to`; a suspicion is checked against the truth on the way.
  void RingSend(const std::string& from, const std::string& to, const wire::RingMessage& m);
  void CheckSuspicions(const std::string& node);
  // The client's request through a gateway to `role`'s primary: `at` runs at the node if the
  // message gets there, and its answer comes back to `reply` at the client.
  void ThroughGateway(const std::string& role,
                      std::function<std::optional<uint64_t>(const std::string& node, pid_t pid)> at,
                      std::function<void(uint64_t)> reply);
  void Strike(const Fault& f);
  // `node` is back (booted, partition healed) before or after the controller noticed: its
  // silence measures no detection any more; its roles, unless a failover started for them
  // within two leases, none.
  void ForgetSilence(const std::string& node);
  void ReadEvents();
  void Trace(const std::string& line);
  void Violation(const std::string& what);
  void FinalChecks();
  std::string Now() const;
  bool Done() const { return result_.violation_count > 0; }

  SimOptions o_;
  testing::FakeClock clock_;
  EventQueue events_;
  Random random_;
  Random client_random_;
  SimNetwork net_;
  testing::FakeProvider provider_;
  manifest::Manifest manifest_;
  std::string dir_;
  std::unique_ptr<store::Store> sqlite_;
  std::unique_ptr<testing::FaultStore> store_;
  std::unique_ptr<controller::Controller> controller_;
  bool controller_down_ = true;
  int incarnation_ = 0;
  int64_t last_event_ = 0;
  std::map<std::string, std::unique_ptr<SimControlLink>> links_;
  std::map<std::string, std::unique_ptr<SimNode>> nodes_;  // null: crashed, not back yet
  std::vector<std::unique_ptr<SimNode>> crashed_nodes_;    // stopped, held for their events
  std::map<std::string, int> boots_;
  std::vector<std::unique_ptr<SimGateway>> gateways_;
  // The newest table answered. Once no answer holds it any more, the next version is made by
  // copying only the endpoints whose revision changed.
  std::shared_ptr<wire::Routes> routes_snapshot_;
  KvModel kv_;
  // role -> the processes started for it: (node, incarnation, pid)
  std::map<std::string, std::vector<std::tuple<std::string, int, pid_t>>> primaries_;
  std::map<std::pair<std::string, uint64_t>, std::string> routed_;  // (role, epoch) -> instance
  std::map<std::string, std::string> ap_volume_;  // active-passive role -> volume (or "")
  std::vector<std::string> client_roles_;
  std::map<std::string, uint64_t> client_seq_;
  // Detection: node -> when it went silent (crash or isolation); role -> when its primary did.
  // A node the faults silenced (a crash, a partition) since when, until the controller says it
  // is down or it is heard again; the active-passive roles whose primary it ran, until their
  // failover is done or it is clearly not needed (ForgetSilence).
  std::map<std::string, TimePoint> silent_since_;
  std::map<std::string, TimePoint> role_silent_since_;
  std::map<std::string, std::string> role_silent_node_;     // role -> the node it lost
  std::set<std::string> failing_over_;                      // roles with a failover under way
  std::map<std::string, TimePoint> process_fault_at_;       // role -> its primary's process fault
  std::map<std::string, std::set<std::string>> suspected_;  // node -> whom its ring suspects
  std::vector<double> detection_, failover_;
  TimePoint controller_started_{};
  std::deque<std::string> trace_;
  Fnv1a hash_;  // of the trace
  SimResult result_;
};

// --- links

// A call to the controller over the network: `call` runs there if the request arrives and the
// controller is up; `done` runs once, with its answer or, after `timeout`, DeadlineExceeded.
template <typename T>
void SimControlLink::Call(Duration timeout, const char* what,
                          std::function<Result<T>(controller::Controller&)> call,
                          std::function<void(Result<T>)> done) {
  // The request times out unless it is answered. An answer comes unless the network loses the
  // request or the answer, or no controller takes the request: only then is the timeout
  // scheduled, for when it would have fired. (An answer later than the timeout, on a network
  // slower than any run uses, is taken as the timeout when it comes.)
  const TimePoint deadline = sim_.events().Now() + timeout;
  auto answer = std::make_shared<std::function<void(Result<T>)>>(std::move(done));
  auto timed_out = [what] { return Status::DeadlineExceeded(std::string(what) + " timed out"); };
  auto unanswered = [this, answer, deadline, timed_out] {
    sim_.events().At(deadline, [answer, timed_out] { (*answer)(timed_out()); });
  };
  sim_.CountNodeMessage();
  sim_.net().Send(
      up_,
      [this, call = std::move(call), answer, deadline, timed_out, unanswered] {
        controller::Controller* c = sim_.LiveController();
        if (c == nullptr) return unanswered();
        Result<T> r = call(*c);
        sim_.AfterControllerCall();
        sim_.net().Send(
            down_,
            [this, answer, deadline, timed_out, r = std::move(r)]() mutable {
              if (sim_.events().Now() > deadline) r = timed_out();
              (*answer)(std::move(r));
            },
            unanswered);
      },
      unanswered);
}

SimControlLink::SimControlLink(Simulation& sim, std::string node)
    : sim_(sim),
      node_(std::move(node)),
      up_(sim.net().LinkOf(node_, kController)),
      down_(sim.net().LinkOf(kController, node_)) {}

void SimControlLink::Heartbeat(const wire::AgentHeartbeat& heartbeat, Duration timeout,
                               std::function<void(Result<wire::HeartbeatAnswer>)> done) {
  Call<wire::HeartbeatAnswer>(
      timeout, "heartbeat",
      [this, heartbeat](controller::Controller& c) {
        sim_.CountControllerHeartbeat();
        return c.AgentHeartbeat(node_, heartbeat);
      },
      std::move(done));
}

void SimControlLink::FetchAssignments(const std::string& node, uint64_t, uint64_t, Duration,
                                      std::function<void(Result<wire::AssignmentList>)> done) {
  Call<wire::AssignmentList>(
      std::chrono::seconds(1), "assignments",
      [node](controller::Controller& c) { return c.AssignmentListFor(node); }, std::move(done));
}

// --- the run

std::string Simulation::Now() const {
  char buf[32];
  snprintf(buf, sizeof buf, "%10.3f",
           Ms(clock_.Now() - TimePoint(std::chrono::hours(1000))) / 1000);
  return buf;
}

void Simulation::Trace(const std::string& line) {
  std::string l = Now() + " " + line;
  hash_.Add(l).Add("\n");
  if (o_.print_trace) fprintf(stderr, "%s\n", l.c_str());
  trace_.push_back(std::move(l));
  if (trace_.size() > o_.trace_keep) trace_.pop_front();
}

void Simulation::Violation(const std::string& what) {
  ++result_.violation_count;
  Trace("VIOLATION " + what);
  if (result_.violations.size() < 5) result_.violations.push_back(Now() + " " + what);
}

void Simulation::StartController() {
  controller::ControllerOptions co;
  co.lease_ttl = o_.lease_ttl;
  co.reconcile_interval = o_.reconcile_interval;
  co.fence_margin = milliseconds(500);
  co.crash_exits = false;
  co.unsafe_skip_stop_wait = o_.break_stop_wait;
  co.ring_detector = o_.ring;
  co.ring_k = o_.ring_k;
  co.heartbeat_interval = o_.heartbeat_interval;
  co.keepalives_per_second = o_.keepalives_per_second;
  co.arbiter.check_timeout = 4 * o_.ring_probe_interval;
  // Some incarnations die at the start of a failover step (the journal's test crash).
  if (incarnation_ > 0 && o_.faults.count(FaultKind::kControllerCrash) && random_.OneIn(0.3)) {
    co.crash_at_step = controller::kFailoverSteps[1 + random_.Uniform(8)];
  }
  auto c = std::make_unique<controller::Controller>(*store_, clock_, &provider_, co);
  Status st = c->Start();
  if (!st.ok()) {  // the store is out: try again
    events_.After(milliseconds(500), [this] { StartController(); });
    return;
  }
  if (incarnation_ == 0) {
    auto applied = c->Apply(manifest_);
    if (!applied.ok()) {
      Violation("apply failed: " + applied.status().ToString());
      return;
    }
  }
  ++incarnation_;
  if (incarnation_ > 1) ++result_.controller_restarts;
  controller_started_ = clock_.Now();
  // Operations a previous incarnation left running must be running again (resumed).
  for (const auto& [id, op] : c->ops()) {
    if (op.state == wire::OpState::kRunning && c->ActiveOp(op.role) == nullptr) {
      Violation("operation " + id + " of " + op.role + " is running in the store but not resumed");
    }
  }
  Trace("controller incarnation " + std::to_string(incarnation_) + " started" +
        (co.crash_at_step.empty() ? "" : " (dies at step " + co.crash_at_step + ")"));
  controller::ControllerListener l;
  l.assignments_changed = [this](const std::string& node) {
    // The answer to the node's long poll.
    events_.After(Duration::zero(), [this, node] {
      controller::Controller* c = LiveController();
      auto n = nodes_.find(node);
      if (c == nullptr || n == nodes_.end() || !n->second) return;
      auto list = c->AssignmentListFor(node);
      if (!list.ok()) return;
      net_.Send(kController, node, [this, node, list = *list] {
        auto n = nodes_.find(node);
        if (n != nodes_.end() && n->second) n->second->Deliver(list, TimePoint{});
      });
    });
  };
  l.routes_changed = [this] { events_.After(Duration::zero(), [this] { PushRoutes(); }); };
  l.check_node = [this](const std::string& node) {
    net_.Send(kController, node, [this, node] {
      auto n = nodes_.find(node);
      if (n != nodes_.end() && n->second) n->second->Check();
    });
  };
  c->SetListener(std::move(l));
  controller_ = std::move(c);
  controller_down_ = false;
  last_event_ = 0;
  ReadEvents();
}

void Simulation::ControllerDown(const std::string& why) {
  controller_down_ = true;
  Trace("controller down: " + why);
  controller_.reset();
  events_.After(milliseconds(500 + static_cast<int64_t>(random_.Uniform(2500))),
                [this] { StartController(); });
}

void Simulation::ControllerTick() {
  if (controller_ && !controller_down_) {
    controller_->Tick();
    AfterControllerCall();
    ReadEvents();
  }
  events_.After(milliseconds(20), [this] { ControllerTick(); });
}

void Simulation::ReadEvents() {
  controller::Controller* c = LiveController();
  if (c == nullptr) return;
  if (last_event_ == 0) last_event_ = c->LastEventId();
  for (const auto& e : c->EventsAfter(last_event_)) {
    last_event_ = e.id;
    if (e.type == "failover-step" || e.type == "instance-ready" || e.type == "instance-restarted") {
      continue;
    }
    Trace(e.type + ": " + e.message);
    const TimePoint now = clock_.Now();
    auto field = [&](const char* k) {
      auto it = e.fields.find(k);
      return it == e.fields.end() ? std::string() : it->second;
    };
    if (e.type == "node-isolated") ++result_.isolations;
    if (e.type == "node-down") {
      const std::string node = field("node");
      auto s = silent_since_.find(node);
      if (s != silent_since_.end()) {
        detection_.push_back(Ms(now - s->second));
        silent_since_.erase(s);
      } else if (nodes_.count(node) && nodes_[node] && !net_.Partitioned(node) &&
                 now - controller_started_ > o_.lease_ttl + o_.heartbeat_interval) {
        // Up, reachable, and not a controller that has just started and not heard it yet.
        ++result_.false_downs;
        Trace("(a node-down no fault explains)");
      }
    } else if (e.type == "failover-started") {
      ++result_.failovers;
      const std::string role = field("role");
      failing_over_.insert(role);
      const controller::Operation* op = c->ActiveOp(role);
      const controller::FailoverOp* f =
          op == nullptr ? nullptr : std::get_if<controller::FailoverOp>(&op->part);
      bool justified = role_silent_since_.count(role) > 0 || (f != nullptr && f->planned);
      auto pf = process_fault_at_.find(role);
      if (pf != process_fault_at_.end() && now - pf->second < std::chrono::seconds(30)) {
        justified = true;
      }
      // The controller lost a node because it could not hear it: a crashed or isolated
      // node, or the controller's own restart (a node that a new incarnation does not hear
      // within its first lease).
      if (f != nullptr &&
          (net_.Partitioned(f->old_node) || !nodes_.count(f->old_node) || !nodes_[f->old_node])) {
        justified = true;
      }
      if (!justified) {
        ++result_.false_failovers;
        Trace("(a failover no fault explains)");
      }
    } else if (e.type == "failover-done" || e.type == "failover-failed") {
      failing_over_.erase(field("role"));
      auto s = role_silent_since_.find(field("role"));
      if (s != role_silent_since_.end() && e.type == "failover-done") {
        failover_.push_back(Ms(now - s->second));
        role_silent_since_.erase(s);
        role_silent_node_.erase(field("role"));
      }
    }
  }
}

void Simulation::RingSend(const std::string& from, const std::string& to,
                          const wire::RingMessage& m) {
  ++result_.node_messages;
  net_.Send(from, to, [this, to, m] {
    auto n = nodes_.find(to);
    if (n == nodes_.end() || !n->second) return;
    n->second->OnRing(m);
    CheckSuspicions(to);
  });
  CheckSuspicions(from);
}

// A suspicion the agent just raised of a neighbour that is alive, not paused and reachable
// from it is false (the loss of a probe, its ack and the indirect probes all at once).
void Simulation::CheckSuspicions(const std::string& node) {
  auto n = nodes_.find(node);
  if (n == nodes_.end() || !n->second || n->second->ring() == nullptr) return;
  auto& seen = suspected_[node];
  const std::set<std::string>& now = n->second->ring()->suspected();
  for (const auto& s : now) {
    if (seen.count(s)) continue;
    auto t = nodes_.find(s);
    if (t != nodes_.end() && t->second && !t->second->Paused() && net_.Connected(node, s)) {
      ++result_.false_suspicions;
      Trace("(" + node + " suspects " + s + ", which is up and reachable)");
    }
  }
  seen = now;
}

void Simulation::ForgetSilence(const std::string& node) {
  silent_since_.erase(node);
  const TimePoint healed = clock_.Now();
  events_.After(2 * o_.lease_ttl, [this, node, healed] {
    for (auto it = role_silent_node_.begin(); it != role_silent_node_.end();) {
      if (it->second == node && !failing_over_.count(it->first) &&
          role_silent_since_[it->first] <= healed) {
        role_silent_since_.erase(it->first);
        it = role_silent_node_.erase(it);
      } else {
        ++it;
      }
    }
  });
}

void Simulation::StartNode(const std::string& name, bool rebooted) {
  const manifest::Node* spec = nullptr;
  for (const auto& n : manifest_.nodes) {
    if (n.name == name) spec = &n;
  }
  auto& link = links_[name];
  if (!link) link = std::make_unique<SimControlLink>(*this, name);
  SimNodeOptions so;
  so.name = name;
  so.data_dir = dir_ + "/" + name;
  so.incarnation = ++boots_[name];
  so.address = spec->address;
  so.fault_domain = spec->fault_domain;
  so.update_domain = spec->update_domain;
  so.heartbeat_interval = o_.heartbeat_interval;
  so.tick_interval = o_.tick_interval;
  so.lease_ttl = o_.lease_ttl;
  so.skip_self_fence = o_.break_self_fence;
  so.ring = o_.ring;
  so.ring_options.probe_interval = o_.ring_probe_interval;
  so.ring_options.probe_timeout = o_.ring_probe_interval / 2;
  so.ring_options.indirect_timeout = o_.ring_probe_interval;
  so.ring_send = [this, name](const std::string& to, const wire::RingMessage& m) {
    RingSend(name, to, m);
  };
  auto node = std::make_unique<SimNode>(events_, clock_, provider_, *link, *this, so);
  SimNode* n = node.get();
  nodes_[name] = std::move(node);
  // Agents start spread over one heartbeat interval, as real ones do.
  events_.After(
      Duration(static_cast<Duration::rep>(random_.Uniform(o_.heartbeat_interval.count()))),
      [this, name, n, rebooted] {
        auto it = nodes_.find(name);
        if (it == nodes_.end() || it->second.get() != n) return;
        n->Start();
        if (rebooted) ForgetSilence(name);
      });
}

// Two primaries of one active-passive role must never run at once: the old one has stopped
// (its agent stopped it, or it fenced itself, or its node died) before a new one starts.
void Simulation::Started(const SimProcess& p) {
  auto vol = ap_volume_.find(p.role);
  if (vol == ap_volume_.end()) return;
  auto& procs = primaries_[p.role];
  std::erase_if(procs, [this](const auto& np) {
    const auto& [node, incarnation, pid] = np;
    auto n = nodes_.find(node);
    return n == nodes_.end() || !n->second || n->second->incarnation() != incarnation ||
           !n->second->Alive(pid);
  });
  for (const auto& [node, incarnation, pid] : procs) {
    if (node == p.node && pid == p.pid) continue;
    Violation("two primaries of " + p.role + ": " + p.instance + " (epoch " +
              std::to_string(p.epoch) + ") started on " + p.node + " while pid " +
              std::to_string(pid) + " still runs on " + node);
  }
  procs.emplace_back(p.node, p.incarnation, p.pid);
  if (vol->second.empty()) return;
  const std::string volume = LastPart(p.volume_dir);
  kv_.Started(p.node, p.pid, volume, provider_.AttachedTo(volume) == p.node);
}

void Simulation::GatewayHeartbeat(SimGateway& gw) {
  events_.After(o_.heartbeat_interval, [this, &gw] { GatewayHeartbeat(gw); });
  wire::GatewayHeartbeat hb;
  hb.routes_version = gw.version();
  const TimePoint sent = clock_.Now();
  net_.Send(gw.id(), kController, [this, &gw, hb, sent] {
    controller::Controller* c = LiveController();
    if (c == nullptr) return;
    auto r = c->GatewayHeartbeat(gw.id(), hb);
    AfterControllerCall();
    if (!r.ok()) return;
    Duration ttl = r->lease_ttl;
    if (r->lease) ttl = std::min(ttl, *r->lease);
    net_.Send(kController, gw.id(), [&gw, sent, ttl] { gw.Renewed(sent + ttl); });
  });
}

// The answers to the gateways' long polls: each gateway has one poll open; it is answered
// with the table of the moment, and the gateway polls again once it installed it. So a
// gateway skips the versions published while its answer was on the way, as a real one does.
void Simulation::PushRoutes() {
  for (auto& gw : gateways_) AnswerPoll(*gw);
}

void Simulation::AnswerPoll(SimGateway& gw) {
  controller::Controller* c = LiveController();
  if (c == nullptr || static_cast<uint64_t>(c->RoutesVersion()) <= gw.version()) return;
  if (gw.poll_in_flight) {
    gw.poll_again = true;
    return;
  }
  if (!routes_snapshot_ || routes_snapshot_->version != c->RoutesVersion()) {
    const wire::Routes& now = c->Routes();
    if (routes_snapshot_.use_count() == 1 && SameRoles(*routes_snapshot_, now)) {
      routes_snapshot_->version = now.version;
      for (size_t i = 0; i < now.endpoints.size(); ++i) {
        const wire::RouteEndpoint& e = now.endpoints[i];
        if (e.revision == 0 || e.revision != routes_snapshot_->endpoints[i].revision) {
          routes_snapshot_->endpoints[i] = e;
        }
      }
    } else {
      routes_snapshot_ = std::make_shared<wire::Routes>(now);
    }
  }
  gw.poll_in_flight = true;
  SimGateway* g = &gw;
  std::shared_ptr<const wire::Routes> routes = routes_snapshot_;
  const uint64_t poll = ++gw.polls;
  // A lost answer is a broken connection: the gateway polls again (FetchRoutes).
  events_.After(std::chrono::seconds(1), [g, poll] {
    if (g->polls == poll) g->poll_in_flight = false;
  });
  net_.Send(kController, gw.id(), [this, g, routes, poll]() mutable {
    if (g->polls == poll) g->poll_in_flight = false;
    if (g->Install(*routes)) Installed(*g);
    routes.reset();  // the next answer may patch it
    if (std::exchange(g->poll_again, false)) AnswerPoll(*g);
  });
}

// The gateway's poll after a lost answer or a controller restart.
void Simulation::FetchRoutes(SimGateway& gw) {
  events_.After(std::chrono::seconds(1), [this, &gw] { FetchRoutes(gw); });
  net_.Send(gw.id(), kController, [this, &gw] { AnswerPoll(gw); });
}

// Every gateway routes an active-passive role's epoch to one instance, the same everywhere.
void Simulation::Installed(SimGateway& gw) {
  const gateway::RouteTable& table = *gw.table();
  for (size_t at : table.compiled()) {
    const gateway::Endpoint& e = *table.endpoints()[at];
    if (e.mode != gateway::RoutingMode::kActivePassive) continue;
    int routable = 0;
    for (const auto& b : e.backends) routable += b.epoch == e.epoch && b.ready && !b.busy;
    if (routable > 1) {
      Violation("gateway " + gw.id() + " routes " + std::to_string(routable) + " primaries of " +
                e.role + " at epoch " + std::to_string(e.epoch));
    }
    int i = e.PrimaryIndex();
    if (i < 0) continue;
    const std::string& inst = e.backends[static_cast<size_t>(i)].instance;
    auto [it, fresh] = routed_.emplace(std::make_pair(e.role, e.epoch), inst);
    if (!fresh && it->second != inst) {
      Violation("gateway " + gw.id() + " routes " + e.role + " epoch " + std::to_string(e.epoch) +
                " to " + inst + ", another gateway routed it to " + it->second);
    }
  }
}

void Simulation::ThroughGateway(
    const std::string& role,
    std::function<std::optional<uint64_t>(const std::string& node, pid_t pid)> at,
    std::function<void(uint64_t)> reply) {
  SimGateway& gw = *gateways_[client_random_.Uniform(gateways_.size())];
  net_.Send(kClient, gw.id(), [this, &gw, role, at, reply] {
    const gateway::Backend* b = gw.Route(role, clock_.Now(), client_random_);
    if (b == nullptr) return;
    const std::string node = b->node;
    const std::string instance = b->instance;
    net_.Send(gw.id(), node, [this, &gw, node, instance, at, reply] {
      auto n = nodes_.find(node);
      if (n == nodes_.end() || !n->second) return;
      // The process of that instance on the node, if it answers.
      pid_t pid = 0;
      for (const auto& r : n->second->supervisor().Report()) {
        if (r.instance == instance && r.pid > 0 && n->second->Serves(r.pid)) pid = r.pid;
      }
      if (pid == 0) return;
      auto answer = at(node, pid);
      if (!answer) return;
      uint64_t v = *answer;
      net_.Send(node, gw.id(),
                [this, &gw, reply, v] { net_.Send(gw.id(), kClient, [reply, v] { reply(v); }); });
    });
  });
}

void Simulation::ClientWrite(const std::string& role, int key) {
  events_.After(o_.write_interval, [this, role, key] { ClientWrite(role, (key + 1) % 16); });
  const uint64_t value = ++client_seq_[role];
  const std::string volume = ap_volume_[role];
  ThroughGateway(
      role,
      [this, key, value, volume](const std::string& node, pid_t pid) {
        return kv_.Write(node, pid, provider_.AttachedTo(volume) == node, key, value);
      },
      [this, role, key](uint64_t v) {
        kv_.Acked(role, key, v);
        ++result_.writes_acked;
      });
  // A read of another key, checked against what was acknowledged before it was sent.
  const int rkey = (key + 8) % 16;
  const uint64_t expect = kv_.AckedValue(role, rkey);
  ThroughGateway(
      role, [this, rkey](const std::string& node, pid_t pid) { return kv_.Read(node, pid, rkey); },
      [this, role, rkey, expect](uint64_t v) {
        ++result_.reads_checked;
        if (v < expect) {
          Violation("acknowledged write lost: " + role + " key " + std::to_string(rkey) + " read " +
                    std::to_string(v) + " after " + std::to_string(expect) + " was acknowledged");
        }
      });
}

void Simulation::Strike(const Fault& f) {
  if (Done()) return;
  result_.faults_struck.push_back(f.index);
  ++result_.faults;
  std::vector<std::string> live;
  for (const auto& [name, n] : nodes_) {
    if (n && !net_.Partitioned(name)) live.push_back(name);
  }
  const std::string kind = FaultKindName(f.kind);
  auto heal_at = [&](std::function<void()> fn) { events_.After(f.lasts, std::move(fn)); };
  // The active-passive primaries a node runs now (for detection and justified failovers).
  auto mark_silent = [&](const std::string& node) {
    silent_since_.emplace(node, clock_.Now());
    controller::Controller* c = LiveController();
    if (c == nullptr) return;
    for (const auto& [role, r] : c->roles()) {
      if (r.spec.mode != manifest::RoleMode::kActivePassive) continue;
      auto i = c->instances().find(r.primary);
      // A failover under way keeps the silence that started it.
      if (i != c->instances().end() && i->second.node == node && !failing_over_.count(role)) {
        role_silent_since_[role] = clock_.Now();
        role_silent_node_[role] = node;
      }
    }
  };
  switch (f.kind) {
    case FaultKind::kNodeCrash: {
      if (live.empty()) return;
      const std::string node = live[f.pick % live.size()];
      Trace("fault #" + std::to_string(f.index) + " " + kind + " " + node + " for " +
            std::to_string(ToMs(f.lasts)) + "ms");
      mark_silent(node);
      nodes_[node]->Stop();
      crashed_nodes_.push_back(std::move(nodes_[node]));
      heal_at([this, node] {
        Trace("node " + node + " boots again");
        StartNode(node, /*rebooted=*/true);
      });
      return;
    }
    case FaultKind::kPartition:
    case FaultKind::kIsolation: {
      if (live.empty()) return;
      const std::string node = live[f.pick % live.size()];
      Trace("fault #" + std::to_string(f.index) + " " + kind + " " + node + " for " +
            std::to_string(ToMs(f.lasts)) + "ms");
      mark_silent(node);
      net_.Partition(node, f.kind == FaultKind::kPartition ? SimNetwork::Cut::kFromController
                                                           : SimNetwork::Cut::kFromEveryone);
      heal_at([this, node] {
        Trace("partition of " + node + " healed");
        net_.Heal(node);
        ForgetSilence(node);
      });
      return;
    }
    case FaultKind::kProcessCrash:
    case FaultKind::kProcessHang: {
      std::vector<std::pair<std::string, pid_t>> procs;
      for (const auto& name : live) {
        for (pid_t pid : nodes_[name]->LivePids()) procs.emplace_back(name, pid);
      }
      if (procs.empty()) return;
      auto [node, pid] = procs[f.pick % procs.size()];
      std::string instance;
      for (const auto& r : nodes_[node]->supervisor().Report()) {
        if (r.pid == pid) instance = r.instance;
      }
      Trace("fault #" + std::to_string(f.index) + " " + kind + " " + instance + " (pid " +
            std::to_string(pid) + ") on " + node);
      process_fault_at_[instance.substr(0, instance.rfind('-'))] = clock_.Now();
      if (f.kind == FaultKind::kProcessCrash) {
        nodes_[node]->KillProcess(pid);
      } else {
        nodes_[node]->Hang(pid);
      }
      return;
    }
    case FaultKind::kStoreOutage:
      Trace("fault #" + std::to_string(f.index) + " " + kind + " for " +
            std::to_string(ToMs(f.lasts)) + "ms");
      store_->SetDown(true);
      heal_at([this] {
        Trace("store back");
        store_->SetDown(false);
      });
      return;
    case FaultKind::kSwitchover: {
      controller::Controller* c = LiveController();
      if (c == nullptr || ap_volume_.empty()) return;
      auto it = ap_volume_.begin();
      std::advance(it, static_cast<long>(f.pick % ap_volume_.size()));
      Trace("fault #" + std::to_string(f.index) + " " + kind + " of " + it->first);
      auto r = c->RequestFailover(it->first, "");
      AfterControllerCall();
      if (!r.ok()) Trace("switchover refused: " + r.status().ToString());
      return;
    }
    case FaultKind::kSlowNode: {
      if (live.empty()) return;
      const std::string node = live[f.pick % live.size()];
      const Duration pause(static_cast<Duration::rep>(
          f.pick % static_cast<uint64_t>(std::max<Duration::rep>(1, o_.slow_pause.count()))));
      Trace("fault #" + std::to_string(f.index) + " " + kind + " " + node + " paused for " +
            std::to_string(ToMs(pause)) + "ms");
      nodes_[node]->Pause(pause);
      return;
    }
    case FaultKind::kControllerCrash:
      if (controller_down_) return;
      Trace("fault #" + std::to_string(f.index) + " " + kind);
      ControllerDown("killed");
      return;
  }
}

void Simulation::FinalChecks() {
  controller::Controller* c = LiveController();
  if (c == nullptr) {
    Violation("no controller at the end");
    return;
  }
  for (const auto& [id, op] : c->ops()) {
    if (op.state == wire::OpState::kRunning) {
      std::string waits = op.steps.empty() ? "" : op.steps.back().note;
      // What the new primary's agent says of it.
      if (const auto* f = std::get_if<controller::FailoverOp>(&op.part)) {
        auto n = nodes_.find(f->new_node);
        if (n != nodes_.end() && n->second) {
          for (const auto& r : n->second->supervisor().Report()) {
            if (r.instance != f->new_primary) continue;
            waits += " (its agent: " + std::string(wire::InstanceStateName(r.state)) + ", epoch " +
                     std::to_string(r.epoch) + ", run " + std::to_string(r.run) +
                     (r.message.empty() ? "" : ", " + r.message) +
                     (n->second->supervisor().fenced() ? ", node fenced" : "") +
                     "; its assignments generation " +
                     std::to_string(n->second->applied_generation()) + ", the controller's " +
                     std::to_string(c->AssignmentsGeneration(f->new_node)) + ")";
          }
        }
      }
      Violation("operation " + id + " of " + op.role + " still at step " + op.step +
                " after the settle time: " + waits);
    }
  }
  for (const auto& gw : gateways_) {
    for (const auto& [role, volume] : ap_volume_) {
      if (gw->Route(role, clock_.Now(), client_random_) == nullptr) {
        Violation("gateway " + gw->id() + " has no primary for " + role +
                  " after the settle time (routes version " + std::to_string(gw->version()) + ")");
      }
    }
  }
  for (const auto& [role, keys] : kv_.acked()) {
    const KvModel::Data* data = kv_.VolumeData(ap_volume_[role]);
    for (const auto& [key, value] : keys) {
      uint64_t have = 0;
      if (data != nullptr) {
        auto it = data->find(key);
        if (it != data->end()) have = it->second;
      }
      if (have < value) {
        Violation("acknowledged write lost: volume of " + role + " key " + std::to_string(key) +
                  " holds " + std::to_string(have) + ", " + std::to_string(value) +
                  " was acknowledged");
      }
    }
  }
}

SimResult Simulation::Run() {
  const auto wall_start = std::chrono::steady_clock::now();
  auto sqlite = store::SqliteStore::Open(":memory:", clock_);
  if (!sqlite.ok()) {
    Violation("store: " + sqlite.status().ToString());
    return result_;
  }
  sqlite_ = std::move(*sqlite);
  store_ = std::make_unique<testing::FaultStore>(*sqlite_, Random(o_.seed + 3));
  for (const auto& r : manifest_.roles) {
    if (r.mode == manifest::RoleMode::kActivePassive) ap_volume_[r.name] = r.volume;
  }
  StartController();
  for (const auto& n : manifest_.nodes) StartNode(n.name);
  for (int i = 0; i < o_.gateways; ++i) {
    gateways_.push_back(std::make_unique<SimGateway>("gw" + std::to_string(i)));
    SimGateway& gw = *gateways_.back();
    GatewayHeartbeat(gw);
    FetchRoutes(gw);
  }
  events_.After(milliseconds(20), [this] { ControllerTick(); });
  // The model client starts once the cluster had time to come up.
  for (const auto& [role, volume] : ap_volume_) {
    if (client_roles_.size() >= static_cast<size_t>(o_.clients)) break;
    if (volume.empty()) continue;
    client_roles_.push_back(role);
    events_.After(std::chrono::seconds(5), [this, role = role] { ClientWrite(role, 0); });
  }
  for (const Fault& f : FaultSchedule(o_)) {
    if (!o_.only.empty() && !o_.only.count(f.index)) continue;
    events_.After(f.at, [this, f] { Strike(f); });
  }
  const TimePoint start = clock_.Now();
  const TimePoint faults_end = start + o_.duration;
  events_.At(faults_end, [this] {
    Trace("faults over: healing, settling");
    net_.HealAll();
    store_->SetDown(false);
  });
  const TimePoint end = faults_end + o_.settle;
  while (!Done() && events_.RunNext(end)) {
  }
  clock_.Set(end);
  if (!Done()) FinalChecks();
  result_.events = events_.executed();
  result_.messages = net_.sent();
  result_.messages_lost = net_.lost();
  result_.detection_ms = Summarize(detection_);
  result_.failover_ms = Summarize(failover_);
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash_.value()));
  result_.trace_hash = hex;
  result_.trace_tail.assign(trace_.begin(), trace_.end());
  result_.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return result_;
}

}  // namespace

const char* FaultKindName(FaultKind k) { return kFaultNames[static_cast<int>(k)]; }

std::optional<FaultKind> FaultKindFromName(const std::string& name) {
  for (int i = 0; i < static_cast<int>(std::size(kFaultNames)); ++i) {
    if (name == kFaultNames[i]) return static_cast<FaultKind>(i);
  }
  return std::nullopt;
}

std::vector<Fault> FaultSchedule(const SimOptions& o) {
  std::vector<Fault> out;
  if (o.faults.empty() || o.fault_interval <= Duration::zero()) return out;
  Random r(o.seed * 31 + 5);
  std::vector<FaultKind> kinds(o.faults.begin(), o.faults.end());
  // The first faults strike once the cluster is up (10 s), the last well before the end.
  Duration t = std::chrono::seconds(10);
  while (true) {
    // Exponential gaps with the given mean.
    double u = std::max(1e-9, r.UniformDouble());
    t += std::chrono::duration_cast<Duration>(-std::log(u) * o.fault_interval);
    if (t >= o.duration) break;
    Fault f;
    f.index = static_cast<int>(out.size());
    f.at = t;
    f.kind = kinds[r.Uniform(kinds.size())];
    f.pick = r.Next();
    f.lasts = milliseconds(2000 + static_cast<int64_t>(r.Uniform(8000)));
    if (f.kind == FaultKind::kStoreOutage) f.lasts = milliseconds(500 + r.Uniform(3000));
    out.push_back(f);
  }
  return out;
}

SimResult RunSimulation(const SimOptions& options) {
  Simulation sim(options);
  return sim.Run();
}

std::set<int> ShrinkFaults(const SimOptions& options, const SimResult& failed, int max_runs) {
  std::set<int> kept(failed.faults_struck.begin(), failed.faults_struck.end());
  int runs = 0;
  for (int index : failed.faults_struck) {
    if (runs >= max_runs) break;
    std::set<int> trial = kept;
    trial.erase(index);
    if (trial.empty()) continue;  // the empty set would mean "all faults"
    SimOptions o = options;
    o.only = trial;
    ++runs;
    if (RunSimulation(o).violation_count > 0) kept = trial;
  }
  return kept;
}

nlohmann::json SimResult::ToJson(const SimOptions& o) const {
  nlohmann::json j;
  j["seed"] = o.seed;
  j["nodes"] = o.nodes;
  j["simulated_s"] = ToMs(o.duration + o.settle) / 1000.0;
  j["events"] = events;
  j["faults"] = faults;
  j["violations"] = violation_count;
  if (!violations.empty()) j["first_violation"] = violations.front();
  j["detection_ms"] = hafab::sim::ToJson(detection_ms);
  j["failover_ms"] = hafab::sim::ToJson(failover_ms);
  j["failovers"] = failovers;
  j["false_failovers"] = false_failovers;
  j["detector"] = o.ring ? "ring" : "star";
  j["false_downs"] = false_downs;
  if (o.ring) {
    j["false_suspicions"] = false_suspicions;
    j["isolations"] = isolations;
  }
  const double seconds = ToMs(o.duration + o.settle) / 1000.0;
  j["node_messages_per_node_s"] = static_cast<double>(node_messages) / o.nodes / seconds;
  j["controller_heartbeats_per_s"] = static_cast<double>(controller_heartbeats) / seconds;
  j["controller_restarts"] = controller_restarts;
  j["messages"] = messages;
  j["messages_lost"] = messages_lost;
  j["writes_acked"] = writes_acked;
  j["reads_checked"] = reads_checked;
  j["trace_hash"] = trace_hash;
  j["wall_s"] = wall_seconds;
  return j;
}

}  // namespace hafab::sim
