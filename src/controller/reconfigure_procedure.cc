#include "controller/reconfigure_procedure.h"

#include <algorithm>
#include <vector>

namespace hafab::controller {

namespace {

std::string PositionText(const wire::Position& p) {
  return std::to_string(p.epoch) + ":" + std::to_string(p.index);
}

}  // namespace

std::vector<const InstanceRecord*> ReconfigureProcedure::Voters(const OpView& view,
                                                                const std::string& role) {
  std::vector<const InstanceRecord*> out;
  for (const InstanceRecord* inst : view.InstancesOf(role)) {
    if (inst->replica == wire::ReplicaRole::kPrimary ||
        inst->replica == wire::ReplicaRole::kSecondary) {
      out.push_back(inst);
    }
  }
  return out;
}

int ReconfigureProcedure::Needed(const RoleRecord& role, int voters) {
  return std::max(1, voters - role.spec.replication.QuorumOf(role.spec.instances) + 1);
}

Step ReconfigureProcedure::Run(Operation& op, const OpView& view, OpWrites& out) {
  if (view.Role(op.role) == nullptr) return Step::Abort("role " + op.role + " was removed");
  const std::string& s = op.step;
  if (s == "detect") return Step::Done();  // the trigger is recorded in the operation
  if (s == "drain") return Drain(op, view, out);
  if (s == "fence") return Fence(op, view, out);
  if (s == "collect") return Collect(op, view, out);
  if (s == "promote") return Promote(op, view, out);
  if (s == "confirm") return Confirm(op, view, out);
  if (s == "route") return Route(op, view, out);
  return Step::Abort("unknown step " + s);
}

bool ReconfigureProcedure::Advance(Operation& op) {
  constexpr size_t n = std::size(kReconfigureSteps);
  for (size_t i = 0; i + 1 < n; ++i) {
    if (op.step == kReconfigureSteps[i]) {
      op.step = kReconfigureSteps[i + 1];
      return true;
    }
  }
  return false;  // route was the last
}

JournalEvent ReconfigureProcedure::Started(const Operation& op) const {
  const ReconfigureOp& r = op.reconfigure();
  return {"reconfigure-started",
          op.role + " (" + op.id + "): " + (r.planned ? "planned switchover" : "reconfiguration") +
              " from primary " + (r.old_primary.empty() ? "(none)" : r.old_primary) +
              (r.old_node.empty() ? "" : " on " + r.old_node) + " at epoch " +
              std::to_string(r.epoch) + ": " + op.reason,
          {{"op", op.id}, {"role", op.role}}};
}

JournalEvent ReconfigureProcedure::Finished(const Operation& op,
                                            const std::string& timeline) const {
  const ReconfigureOp& r = op.reconfigure();
  if (op.state == wire::OpState::kDone) {
    auto p = r.positions.find(r.new_primary);
    return {"reconfigure-done",
            op.role + " (" + op.id + "): " + r.new_primary + " on " + r.new_node +
                " is primary at epoch " + std::to_string(r.epoch) +
                (p == r.positions.end() ? "" : " from position " + PositionText(p->second)) +
                " after " + std::to_string(op.finished_ms - op.created_ms) + "ms [" + timeline +
                "]",
            {{"op", op.id}, {"role", op.role}, {"node", r.new_node}}};
  }
  const std::string state(wire::OpStateName(op.state));
  return {"reconfigure-" + state,
          op.role + " (" + op.id + ") " + state + " at step " + op.step + ": " + op.error,
          {{"op", op.id}, {"role", op.role}}};
}

void ReconfigureProcedure::Forget(const Operation& op) {
  routes_ack_.Forget(op.id);
  quorum_lost_told_.erase(op.id);
}

// A planned switchover to `to`: unrouted (every live gateway has taken it), the old primary
// takes no new write; done once `to` reports the old primary's position, or after drain_for_.
Step ReconfigureProcedure::Drain(Operation& op, const OpView& view, OpWrites& out) {
  const ReconfigureOp& rc = op.reconfigure();
  const InstanceRecord* old = view.Instance(rc.old_primary);
  const InstanceRecord* target = view.Instance(rc.to);
  if (!rc.planned || old == nullptr || target == nullptr) return Step::Done();
  RoleRecord r = *view.Role(op.role);
  r.routed = false;
  if (out.PutRole(r)) return Step::Publish();
  if (Step acked = routes_ack_.Check(op, view); acked.result != StepResult::kDone) return acked;
  const ObservedInstance* from = view.Observed(*old);
  const ObservedInstance* to = view.Observed(*target);
  if (from == nullptr || !from->replica || to == nullptr || !to->replica ||
      to->replica->position >= from->replica->position ||
      view.StepElapsed(op) >= drain_for_) {  // then promote takes the furthest
    routes_ack_.Forget(op.id);               // fence waits for a version of its own
    return Step::Done();
  }
  return Step::Wait("waiting for " + rc.to + " (" + PositionText(to->replica->position) +
                    ") to catch up with " + rc.old_primary + " (" +
                    PositionText(from->replica->position) + ")");
}

// The new epoch, with no primary: the old primary's record becomes a secondary's, and the role
// leaves the routing table; done when every live gateway has acknowledged that.
Step ReconfigureProcedure::Fence(Operation& op, const OpView& view, OpWrites& out) {
  const ReconfigureOp& rc = op.reconfigure();
  RoleRecord r = *view.Role(op.role);
  r.epoch = std::max(r.epoch, rc.epoch);
  r.primary.clear();
  r.routed = false;
  bool changed = out.PutRole(r);
  for (const InstanceRecord* inst : view.InstancesOf(op.role)) {
    if (inst->replica != wire::ReplicaRole::kPrimary) continue;
    InstanceRecord demoted = *inst;
    demoted.replica = wire::ReplicaRole::kSecondary;
    changed |= out.PutInstance(demoted);
  }
  if (changed) return Step::Publish();
  return routes_ack_.Check(op, view);
}

// The voters that took the epoch, and where their logs end; enough of them to overlap every
// write quorum, or the operator's word that data may be lost.
Step ReconfigureProcedure::Collect(Operation& op, const OpView& view, OpWrites& out) {
  ReconfigureOp& rc = op.reconfigure();
  const RoleRecord& role = *view.Role(op.role);
  const std::vector<const InstanceRecord*> voters = Voters(view, op.role);
  std::map<std::string, wire::Position> positions;
  std::string answered, missing;
  for (const InstanceRecord* inst : voters) {
    const ObservedInstance* o = view.NodeLive(inst->node) ? view.Observed(*inst) : nullptr;
    if (o != nullptr && o->replica && o->replica->epoch == rc.epoch) {
      positions[inst->name] = o->replica->position;
      answered +=
          (answered.empty() ? "" : ", ") + inst->name + " at " + PositionText(o->replica->position);
    } else {
      missing += (missing.empty() ? "" : ", ") + inst->name;
    }
  }
  if (positions != rc.positions) {
    rc.positions = positions;
    out.PutOp(op);
  }
  const int needed = Needed(role, static_cast<int>(voters.size()));
  if (static_cast<int>(positions.size()) >= needed) {
    // A planned switchover's target (caught up by drain) can be promoted only if it is among
    // them: enough others may answer first. Wait for it, as long as drain would.
    const bool target_live = std::any_of(voters.begin(), voters.end(), [&](const auto* inst) {
      return inst->name == rc.to && view.NodeLive(inst->node);
    });
    if (rc.planned && target_live && !positions.count(rc.to) && view.StepElapsed(op) < drain_for_) {
      return Step::Wait("waiting for " + rc.to + ", the switchover's target, to take epoch " +
                        std::to_string(rc.epoch));
    }
    return Step::Done();
  }
  if (rc.accept_data_loss && !positions.empty()) {
    out.Emit("data-loss-accepted",
             op.role + " (" + op.id + "): promoting from " + std::to_string(positions.size()) +
                 " of the " + std::to_string(needed) +
                 " replicas every write quorum overlaps, as asked (--accept-data-loss): "
                 "writes acknowledged by " +
                 missing + " alone may be lost",
             {{"op", op.id}, {"role", op.role}});
    return Step::Done();
  }
  const std::string counts =
      std::to_string(positions.size()) + " of the " + std::to_string(needed) +
      " replicas needed took epoch " + std::to_string(rc.epoch) + " (" +
      (answered.empty() ? "none answered" : answered) + "; missing " + missing + ")";
  // The replicas usually answer within a heartbeat or two: until a lease and the margin have
  // passed this is a wait, not a loss.
  if (view.StepElapsed(op) < quorum_lost_after_) return Step::Wait("so far " + counts);
  const std::string why =
      "quorum lost: " + counts +
      "; nothing is promoted until enough answer: bring a missing replica's node back (its data "
      "is kept)" +
      (answered.empty() ? std::string()
                        : ", or `hafab failover " + op.role +
                              " --accept-data-loss` to promote the most advanced that answered, "
                              "losing writes acknowledged only by " +
                              missing);
  if (quorum_lost_told_.insert(op.id).second) {
    out.Emit("quorum-lost", op.role + " (" + op.id + "): " + why,
             {{"op", op.id}, {"role", op.role}});
  }
  return Step::Wait(why);
}

// The most advanced replica that answered becomes the primary (a planned switchover's target
// when it is among them; else not the old primary, then the lowest name).
Step ReconfigureProcedure::Promote(Operation& op, const OpView& view, OpWrites& out) {
  ReconfigureOp& rc = op.reconfigure();
  if (rc.new_primary.empty()) {
    std::string best;
    auto better = [&](const std::string& a, const std::string& b) {
      const wire::Position& pa = rc.positions.at(a);
      const wire::Position& pb = rc.positions.at(b);
      if (pa != pb) return pa > pb;
      if ((a == rc.to) != (b == rc.to)) return a == rc.to;
      if ((a == rc.old_primary) != (b == rc.old_primary)) return b == rc.old_primary;
      return a < b;
    };
    for (const auto& [name, pos] : rc.positions) {
      const InstanceRecord* inst = view.Instance(name);
      if (inst == nullptr || !view.NodeLive(inst->node)) continue;
      if (best.empty() || better(name, best)) best = name;
    }
    if (best.empty()) return Step::Abort("no replica that took the epoch is reachable any more");
    if (!rc.to.empty() && best != rc.to && rc.positions.count(rc.to)) {
      out.Emit("reconfigure-target-behind",
               op.role + " (" + op.id + "): " + rc.to + " is behind " + best + " (" +
                   PositionText(rc.positions.at(rc.to)) + " < " +
                   PositionText(rc.positions.at(best)) + "): " + best +
                   " is promoted so that nothing acknowledged is lost",
               {{"op", op.id}, {"role", op.role}});
    }
    rc.new_primary = best;
    rc.new_node = view.Instance(best)->node;
    out.PutOp(op);
  }
  const InstanceRecord* chosen = view.Instance(rc.new_primary);
  if (chosen == nullptr) return Step::Abort("replica " + rc.new_primary + " was removed");
  bool changed = false;
  if (chosen->replica != wire::ReplicaRole::kPrimary || chosen->epoch != rc.epoch) {
    InstanceRecord r = *chosen;
    r.replica = wire::ReplicaRole::kPrimary;
    r.epoch = rc.epoch;  // the gateways route the endpoint's epoch to the backend of that epoch
    changed |= out.PutInstance(r);
  }
  RoleRecord r = *view.Role(op.role);
  r.primary = rc.new_primary;
  r.epoch = std::max(r.epoch, rc.epoch);
  changed |= out.PutRole(r);
  return changed ? Step::Publish() : Step::Done();
}

// The new primary says it is the primary of the epoch: it has taken the configuration and
// takes writes.
Step ReconfigureProcedure::Confirm(Operation& op, const OpView& view, OpWrites&) {
  const ReconfigureOp& rc = op.reconfigure();
  const InstanceRecord* inst = view.Instance(rc.new_primary);
  if (inst == nullptr) return Step::Abort("replica " + rc.new_primary + " was removed");
  if (view.NodeDeclaredDown(inst->node)) {
    return Step::Abort("node " + inst->node + " of the new primary " + inst->name + " is down");
  }
  const ObservedInstance* o = view.Observed(*inst);
  if (o != nullptr && o->replica && o->replica->role == wire::ReplicaRole::kPrimary &&
      o->replica->epoch == rc.epoch) {
    return Step::Done();
  }
  return Step::Wait("waiting for " + inst->name + " to say it is the primary of epoch " +
                    std::to_string(rc.epoch) +
                    (o != nullptr && o->replica
                         ? " (it says " + std::string(wire::ReplicaRoleName(o->replica->role)) +
                               " at " + std::to_string(o->replica->epoch) + ", " +
                               o->replica->state + ")"
                         : ""));
}

Step ReconfigureProcedure::Route(Operation& op, const OpView& view, OpWrites& out) {
  RoleRecord r = *view.Role(op.role);
  r.routed = true;
  out.PutRole(r);
  return Step::Done();
}

}  // namespace hafab::controller
