// FakeOpState: a small cluster state for the procedures' unit tests — the view they read
// (OpView), the write set they write into and the journal's store (JournalStore) — with no
// controller and no store. Records are set directly; liveness, agents' reports and gateways'
// acknowledgements too. Publish() bumps the routes version and every node's assignments
// generation when something routed changed since the last publish, as the controller does.
#pragma once

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "controller/op_journal.h"
#include "controller/op_view.h"
#include "core/clock.h"

namespace hafab::controller::testsupport {

class FakeOpState : public JournalStore, public OpView {
 public:
  explicit FakeOpState(const Clock& clock) : clock_(clock) {}

  // --- setting the scene
  void AddNode(const std::string& name, const std::string& fault_domain,
               const std::string& update_domain = "") {
    nodes[name] = {.name = name, .fault_domain = fault_domain, .update_domain = update_domain};
    live.insert(name);
  }
  // An agent's report of `inst` (the node is heard from then).
  ObservedInstance& Report(const InstanceRecord& inst, wire::InstanceState state) {
    ObservedInstance& o = observed[inst.node].instances[inst.name];
    o.instance = inst.name;
    o.role = inst.role;
    o.state = state;
    o.epoch = inst.epoch;
    return o;
  }
  // The node's agent runs the assignments last published for it.
  void TakeAssignments(const std::string& node) {
    observed[node].assignments_generation = generation;
  }
  void AckRoutes(const std::string& gateway) { acked[gateway] = routes_version; }
  void SetDurable(const Operation& op) { durable[op.id] = op; }

  // --- OpWrites / JournalStore
  bool PutRole(const RoleRecord& r) override {
    auto it = roles.find(r.spec.name);
    if (it != roles.end() && ToJson(it->second) == ToJson(r)) return false;
    roles[r.spec.name] = r;
    dirty = true;
    ++writes;
    return true;
  }
  bool PutInstance(const InstanceRecord& r) override {
    auto it = instances.find(r.name);
    if (it != instances.end() && ToJson(it->second) == ToJson(r)) return false;
    instances[r.name] = r;
    dirty = true;
    ++writes;
    return true;
  }
  void PutOp(const Operation& op) override { pending_ops[op.id] = op; }
  void Emit(const std::string& type, const std::string& message,
            std::map<std::string, std::string> fields) override {
    events.push_back({type, message, std::move(fields)});
  }
  void ForgetRestarts(const std::string& instance) override { forgot_restarts.insert(instance); }
  Status Commit() override {
    ++commits;
    if (fail_commits) {
      pending_ops.clear();
      halted = true;
      return Status::Unavailable("store down");
    }
    for (auto& [id, op] : pending_ops) durable[id] = op;
    pending_ops.clear();
    return Status::Ok();
  }
  void Publish() override {
    ++publishes;
    if (!dirty) return;
    dirty = false;
    ++routes_version;
    ++generation;
  }
  bool Halted() const override { return halted; }
  void Crash() override { halted = true; }

  // --- OpView
  const RoleRecord* Role(const std::string& name) const override { return Find(roles, name); }
  const InstanceRecord* Instance(const std::string& name) const override {
    return Find(instances, name);
  }
  std::vector<const InstanceRecord*> InstancesOf(const std::string& role) const override {
    std::vector<const InstanceRecord*> out;
    for (const auto& [name, inst] : instances) {
      if (inst.role == role) out.push_back(&inst);
    }
    return out;
  }
  const NodeRecord* Node(const std::string& name) const override { return Find(nodes, name); }
  bool NodeLive(const std::string& node) const override { return live.count(node) > 0; }
  bool NodeDeclaredDown(const std::string& node) const override {
    const NodeRecord* n = Node(node);
    return n == nullptr || n->down;
  }
  bool NodeDown(const std::string& node) const override {
    return NodeDeclaredDown(node) || !NodeLive(node);
  }
  bool SilentPastMargin(const std::string& node) const override {
    auto it = silent_since.find(node);
    return !NodeLive(node) && it != silent_since.end() &&
           clock_.Now() >= it->second + lease_ttl + fence_margin;
  }
  const NodeObservation* Observation(const std::string& node) const override {
    return Find(observed, node);
  }
  const ObservedInstance* Observed(const InstanceRecord& inst) const override {
    const NodeObservation* obs = Observation(inst.node);
    return obs == nullptr ? nullptr : Find(obs->instances, inst.name);
  }
  std::vector<std::pair<std::string, ObservedVolume>> VolumeReports(
      const std::string& volume) const override {
    std::vector<std::pair<std::string, ObservedVolume>> out;
    for (const auto& [node, obs] : observed) {
      if (const ObservedVolume* v = Find(obs.volumes, volume)) out.emplace_back(node, *v);
    }
    return out;
  }
  bool AssignmentsTaken(const std::string& node) const override {
    const NodeObservation* obs = Observation(node);
    return obs != nullptr && obs->assignments_generation >= generation;
  }
  bool RestartsExceeded(const InstanceRecord& inst) const override {
    return restarts_exceeded.count(inst.name) > 0;
  }
  int64_t RoutesVersion() const override { return routes_version; }
  std::string GatewayBehind(int64_t version) const override {
    for (const auto& gw : gateways) {
      auto it = acked.find(gw);
      if (it == acked.end() || it->second < version) return gw;
    }
    return "";
  }
  std::optional<std::string> Place(const std::string&, const std::string&,
                                   const std::set<std::string>& exclude) const override {
    for (const auto& [name, n] : nodes) {
      if (!exclude.count(name) && !NodeDown(name) && !n.drained) return name;
    }
    return std::nullopt;
  }
  int PortFor(const manifest::Role& spec, const std::string&, const std::string&) const override {
    return spec.port;
  }
  Duration StepElapsed(const Operation& op) const override {
    return journal == nullptr ? Duration{} : journal->StepElapsed(op);
  }

  std::vector<std::string> EventTypes() const {
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e.type);
    return out;
  }

  // Desired state.
  std::map<std::string, RoleRecord> roles;
  std::map<std::string, InstanceRecord> instances;
  std::map<std::string, NodeRecord> nodes;
  // Observed state.
  std::set<std::string> live;                       // nodes holding a lease
  std::map<std::string, TimePoint> silent_since;    // node -> its last heartbeat
  std::map<std::string, NodeObservation> observed;  // heard nodes
  std::set<std::string> restarts_exceeded;
  std::set<std::string> gateways;        // live gateways
  std::map<std::string, int64_t> acked;  // gateway -> routes version acknowledged
  Duration lease_ttl = std::chrono::milliseconds(1500);
  Duration fence_margin = std::chrono::milliseconds(500);
  // Published.
  int64_t routes_version = 1;
  int64_t generation = 1;
  bool dirty = false;
  // What was written and committed.
  std::map<std::string, Operation> pending_ops;
  std::map<std::string, Operation> durable;
  std::vector<JournalEvent> events;
  std::set<std::string> forgot_restarts;
  int writes = 0;
  int commits = 0;
  int publishes = 0;
  bool fail_commits = false;
  bool halted = false;
  const OpJournal* journal = nullptr;  // StepElapsed's, when set

 private:
  template <typename M>
  static const typename M::mapped_type* Find(const M& m, const std::string& key) {
    auto it = m.find(key);
    return it == m.end() ? nullptr : &it->second;
  }

  const Clock& clock_;
};

}  // namespace hafab::controller::testsupport
