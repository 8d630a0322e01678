#include "controller/failover_procedure.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "controller/placement.h"

namespace hafab::controller {

Step FailoverProcedure::Run(Operation& op, const OpView& view, OpWrites& out) {
  if (view.Role(op.role) == nullptr) return Step::Abort("role " + op.role + " was removed");
  const std::string& s = op.step;
  if (s == "detect") return Step::Done();  // the trigger is recorded in the operation
  if (s == "fence") return Fence(op, view, out);
  if (s == "stop") return Stop(op, view, out);
  if (s == "detach") return Detach(op, view, out);
  if (s == "promote") return Promote(op, view, out);
  if (s == "wait_detached") return WaitDetached(op, view, out);
  if (s == "attach") return Attach(op, view, out);
  if (s == "start") return Start(op, view, out);
  if (s == "route") return Route(op, view, out);
  return Step::Abort("unknown step " + s);
}

bool FailoverProcedure::Advance(Operation& op) {
  constexpr size_t n = std::size(kFailoverSteps);
  for (size_t i = 0; i + 1 < n; ++i) {
    if (op.step == kFailoverSteps[i]) {
      op.step = kFailoverSteps[i + 1];
      return true;
    }
  }
  return false;  // route was the last
}

JournalEvent FailoverProcedure::Started(const Operation& op) const {
  const FailoverOp& f = op.failover();
  return {"failover-started",
          op.role + " (" + op.id + "): " + (f.planned ? "planned switchover" : "failover") +
              " of primary " + (f.old_primary.empty() ? "(none)" : f.old_primary) +
              (f.old_node.empty() ? "" : " on " + f.old_node) + ": " + op.reason,
          {{"op", op.id}, {"role", op.role}}};
}

JournalEvent FailoverProcedure::Finished(const Operation& op, const std::string& timeline) const {
  const FailoverOp& f = op.failover();
  if (op.state == wire::OpState::kDone) {
    return {"failover-done",
            op.role + " (" + op.id + "): " + f.new_primary + " on " + f.new_node +
                " is primary at epoch " + std::to_string(f.epoch) + " after " +
                std::to_string(op.finished_ms - op.created_ms) + "ms [" + timeline + "]",
            {{"op", op.id}, {"role", op.role}, {"node", f.new_node}}};
  }
  const std::string state(wire::OpStateName(op.state));
  return {"failover-" + state,
          op.role + " (" + op.id + ") " + state + " at step " + op.step + ": " + op.error,
          {{"op", op.id}, {"role", op.role}}};
}

void FailoverProcedure::Forget(const Operation& op) {
  routes_ack_.Forget(op.id);
  endpoint_calls_.erase(op.id);
}

// Bump the epoch and take the primary out of the routing table; done when every live
// gateway has acknowledged the table that says so (or its lease expired: then it stopped
// routing active-passive roles by itself).
//
// A planned switchover keeps the epoch until promote instead: its primary is alive and hands
// its connections over (the drain contract) — the routes list it `handing_over` at the old
// epoch through fence and stop, so the gateways give it no new connection but keep the open
// ones, which its agent's SIGTERM in stop makes it close after their next response. The
// epoch still moves before the new primary starts (promote), and only once the old one has
// stopped (stop).
Step FailoverProcedure::Fence(Operation& op, const OpView& view, OpWrites& out) {
  const FailoverOp& f = op.failover();
  RoleRecord r = *view.Role(op.role);
  if (!f.planned) r.epoch = std::max(r.epoch, f.epoch);
  r.routed = false;
  const bool changed = out.PutRole(r);
  if (provider_ != nullptr && !f.old_node.empty() &&
      endpoint_calls_[op.id].insert("removed").second) {
    Status st = provider_->RemoveEndpoint(op.role, f.old_node);
    if (!st.ok()) spdlog::warn("RemoveEndpoint {} {}: {}", op.role, f.old_node, st.ToString());
  }
  if (changed) return Step::Publish();
  return routes_ack_.Check(op, view);
}

bool FailoverProcedure::SilentNodeFenced(Operation& op, const OpView& view, OpWrites& out,
                                         const std::string& node) {
  if (view.NodeLive(node)) return false;
  FailoverOp& f = op.failover();
  if (node == f.old_node && f.old_node_fenced) return true;
  if (!view.SilentPastMargin(node)) return false;
  if (node == f.old_node) {
    f.old_node_fenced = true;
    out.PutOp(op);
  }
  return true;
}

// Stop the old primary: its agent stops it (run: false), or, when its node is silent, the
// node's lease plus the fence margin passes (its agent stops primaries it cannot renew).
Step FailoverProcedure::Stop(Operation& op, const OpView& view, OpWrites& out) {
  const InstanceRecord* old = view.Instance(op.failover().old_primary);
  if (old == nullptr || unsafe_skip_stop_wait_) return Step::Done();
  bool changed = false;
  if (old->run) {
    InstanceRecord r = *old;
    r.run = false;
    changed = out.PutInstance(r);
  }
  const std::string node = old->node;
  if (!view.NodeLive(node)) {
    if (SilentNodeFenced(op, view, out, node)) return Step::Done();
    return Step::Wait("node " + node + " is silent: waiting for its lease plus the fence margin");
  }
  if (changed) return Step::Publish();  // judged against the assignments that say so
  if (view.Observation(node) == nullptr) {
    // A controller that just started has not heard this node yet: what it runs is unknown.
    return Step::Wait("waiting for the first heartbeat of node " + node);
  }
  // Only a report from the agent after it took the assignments that say run: false is
  // believed. One composed before them (or overtaken by them on the way: heartbeats are not
  // ordered) may say stopped while the agent, fenced and then handed fresh assignments, starts
  // the old primary again (hafab-sim found two primaries so).
  const ObservedInstance* o = view.Observed(*old);
  if (view.AssignmentsTaken(node) && (o == nullptr || !RunningState(o->state))) {
    return Step::Done();
  }
  return Step::Wait("waiting for node " + node + " to stop " + old->name);
}

// Take the volume away from the old node: its assignment drops the volume (the agent
// detaches asynchronously), or, for a silent node, the provider force-detaches it.
Step FailoverProcedure::Detach(Operation& op, const OpView& view, OpWrites& out) {
  const FailoverOp& f = op.failover();
  if (const InstanceRecord* old = view.Instance(f.old_primary); old != nullptr && old->volume) {
    InstanceRecord r = *old;
    r.volume = false;
    out.PutInstance(r);
  }
  if (f.volume.empty() || f.old_node.empty()) return Step::Done();
  if (!view.NodeLive(f.old_node) && provider_ != nullptr) {
    if (!SilentNodeFenced(op, view, out, f.old_node)) {
      return Step::Wait("node " + f.old_node + " is silent: waiting before force-detach");
    }
    Status st = provider_->ForceDetach(f.volume, f.old_node);
    if (!st.ok()) {
      // Unavailable: the provider is still at it (BackgroundProvider), or cannot now.
      return Step::Wait(st.code() == StatusCode::kUnavailable
                            ? st.message()
                            : "force-detach of " + f.volume + " from " + f.old_node +
                                  " failed: " + st.ToString());
    }
  }
  return Step::Done();
}

std::string FailoverProcedure::ChooseNewPrimary(const Operation& op, const OpView& view,
                                                OpWrites& out) {
  const FailoverOp& f = op.failover();
  std::string old_fd;
  if (const NodeRecord* n = view.Node(f.old_node)) old_fd = n->fault_domain;
  const std::vector<const InstanceRecord*> instances = view.InstancesOf(op.role);
  std::vector<StandbyCandidate> standbys;
  for (const InstanceRecord* inst : instances) {
    if (inst->name == f.old_primary) continue;
    const NodeRecord* n = view.Node(inst->node);
    if (n == nullptr || n->down || n->drained || !view.NodeLive(inst->node)) continue;
    if (f.planned && !f.to.empty() && inst->node != f.to) continue;
    const ObservedInstance* o = view.Observed(*inst);
    if (o != nullptr && o->state == wire::InstanceState::kFailed) continue;
    standbys.push_back({inst->name, n->fault_domain, o != nullptr, inst->ordinal});
  }
  std::string best = PickStandby(standbys, old_fd);
  if (!best.empty()) return best;
  // No standby: move the old primary's instance (or any instance) to a node with room,
  // or, failing that, restart it where it is if its node is healthy.
  const InstanceRecord* mover = view.Instance(f.old_primary);
  if (mover == nullptr && !instances.empty()) mover = instances.front();
  if (mover == nullptr) return "";
  std::optional<std::string> node;
  if (!f.to.empty()) {
    if (view.NodeLive(f.to) && !view.NodeDown(f.to)) node = f.to;
  } else {
    node = view.Place(op.role, mover->name, {mover->node});
  }
  if (!node) {
    const NodeRecord* n = view.Node(mover->node);
    if (n != nullptr && !n->drained && !view.NodeDown(mover->node)) return mover->name;
    return "";
  }
  InstanceRecord r = *mover;
  std::string from = r.node;
  r.node = *node;
  r.port = view.PortFor(view.Role(op.role)->spec, *node, r.name);
  r.run = false;
  r.volume = false;
  out.ForgetRestarts(r.name);
  out.PutInstance(r);
  out.Emit("relocated",
           "instance " + r.name + " relocated from " + from + " to " + r.node +
               " to become primary (no standby available)",
           {{"role", op.role}, {"instance", r.name}, {"node", r.node}});
  return r.name;
}

// Pick the new primary; every instance of the role (the old primary included: it rejoins
// as a standby) gets the new epoch, stopped and without the volume until the next steps.
Step FailoverProcedure::Promote(Operation& op, const OpView& view, OpWrites& out) {
  FailoverOp& f = op.failover();
  std::string chosen = f.new_primary;
  if (chosen.empty() || view.Instance(chosen) == nullptr) chosen = ChooseNewPrimary(op, view, out);
  if (chosen.empty()) {
    return Step::Wait("no healthy node for a new primary of " + op.role + "; waiting");
  }
  const InstanceRecord& np = *view.Instance(chosen);
  if (f.new_primary != chosen || f.new_node != np.node) {
    f.new_primary = chosen;
    f.new_node = np.node;
    out.PutOp(op);
  }
  RoleRecord r = *view.Role(op.role);
  r.primary = chosen;
  r.epoch = std::max(r.epoch, f.epoch);
  r.routed = false;
  out.PutRole(r);
  for (const InstanceRecord* inst : view.InstancesOf(op.role)) {
    InstanceRecord c = *inst;
    c.epoch = f.epoch;
    c.run = false;
    c.volume = false;
    out.PutInstance(c);
    out.ForgetRestarts(c.name);
  }
  return Step::Done();
}

// Never attach a volume that is still attached elsewhere (the seed's warning): wait until
// the provider shows it attached nowhere (or already to the new node, on a resume).
Step FailoverProcedure::WaitDetached(Operation& op, const OpView& view, OpWrites& out) {
  const FailoverOp& f = op.failover();
  if (f.volume.empty()) return Step::Done();
  if (provider_ != nullptr) {
    auto d = provider_->Describe(f.volume);
    if (!d.ok()) {
      if (d.status().code() == StatusCode::kNotFound) return Step::Done();
      return Step::Wait("describe " + f.volume + ": " + d.status().ToString());
    }
    if (d->node.empty() || d->node == f.new_node) return Step::Done();
    if (SilentNodeFenced(op, view, out, d->node)) {
      Status st = provider_->ForceDetach(f.volume, d->node);
      if (!st.ok() && st.code() != StatusCode::kUnavailable) {
        spdlog::warn("ForceDetach {} {}: {}", f.volume, d->node, st.ToString());
      }
    }
    return Step::Wait("waiting for volume " + f.volume + " to detach from node " + d->node);
  }
  for (const auto& [node, v] : view.VolumeReports(f.volume)) {
    if (node == f.new_node || !view.NodeLive(node)) continue;
    if (v.state == wire::VolumeState::kAttached || v.state == wire::VolumeState::kDetaching) {
      return Step::Wait("waiting for volume " + f.volume + " to detach from node " + node);
    }
  }
  return Step::Done();
}

const InstanceRecord* FailoverProcedure::AssignNewPrimary(const Operation& op, const OpView& view,
                                                          OpWrites& out, bool run,
                                                          std::string* error) {
  const FailoverOp& f = op.failover();
  const InstanceRecord* np = view.Instance(f.new_primary);
  if (np == nullptr || view.NodeDeclaredDown(np->node)) {
    *error = "new primary " + f.new_primary + " or its node is gone";
    return nullptr;
  }
  InstanceRecord r = *np;
  r.volume = !f.volume.empty();
  r.run = run;
  r.epoch = f.epoch;
  out.PutInstance(r);  // *np shows it
  return np;
}

Step FailoverProcedure::Attach(Operation& op, const OpView& view, OpWrites& out) {
  std::string error;
  const InstanceRecord* np = AssignNewPrimary(op, view, out, /*run=*/false, &error);
  if (np == nullptr) return Step::Abort(error);
  const std::string& volume = op.failover().volume;
  if (volume.empty()) return Step::Done();
  if (const NodeObservation* obs = view.Observation(np->node)) {
    auto v = obs->volumes.find(volume);
    if (v != obs->volumes.end() && v->second.state == wire::VolumeState::kAttached) {
      return Step::Done();
    }
  }
  return Step::Wait("waiting for node " + np->node + " to attach volume " + volume);
}

Step FailoverProcedure::Start(Operation& op, const OpView& view, OpWrites& out) {
  std::string error;
  const InstanceRecord* np = AssignNewPrimary(op, view, out, /*run=*/true, &error);
  if (np == nullptr) return Step::Abort(error);
  const ObservedInstance* o = view.Observed(*np);
  bool current = o != nullptr && (o->epoch == 0 || o->epoch >= op.failover().epoch);
  if (current && o->state == wire::InstanceState::kFailed) {
    return Step::Abort("new primary " + np->name + " failed to start: " + o->last_exit);
  }
  if (current && o->state == wire::InstanceState::kRunning &&
      ProbesPass(view.Role(op.role)->spec.probes, *o)) {
    return Step::Done();
  }
  return Step::Wait("waiting for " + np->name + " on " + np->node + " to start and be ready");
}

Step FailoverProcedure::Route(Operation& op, const OpView& view, OpWrites& out) {
  const FailoverOp& f = op.failover();
  RoleRecord r = *view.Role(op.role);
  r.primary = f.new_primary;
  r.epoch = std::max(r.epoch, f.epoch);
  r.routed = true;
  out.PutRole(r);
  if (provider_ != nullptr && endpoint_calls_[op.id].insert("added").second) {
    Status st = provider_->AddEndpoint(op.role, f.new_node);
    if (!st.ok()) spdlog::warn("AddEndpoint {} {}: {}", op.role, f.new_node, st.ToString());
  }
  return Step::Done();
}

}  // namespace hafab::controller
