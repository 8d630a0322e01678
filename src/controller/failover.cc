// Failover of an active-passive role: DESIGN.md's nine steps, in order, each idempotent
// (running a step twice leaves the same state), each confirmed before the next starts.
//   detect -> fence -> stop -> detach -> promote -> wait_detached -> attach -> start -> route
#include <spdlog/spdlog.h>

#include "controller/controller.h"
#include "controller/placement.h"

namespace hafab::controller {

void Controller::StartFailover(RoleRecord& role, const std::string& reason, bool planned,
                               const std::string& to) {
  if (ActiveOp(role.spec.name) != nullptr) return;
  Operation op;
  op.id = "op-" + std::to_string(NextSeq());
  op.role = role.spec.name;
  op.reason = reason;
  op.failover().planned = planned;
  op.failover().to = to;
  op.owner = id_;
  op.failover().old_primary = role.primary;
  if (const InstanceRecord* old = FindInstance(role.primary)) op.failover().old_node = old->node;
  op.failover().volume = role.spec.volume;
  op.failover().epoch = role.epoch + 1;
  op.step = kFailoverSteps[0];
  op.created_ms = WallMs(clock_);
  PutOp(op);
  Emit("failover-started",
       op.role + " (" + op.id + "): " + (planned ? "planned switchover" : "failover") +
           " of primary " +
           (op.failover().old_primary.empty() ? "(none)" : op.failover().old_primary) +
           (op.failover().old_node.empty() ? "" : " on " + op.failover().old_node) + ": " + reason,
       {{"op", op.id}, {"role", op.role}});
  AdvanceOp(ops_[op.id]);
}

// The failover procedure (procedure.h): the nine steps, run by the journal.
class Controller::FailoverProcedure : public Procedure {
 public:
  explicit FailoverProcedure(Controller& c) : c_(c) {}

  StepResult Run(Operation& op) override {
    if (c_.RoleRemoved(op)) return StepResult::kAbort;
    const std::string& s = op.step;
    if (s == "detect") return StepResult::kDone;  // the trigger is recorded in the operation
    if (s == "fence") return c_.StepFence(op);
    if (s == "stop") return c_.StepStop(op);
    if (s == "detach") return c_.StepDetach(op);
    if (s == "promote") return c_.StepPromote(op);
    if (s == "wait_detached") return c_.StepWaitDetached(op);
    if (s == "attach") return c_.StepAttach(op);
    if (s == "start") return c_.StepStart(op);
    if (s == "route") return c_.StepRoute(op);
    op.error = "unknown step " + s;
    return StepResult::kAbort;
  }

  bool Advance(Operation& op) override {
    constexpr size_t n = std::size(kFailoverSteps);
    for (size_t i = 0; i + 1 < n; ++i) {
      if (op.step == kFailoverSteps[i]) {
        op.step = kFailoverSteps[i + 1];
        return true;
      }
    }
    return false;  // route was the last
  }

  size_t StepsPerPass(const Operation&) const override { return std::size(kFailoverSteps); }

  JournalEvent Finished(const Operation& op, const std::string& timeline) const override {
    if (op.state == wire::OpState::kDone) {
      return {"failover-done",
              op.role + " (" + op.id + "): " + op.failover().new_primary + " on " +
                  op.failover().new_node + " is primary at epoch " +
                  std::to_string(op.failover().epoch) + " after " +
                  std::to_string(op.finished_ms - op.created_ms) + "ms [" + timeline + "]",
              {{"op", op.id}, {"role", op.role}, {"node", op.failover().new_node}}};
    }
    const std::string state(wire::OpStateName(op.state));
    return {"failover-" + state,
            op.role + " (" + op.id + ") " + state + " at step " + op.step + ": " + op.error,
            {{"op", op.id}, {"role", op.role}}};
  }

  void Forget(const Operation& op) override { c_.fence_version_.erase(op.id); }

 private:
  Controller& c_;
};

std::unique_ptr<Procedure> Controller::MakeFailoverProcedure() {
  return std::make_unique<FailoverProcedure>(*this);
}

// Bump the epoch and take the primary out of the routing table; done when every live
// gateway has acknowledged that table (or its lease expired: then it stopped routing
// active-passive roles by itself).
//
// A planned switchover keeps the epoch until promote instead: its primary is alive and hands
// its connections over (the drain contract) — the routes list it `handing_over` at the old
// epoch through fence and stop, so the gateways give it no new connection but keep the open
// ones, which its agent's SIGTERM in stop makes it close after their next response. The
// epoch still moves before the new primary starts (promote), and only once the old one has
// stopped (stop).
Controller::StepResult Controller::StepFence(Operation& op) {
  RoleRecord r = roles_.at(op.role);
  if (!op.failover().planned) r.epoch = std::max(r.epoch, op.failover().epoch);
  r.routed = false;
  PutRole(r);
  if (provider_ != nullptr && !op.failover().old_node.empty() &&
      warned_.insert("endpoint-removed/" + op.id).second) {
    Status st = provider_->RemoveEndpoint(op.role, op.failover().old_node);
    if (!st.ok())
      spdlog::warn("RemoveEndpoint {} {}: {}", op.role, op.failover().old_node, st.ToString());
  }
  if (!Commit().ok()) return StepResult::kWait;
  Publish();
  return GatewaysAcked(op) ? StepResult::kDone : StepResult::kWait;
}

bool Controller::GatewaysAcked(Operation& op) {
  int64_t& version = fence_version_[op.id];
  if (version == 0) version = routes_version_;
  const std::string behind = GatewayBehind(version);
  if (behind.empty()) return true;
  journal_.Note(op, "waiting for gateway " + behind + " to acknowledge routes version " +
                        std::to_string(version));
  return false;
}

bool Controller::AssignmentsTaken(const std::string& node) const {
  const NodeObservation* obs = Observation(node);
  auto g = node_generation_.find(node);
  return obs != nullptr &&
         obs->assignments_generation >= (g == node_generation_.end() ? 0 : g->second);
}

std::string Controller::GatewayBehind(int64_t version) const {
  for (const auto& gw : gateway_leases_.Holders()) {
    auto acked = gateway_acked_.find(gw);
    if (acked == gateway_acked_.end() || acked->second < version) return gw;
  }
  return "";
}

int64_t Controller::OpenConnections(const std::string& instance) const {
  int64_t n = 0;
  for (const auto& gw : gateway_leases_.Holders()) {
    auto g = gateway_active_.find(gw);
    if (g == gateway_active_.end()) continue;
    auto c = g->second.find(instance);
    if (c != g->second.end()) n += static_cast<int64_t>(c->second);
  }
  return n;
}

// Stop the old primary: its agent stops it (run: false), or, when its node is silent, the
// node's lease plus the fence margin passes (its agent stops primaries it cannot renew).
Controller::StepResult Controller::StepStop(Operation& op) {
  InstanceRecord* old = FindInstance(op.failover().old_primary);
  if (old == nullptr || opts_.unsafe_skip_stop_wait) return StepResult::kDone;
  if (old->run) {
    InstanceRecord r = *old;
    r.run = false;
    PutInstance(r);
  }
  const std::string node = old->node;
  if (!node_leases_.Live(node)) {
    if (SilentNodeFenced(op, node)) return StepResult::kDone;
    journal_.Note(op, "node " + node + " is silent: waiting for its lease plus the fence margin");
    return StepResult::kWait;
  }
  Publish();
  const NodeObservation* obs = Observation(node);
  if (obs == nullptr) {
    // A controller that just started has not heard this node yet: what it runs is unknown.
    journal_.Note(op, "waiting for the first heartbeat of node " + node);
    return StepResult::kWait;
  }
  const ObservedInstance* o = Observed(*old);
  if (o == nullptr || (!RunningState(o->state) &&
                       (o->state != wire::InstanceState::kBackoff || AssignmentsTaken(node)))) {
    return StepResult::kDone;
  }
  journal_.Note(op, "waiting for node " + node + " to stop " + old->name);
  return StepResult::kWait;
}

// Take the volume away from the old node: its assignment drops the volume (the agent
// detaches asynchronously), or, for a silent node, the provider force-detaches it.
Controller::StepResult Controller::StepDetach(Operation& op) {
  if (InstanceRecord* old = FindInstance(op.failover().old_primary);
      old != nullptr && old->volume) {
    InstanceRecord r = *old;
    r.volume = false;
    PutInstance(r);
  }
  if (op.failover().volume.empty() || op.failover().old_node.empty()) return StepResult::kDone;
  if (!node_leases_.Live(op.failover().old_node) && provider_ != nullptr) {
    if (!SilentNodeFenced(op, op.failover().old_node)) {
      journal_.Note(op,
                    "node " + op.failover().old_node + " is silent: waiting before force-detach");
      return StepResult::kWait;
    }
    Status st = provider_->ForceDetach(op.failover().volume, op.failover().old_node);
    if (!st.ok()) {
      // Unavailable: the provider is still at it (BackgroundProvider), or cannot now.
      journal_.Note(op, st.code() == StatusCode::kUnavailable
                            ? st.message()
                            : "force-detach of " + op.failover().volume + " from " +
                                  op.failover().old_node + " failed: " + st.ToString());
      return StepResult::kWait;
    }
  }
  return StepResult::kDone;
}

std::string Controller::ChooseNewPrimary(const Operation& op) {
  std::string old_fd;
  if (auto ni = nodes_.find(op.failover().old_node); ni != nodes_.end())
    old_fd = ni->second.fault_domain;
  std::vector<StandbyCandidate> standbys;
  for (const auto& [name, inst] : instances_) {
    if (inst.role != op.role || name == op.failover().old_primary) continue;
    auto ni = nodes_.find(inst.node);
    if (ni == nodes_.end() || ni->second.down || ni->second.drained || !NodeLive(inst.node)) {
      continue;
    }
    if (op.failover().planned && !op.failover().to.empty() && inst.node != op.failover().to)
      continue;
    const ObservedInstance* o = Observed(inst);
    if (o != nullptr && o->state == wire::InstanceState::kFailed) continue;
    standbys.push_back({name, ni->second.fault_domain, o != nullptr, inst.ordinal});
  }
  std::string best = PickStandby(standbys, old_fd);
  if (!best.empty()) return best;
  // No standby: move the old primary's instance (or any instance) to a node with room,
  // or, failing that, restart it where it is if its node is healthy.
  const InstanceRecord* mover = FindInstance(op.failover().old_primary);
  if (mover == nullptr) {
    for (const auto& [name, inst] : instances_) {
      if (inst.role == op.role) {
        mover = &inst;
        break;
      }
    }
  }
  if (mover == nullptr) return "";
  std::optional<std::string> node;
  if (!op.failover().to.empty()) {
    if (NodeLive(op.failover().to) && !NodeDown(op.failover().to)) node = op.failover().to;
  } else {
    node = Place(op.role, mover->name, {mover->node});
  }
  if (!node) {
    auto ni = nodes_.find(mover->node);
    if (ni != nodes_.end() && !ni->second.drained && !NodeDown(mover->node)) return mover->name;
    return "";
  }
  InstanceRecord r = *mover;
  std::string from = r.node;
  r.node = *node;
  r.port = PortFor(roles_.at(op.role).spec, *node, r.name);
  r.run = false;
  r.volume = false;
  restarts_.erase(r.name);
  PutInstance(r);
  Emit("relocated",
       "instance " + r.name + " relocated from " + from + " to " + r.node +
           " to become primary (no standby available)",
       {{"role", op.role}, {"instance", r.name}, {"node", r.node}});
  return r.name;
}

// Pick the new primary; every instance of the role (the old primary included: it rejoins
// as a standby) gets the new epoch, stopped and without the volume until the next steps.
Controller::StepResult Controller::StepPromote(Operation& op) {
  std::string chosen = op.failover().new_primary;
  if (chosen.empty() || !instances_.count(chosen)) chosen = ChooseNewPrimary(op);
  if (chosen.empty()) {
    journal_.Note(op, "no healthy node for a new primary of " + op.role + "; waiting");
    return StepResult::kWait;
  }
  const InstanceRecord& np = instances_.at(chosen);
  if (op.failover().new_primary != chosen || op.failover().new_node != np.node) {
    op.failover().new_primary = chosen;
    op.failover().new_node = np.node;
    PutOp(op);
  }
  RoleRecord r = roles_.at(op.role);
  r.primary = chosen;
  r.epoch = std::max(r.epoch, op.failover().epoch);
  r.routed = false;
  PutRole(r);
  for (const auto& [name, inst] : instances_) {
    if (inst.role != op.role) continue;
    InstanceRecord c = inst;
    c.epoch = op.failover().epoch;
    c.run = false;
    c.volume = false;
    PutInstance(c);
    restarts_.erase(name);
  }
  return StepResult::kDone;
}

// Never attach a volume that is still attached elsewhere (the seed's warning): wait until
// the provider shows it attached nowhere (or already to the new node, on a resume).
Controller::StepResult Controller::StepWaitDetached(Operation& op) {
  if (op.failover().volume.empty()) return StepResult::kDone;
  if (provider_ != nullptr) {
    auto d = provider_->Describe(op.failover().volume);
    if (!d.ok()) {
      if (d.status().code() == StatusCode::kNotFound) return StepResult::kDone;
      journal_.Note(op, "describe " + op.failover().volume + ": " + d.status().ToString());
      return StepResult::kWait;
    }
    if (d->node.empty() || d->node == op.failover().new_node) return StepResult::kDone;
    if (SilentNodeFenced(op, d->node)) {
      Status st = provider_->ForceDetach(op.failover().volume, d->node);
      if (!st.ok() && st.code() != StatusCode::kUnavailable) {
        spdlog::warn("ForceDetach {} {}: {}", op.failover().volume, d->node, st.ToString());
      }
    }
    journal_.Note(op,
                  "waiting for volume " + op.failover().volume + " to detach from node " + d->node);
    return StepResult::kWait;
  }
  for (const auto& [node, obs] : observed_) {
    if (node == op.failover().new_node || !node_leases_.Live(node)) continue;
    auto v = obs.volumes.find(op.failover().volume);
    if (v != obs.volumes.end() && (v->second.state == wire::VolumeState::kAttached ||
                                   v->second.state == wire::VolumeState::kDetaching)) {
      journal_.Note(op,
                    "waiting for volume " + op.failover().volume + " to detach from node " + node);
      return StepResult::kWait;
    }
  }
  return StepResult::kDone;
}

InstanceRecord* Controller::AssignNewPrimary(Operation& op, bool run) {
  InstanceRecord* np = FindInstance(op.failover().new_primary);
  if (np == nullptr || NodeDeclaredDown(np->node)) {
    op.error = "new primary " + op.failover().new_primary + " or its node is gone";
    return nullptr;
  }
  InstanceRecord r = *np;
  r.volume = !op.failover().volume.empty();
  r.run = run;
  r.epoch = op.failover().epoch;
  PutInstance(r);  // updates *np in place
  return np;
}

Controller::StepResult Controller::StepAttach(Operation& op) {
  InstanceRecord* np = AssignNewPrimary(op, /*run=*/false);
  if (np == nullptr) return StepResult::kAbort;
  if (op.failover().volume.empty()) return StepResult::kDone;
  const NodeObservation* obs = Observation(np->node);
  if (obs != nullptr) {
    auto v = obs->volumes.find(op.failover().volume);
    if (v != obs->volumes.end() && v->second.state == wire::VolumeState::kAttached) {
      return StepResult::kDone;
    }
  }
  journal_.Note(op, "waiting for node " + np->node + " to attach volume " + op.failover().volume);
  return StepResult::kWait;
}

Controller::StepResult Controller::StepStart(Operation& op) {
  InstanceRecord* np = AssignNewPrimary(op, /*run=*/true);
  if (np == nullptr) return StepResult::kAbort;
  const ObservedInstance* o = Observed(*np);
  bool current = o != nullptr && (o->epoch == 0 || o->epoch >= op.failover().epoch);
  if (current && o->state == wire::InstanceState::kFailed) {
    op.error = "new primary " + np->name + " failed to start: " + o->last_exit;
    return StepResult::kAbort;
  }
  if (current && o->state == wire::InstanceState::kRunning &&
      ProbesPass(roles_.at(op.role).spec.probes, *o)) {
    return StepResult::kDone;
  }
  journal_.Note(op, "waiting for " + np->name + " on " + np->node + " to start and be ready");
  return StepResult::kWait;
}

Controller::StepResult Controller::StepRoute(Operation& op) {
  RoleRecord r = roles_.at(op.role);
  r.primary = op.failover().new_primary;
  r.epoch = std::max(r.epoch, op.failover().epoch);
  r.routed = true;
  PutRole(r);
  if (provider_ != nullptr && warned_.insert("endpoint-added/" + op.id).second) {
    Status st = provider_->AddEndpoint(op.role, op.failover().new_node);
    if (!st.ok())
      spdlog::warn("AddEndpoint {} {}: {}", op.role, op.failover().new_node, st.ToString());
  }
  return StepResult::kDone;
}

}  // namespace hafab::controller
