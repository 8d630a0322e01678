#include "controller/rollout_procedure.h"

#include <algorithm>
#include <set>

#include "controller/rollout.h"

namespace hafab::controller {

namespace {

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

std::string DomainOf(const OpView& view, const InstanceRecord& inst) {
  const NodeRecord* n = view.Node(inst.node);
  if (n == nullptr || n->update_domain.empty()) return inst.node;
  return n->update_domain;
}

std::vector<std::string> DomainsBehind(const OpView& view, const std::string& role,
                                       int64_t revision, const std::vector<std::string>& first) {
  std::set<std::string> behind;
  for (const InstanceRecord* inst : view.InstancesOf(role)) {
    if (inst->revision != revision) behind.insert(DomainOf(view, *inst));
  }
  std::vector<std::string> out = first;
  for (const auto& d : first) behind.erase(d);
  out.insert(out.end(), behind.begin(), behind.end());
  return out;
}

std::vector<std::string> RolloutProcedure::WaveDomains(const Operation& op) {
  const RolloutOp& ro = op.rollout();
  std::vector<std::string> out;
  size_t from = static_cast<size_t>(ro.wave) * static_cast<size_t>(ro.per_wave);
  for (size_t i = from; i < ro.domains.size() && i < from + ro.per_wave; ++i) {
    out.push_back(ro.domains[i]);
  }
  return out;
}

void RolloutProcedure::SetWaveState(Operation& op, OpWrites& out, wire::DomainState state) {
  bool changed = false;
  for (const auto& d : WaveDomains(op)) {
    wire::DomainState& s = op.rollout().domain_state[d];
    if (s != state) {
      s = state;
      changed = true;
    }
  }
  if (changed) out.PutOp(op);
}

std::string RolloutProcedure::StepLabel(const Operation& op) const {
  return op.step + " " + Join(WaveDomains(op));  // the step repeats per wave
}

Step RolloutProcedure::Run(Operation& op, const OpView& view, OpWrites& out) {
  if (view.Role(op.role) == nullptr) return Step::Abort("role " + op.role + " was removed");
  const std::string& s = op.step;
  if (s == "drain") return Drain(op, view, out);
  if (s == "stop") return Stop(op, view, out);
  if (s == "start") return Start(op, view, out);
  if (s == "route") return Route(op, view, out);
  return Step::Abort("unknown step " + s);
}

bool RolloutProcedure::Advance(Operation& op) {
  constexpr size_t n = std::size(kRolloutSteps);
  for (size_t i = 0; i + 1 < n; ++i) {
    if (op.step == kRolloutSteps[i]) {
      op.step = kRolloutSteps[i + 1];
      return true;
    }
  }
  // route done: the next wave, if any.
  RolloutOp& ro = op.rollout();
  routes_ack_.Forget(op.id);
  ro.wave_instances.clear();
  ++ro.wave;
  if (static_cast<size_t>(ro.wave) * static_cast<size_t>(ro.per_wave) >= ro.domains.size()) {
    return false;
  }
  op.step = kRolloutSteps[0];
  return true;
}

JournalEvent RolloutProcedure::Started(const Operation& op) const {
  const RolloutOp& ro = op.rollout();
  return {ro.rollback ? "rollback-started" : "rollout-started",
          op.role + " (" + op.id + "): " + (ro.rollback ? "rollback" : "rolling upgrade") +
              " from " + VersionName(ro.from_version) + " to " + VersionName(ro.to_version) +
              " over " + std::to_string(ro.domains.size()) + " update domains [" +
              Join(ro.domains) + "], " + std::to_string(ro.per_wave) + " at a time: " + op.reason,
          {{"op", op.id}, {"role", op.role}}};
}

JournalEvent RolloutProcedure::Finished(const Operation& op, const std::string& timeline) const {
  const RolloutOp& ro = op.rollout();
  const std::string what = ro.rollback ? "rollback" : "rollout";
  const std::string state(wire::OpStateName(op.state));
  return {what + "-" + state,
          op.role + " (" + op.id + "): " + what + " to " + VersionName(ro.to_version) + " " +
              state + " after " + std::to_string(op.finished_ms - op.created_ms) + "ms" +
              (op.error.empty() ? "" : ": " + op.error) + " [" + timeline + "]",
          {{"op", op.id}, {"role", op.role}}};
}

// Out of rotation: done once every live gateway routes without them (it gives them no new
// connection). Their open connections are the instances' own to hand over: the stop step's
// SIGTERM asks them to drain (the drain contract: answer what is in flight, close each
// connection after its next response with Connection: close), bounded by stop_grace.
Step RolloutProcedure::Drain(Operation& op, const OpView& view, OpWrites& out) {
  RolloutOp& ro = op.rollout();
  if (ro.wave_instances.empty()) {
    std::vector<std::string> domains = WaveDomains(op);
    std::set<std::string> in_wave(domains.begin(), domains.end());
    for (const InstanceRecord* inst : view.InstancesOf(op.role)) {
      if (inst->revision != ro.to_revision && in_wave.count(DomainOf(view, *inst))) {
        ro.wave_instances.push_back(inst->name);
      }
    }
    out.PutOp(op);
  }
  SetWaveState(op, out, wire::DomainState::kDraining);
  bool changed = false;
  for (const auto& name : ro.wave_instances) {
    const InstanceRecord* inst = view.Instance(name);
    if (inst == nullptr || !inst->routed) continue;
    InstanceRecord r = *inst;
    r.routed = false;
    changed |= out.PutInstance(r);
  }
  if (changed) return Step::Publish();
  return routes_ack_.Check(op, view);
}

Step RolloutProcedure::Stop(Operation& op, const OpView& view, OpWrites& out) {
  SetWaveState(op, out, wire::DomainState::kStopping);
  const RolloutOp& ro = op.rollout();
  bool changed = false;
  for (const auto& name : ro.wave_instances) {
    const InstanceRecord* inst = view.Instance(name);
    if (inst == nullptr || !inst->run) continue;
    InstanceRecord r = *inst;
    r.run = false;
    changed |= out.PutInstance(r);
  }
  if (changed) return Step::Publish();  // agents never hear what is not stored
  std::vector<std::string> waiting;
  for (const auto& name : ro.wave_instances) {
    const InstanceRecord* inst = view.Instance(name);
    if (inst == nullptr || !view.NodeLive(inst->node)) continue;  // a dead node runs nothing
    const ObservedInstance* o = view.Observed(*inst);
    if (!view.AssignmentsTaken(inst->node) || (o != nullptr && RunningState(o->state))) {
      waiting.push_back(name);
    }
  }
  if (!waiting.empty()) return Step::Wait("waiting for " + Join(waiting) + " to stop");
  return Step::Done();
}

Step RolloutProcedure::Start(Operation& op, const OpView& view, OpWrites& out) {
  SetWaveState(op, out, wire::DomainState::kStarting);
  const RolloutOp& ro = op.rollout();
  const RoleRecord& role = *view.Role(op.role);
  bool changed = false;
  for (const auto& name : ro.wave_instances) {
    const InstanceRecord* inst = view.Instance(name);
    if (inst == nullptr || (inst->revision == ro.to_revision && inst->run)) continue;
    InstanceRecord r = *inst;
    if (r.revision != ro.to_revision) out.ForgetRestarts(name);  // a new program's restarts
    r.revision = ro.to_revision;
    r.run = true;
    r.routed = false;
    changed |= out.PutInstance(r);
  }
  if (changed) return Step::Publish();
  std::vector<std::string> waiting;
  std::string failure;
  for (const auto& name : ro.wave_instances) {
    const InstanceRecord* inst = view.Instance(name);
    if (inst == nullptr) continue;
    const ObservedInstance* o = view.Observed(*inst);
    const bool taken = view.AssignmentsTaken(inst->node);
    if (taken && o != nullptr &&
        (o->state == wire::InstanceState::kFailed || view.RestartsExceeded(*inst))) {
      failure = name + " on " + inst->node + " failed to start (" +
                std::string(wire::InstanceStateName(o->state)) +
                (o->last_exit.empty() ? "" : ", " + o->last_exit) + ", " +
                std::to_string(o->restarts) + " restarts)";
      break;
    }
    const bool ready = taken && o != nullptr && o->state == wire::InstanceState::kRunning &&
                       view.NodeLive(inst->node) && ProbesPass(role.spec.probes, *o);
    if (!ready) waiting.push_back(name);
  }
  if (failure.empty() && waiting.empty()) return Step::Done();
  if (failure.empty() && view.StepElapsed(op) >= role.spec.update.ready_timeout) {
    failure = Join(waiting) + " not ready within " +
              std::to_string(ToMs(role.spec.update.ready_timeout)) + "ms (update.ready_timeout)";
  }
  if (failure.empty()) return Step::Wait("waiting for " + Join(waiting) + " to be ready");
  if (ro.rollback) return Step::Abort("rollback failed: " + failure);
  BeginRollback(op, view, out, failure);
  return Step::Wait();
}

Step RolloutProcedure::Route(Operation& op, const OpView& view, OpWrites& out) {
  for (const auto& name : op.rollout().wave_instances) {
    const InstanceRecord* inst = view.Instance(name);
    if (inst == nullptr || inst->routed) continue;
    InstanceRecord r = *inst;
    r.routed = true;
    out.PutInstance(r);
  }
  SetWaveState(op, out, wire::DomainState::kDone);
  return Step::Done();
}

void RolloutProcedure::BeginRollback(Operation& op, const OpView& view, OpWrites& out,
                                     const std::string& why) {
  RoleRecord r = *view.Role(op.role);
  if (!r.previous) {
    op.error = "cannot roll back: no previous spec";
    return;
  }
  manifest::Role back = r.spec;
  CopyRuntime(*r.previous, &back);
  r.previous = r.spec;
  r.spec = back;
  std::swap(r.revision, r.previous_revision);
  out.PutRole(r);
  std::vector<std::string> first = WaveDomains(op);
  if (!op.steps.empty() && op.steps.back().duration_ms < 0) {
    op.steps.back().duration_ms = std::max<int64_t>(0, WallMs(clock_) - op.steps.back().started_ms);
    op.steps.back().note = "rolling back: " + why;
  }
  RolloutOp& ro = op.rollout();
  ro.rollback = true;
  std::swap(ro.from_revision, ro.to_revision);
  std::swap(ro.from_version, ro.to_version);
  op.error = why;
  op.reason += "; rolled back: " + why;
  // The wave under way goes first, with the same instances: some may still run the old
  // spec, but all are out of rotation (or stopped) and must come back.
  ro.domains = DomainsBehind(view, op.role, ro.to_revision, first);
  ro.domain_state.clear();
  for (const auto& d : ro.domains) ro.domain_state[d] = wire::DomainState::kPending;
  ro.wave = 0;
  op.step = kRolloutSteps[0];
  op.step_begun = false;
  routes_ack_.Forget(op.id);
  out.PutOp(op);
  out.Emit("rollout-rollback",
           op.role + " (" + op.id + "): rolling back to " + VersionName(ro.to_version) + " over [" +
               Join(ro.domains) + "]: " + why,
           {{"op", op.id}, {"role", op.role}});
}

}  // namespace hafab::controller
