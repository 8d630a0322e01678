// Rolling upgrades: see rollout.h for the procedure. Controller members, beside failover.cc.
#include "controller/rollout.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "controller/controller.h"

namespace hafab::controller {

using nlohmann::json;

namespace {

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

std::string VersionName(const std::string& v) { return v.empty() ? "(no version)" : v; }

bool SameRuntime(const manifest::Role& a, const manifest::Role& b) {
  return a.command == b.command && a.args == b.args && a.env == b.env && a.probes == b.probes &&
         a.restart == b.restart && a.resources == b.resources && a.stop_grace == b.stop_grace &&
         a.drain == b.drain && a.version == b.version;
}

void CopyRuntime(const manifest::Role& from, manifest::Role* to) {
  to->command = from.command;
  to->args = from.args;
  to->env = from.env;
  to->probes = from.probes;
  to->restart = from.restart;
  to->resources = from.resources;
  to->stop_grace = from.stop_grace;
  to->drain = from.drain;
  to->version = from.version;
}

Status ApplyUpgradeSet(const json& set, manifest::Role* spec) {
  if (!set.is_object()) return Status::InvalidArgument("set: must be an object");
  for (const auto& [key, v] : set.items()) {
    const std::string where = "set." + key;
    if (key == "command") {
      if (!v.is_string() || v.get<std::string>().empty()) {
        return Status::InvalidArgument(where + ": must be a non-empty string");
      }
      spec->command = v.get<std::string>();
    } else if (key == "version") {
      if (!v.is_string()) return Status::InvalidArgument(where + ": must be a string");
      spec->version = v.get<std::string>();
    } else if (key == "args") {
      if (!v.is_array()) return Status::InvalidArgument(where + ": must be an array of strings");
      std::vector<std::string> args;
      for (const auto& a : v) {
        if (!a.is_string()) return Status::InvalidArgument(where + ": must be an array of strings");
        args.push_back(a.get<std::string>());
      }
      spec->args = std::move(args);
    } else if (key == "env") {
      if (!v.is_object()) return Status::InvalidArgument(where + ": must be an object");
      for (const auto& [k, val] : v.items()) {
        if (k.empty()) return Status::InvalidArgument(where + ": empty variable name");
        if (val.is_null()) {
          spec->env.erase(k);
        } else if (val.is_string()) {
          spec->env[k] = val.get<std::string>();
        } else {
          return Status::InvalidArgument(where + "." + k +
                                         ": must be a string (or null to remove)");
        }
      }
    } else {
      return Status::InvalidArgument(where + ": unknown; allowed: command, args, env, version");
    }
  }
  return Status::Ok();
}

const manifest::Role& Controller::SpecFor(const RoleRecord& role,
                                          const InstanceRecord& inst) const {
  if (role.previous && role.previous_revision != role.revision &&
      inst.revision == role.previous_revision) {
    return *role.previous;
  }
  return role.spec;
}

std::string Controller::DomainOf(const InstanceRecord& inst) const {
  auto ni = nodes_.find(inst.node);
  if (ni == nodes_.end() || ni->second.update_domain.empty()) return inst.node;
  return ni->second.update_domain;
}

void Controller::PrepareSpecChange(const RoleRecord& old, RoleRecord* rec) {
  int64_t old_rev = old.revision;
  if (old_rev == 0) old_rev = NextSeq();
  // Instances that predate revisions run the old spec: name it.
  for (const auto& [name, inst] : instances_) {
    if (inst.role != old.spec.name || (inst.revision != 0 && inst.revision != old.revision)) {
      continue;
    }
    InstanceRecord r = inst;
    r.revision = old_rev;
    PutInstance(r);
  }
  rec->previous = old.spec;
  rec->previous_revision = old_rev;
  rec->revision = NextSeq();
}

bool Controller::RollsOut(const RoleRecord& old, const manifest::Role& next) const {
  if (old.spec.mode == manifest::RoleMode::kActivePassive) return false;
  if (SameRuntime(old.spec, next)) return false;
  for (const auto& [name, inst] : instances_) {
    if (inst.role == old.spec.name) return true;
  }
  return false;
}

std::vector<std::string> Controller::DomainsBehind(const std::string& role, int64_t revision,
                                                   const std::vector<std::string>& first) const {
  std::set<std::string> behind;
  for (const auto& [name, inst] : instances_) {
    if (inst.role == role && inst.revision != revision) behind.insert(DomainOf(inst));
  }
  std::vector<std::string> out = first;
  for (const auto& d : first) behind.erase(d);
  out.insert(out.end(), behind.begin(), behind.end());
  return out;
}

std::string Controller::StartRollout(const std::string& role, const std::string& reason,
                                     bool rollback) {
  const RoleRecord& r = roles_.at(role);
  Operation op;
  op.id = "op-" + std::to_string(NextSeq());
  op.part = RolloutOp{};
  op.role = role;
  op.reason = reason;
  op.owner = id_;
  op.rollout().rollback = rollback;
  op.rollout().from_revision = r.previous_revision;
  op.rollout().to_revision = r.revision;
  op.rollout().from_version = r.previous ? r.previous->version : "";
  op.rollout().to_version = r.spec.version;
  op.rollout().per_wave = std::max(1, r.spec.update.max_unavailable_domains);
  op.rollout().domains = DomainsBehind(role, r.revision, {});
  for (const auto& d : op.rollout().domains)
    op.rollout().domain_state[d] = wire::DomainState::kPending;
  op.step = kRolloutSteps[0];
  op.created_ms = WallMs(clock_);
  PutOp(op);
  Emit(rollback ? "rollback-started" : "rollout-started",
       role + " (" + op.id + "): " + (rollback ? "rollback" : "rolling upgrade") + " from " +
           VersionName(op.rollout().from_version) + " to " + VersionName(op.rollout().to_version) +
           " over " + std::to_string(op.rollout().domains.size()) + " update domains [" +
           Join(op.rollout().domains) + "], " + std::to_string(op.rollout().per_wave) +
           " at a time: " + reason,
       {{"op", op.id}, {"role", role}});
  std::string id = op.id;
  AdvanceOp(ops_[id]);
  return id;
}

std::vector<std::string> Controller::WaveDomains(const Operation& op) const {
  std::vector<std::string> out;
  size_t from = static_cast<size_t>(op.rollout().wave) * static_cast<size_t>(op.rollout().per_wave);
  for (size_t i = from; i < op.rollout().domains.size() && i < from + op.rollout().per_wave; ++i) {
    out.push_back(op.rollout().domains[i]);
  }
  return out;
}

std::string Controller::RolloutWaveLabel(const Operation& op) const {
  return Join(WaveDomains(op));
}

void Controller::SetWaveState(Operation& op, wire::DomainState state) {
  bool changed = false;
  for (const auto& d : WaveDomains(op)) {
    wire::DomainState& s = op.rollout().domain_state[d];
    if (s != state) {
      s = state;
      changed = true;
    }
  }
  if (changed) PutOp(op);
}

// The rolling-upgrade procedure (procedure.h): drain, stop, start, route, once per wave of
// update domains, run by the journal.
class Controller::RolloutProcedure : public Procedure {
 public:
  explicit RolloutProcedure(Controller& c) : c_(c) {}

  std::string StepLabel(const Operation& op) const override {
    return op.step + " " + c_.RolloutWaveLabel(op);  // the step repeats per wave
  }

  StepResult Run(Operation& op) override {
    if (c_.RoleRemoved(op)) return StepResult::kAbort;
    const std::string& s = op.step;
    if (s == "drain") return c_.StepRolloutDrain(op);
    if (s == "stop") return c_.StepRolloutStop(op);
    if (s == "start") return c_.StepRolloutStart(op);
    if (s == "route") return c_.StepRolloutRoute(op);
    op.error = "unknown step " + s;
    return StepResult::kAbort;
  }

  bool Advance(Operation& op) override { return c_.NextRolloutStep(op); }

  size_t StepsPerPass(const Operation& op) const override {
    return std::size(kRolloutSteps) * (op.rollout().domains.size() + 1);
  }

  JournalEvent Finished(const Operation& op, const std::string& timeline) const override {
    const std::string what = op.rollout().rollback ? "rollback" : "rollout";
    const std::string state(wire::OpStateName(op.state));
    return {what + "-" + state,
            op.role + " (" + op.id + "): " + what + " to " + VersionName(op.rollout().to_version) +
                " " + state + " after " + std::to_string(op.finished_ms - op.created_ms) + "ms" +
                (op.error.empty() ? "" : ": " + op.error) + " [" + timeline + "]",
            {{"op", op.id}, {"role", op.role}}};
  }

  void Forget(const Operation& op) override { c_.fence_version_.erase(op.id); }

 private:
  Controller& c_;
};

std::unique_ptr<Procedure> Controller::MakeRolloutProcedure() {
  return std::make_unique<RolloutProcedure>(*this);
}

// Out of rotation: done once every live gateway routes without them (it gives them no new
// connection). Their open connections are the instances' own to hand over: the stop step's
// SIGTERM asks them to drain (the drain contract: answer what is in flight, close each
// connection after its next response with Connection: close), bounded by stop_grace.
Controller::StepResult Controller::StepRolloutDrain(Operation& op) {
  if (op.rollout().wave_instances.empty()) {
    std::vector<std::string> domains = WaveDomains(op);
    std::set<std::string> in_wave(domains.begin(), domains.end());
    for (const auto& [name, inst] : instances_) {
      if (inst.role == op.role && inst.revision != op.rollout().to_revision &&
          in_wave.count(DomainOf(inst))) {
        op.rollout().wave_instances.push_back(name);
      }
    }
    PutOp(op);
  }
  SetWaveState(op, wire::DomainState::kDraining);
  for (const auto& name : op.rollout().wave_instances) {
    InstanceRecord* inst = FindInstance(name);
    if (inst == nullptr || !inst->routed) continue;
    InstanceRecord r = *inst;
    r.routed = false;
    PutInstance(r);
  }
  if (!Commit().ok()) return StepResult::kWait;
  Publish();
  return GatewaysAcked(op) ? StepResult::kDone : StepResult::kWait;
}

Controller::StepResult Controller::StepRolloutStop(Operation& op) {
  SetWaveState(op, wire::DomainState::kStopping);
  std::vector<std::string> waiting;
  for (const auto& name : op.rollout().wave_instances) {
    InstanceRecord* inst = FindInstance(name);
    if (inst == nullptr) continue;
    if (inst->run) {
      InstanceRecord r = *inst;
      r.run = false;
      PutInstance(r);
    }
  }
  if (!Commit().ok()) return StepResult::kWait;  // agents never hear what is not stored
  Publish();
  for (const auto& name : op.rollout().wave_instances) {
    InstanceRecord* inst = FindInstance(name);
    if (inst == nullptr || !node_leases_.Live(inst->node)) continue;  // a dead node runs nothing
    const ObservedInstance* o = Observed(*inst);
    if (!AssignmentsTaken(inst->node) || (o != nullptr && RunningState(o->state)))
      waiting.push_back(name);
  }
  if (!waiting.empty()) {
    journal_.Note(op, "waiting for " + Join(waiting) + " to stop");
    return StepResult::kWait;
  }
  return StepResult::kDone;
}

Controller::StepResult Controller::StepRolloutStart(Operation& op) {
  SetWaveState(op, wire::DomainState::kStarting);
  const RoleRecord& role = roles_.at(op.role);
  for (const auto& name : op.rollout().wave_instances) {
    InstanceRecord* inst = FindInstance(name);
    if (inst == nullptr) continue;
    if (inst->revision != op.rollout().to_revision || !inst->run) {
      InstanceRecord r = *inst;
      if (r.revision != op.rollout().to_revision)
        restarts_.erase(name);  // a new program's restarts
      r.revision = op.rollout().to_revision;
      r.run = true;
      r.routed = false;
      PutInstance(r);
    }
  }
  if (!Commit().ok()) return StepResult::kWait;
  Publish();
  std::vector<std::string> waiting;
  std::string failure;
  for (const auto& name : op.rollout().wave_instances) {
    InstanceRecord* inst = FindInstance(name);
    if (inst == nullptr) continue;
    const ObservedInstance* o = Observed(*inst);
    const bool taken = AssignmentsTaken(inst->node);
    if (taken && o != nullptr &&
        (o->state == wire::InstanceState::kFailed || RestartsExceeded(*inst))) {
      failure = name + " on " + inst->node + " failed to start (" +
                std::string(wire::InstanceStateName(o->state)) +
                (o->last_exit.empty() ? "" : ", " + o->last_exit) + ", " +
                std::to_string(o->restarts) + " restarts)";
      break;
    }
    const bool ready = taken && o != nullptr && o->state == wire::InstanceState::kRunning &&
                       node_leases_.Live(inst->node) && ProbesPass(role.spec.probes, *o);
    if (!ready) waiting.push_back(name);
  }
  if (failure.empty() && waiting.empty()) return StepResult::kDone;
  if (failure.empty() && journal_.StepElapsed(op) >= role.spec.update.ready_timeout) {
    failure = Join(waiting) + " not ready within " +
              std::to_string(ToMs(role.spec.update.ready_timeout)) + "ms (update.ready_timeout)";
  }
  if (failure.empty()) {
    journal_.Note(op, "waiting for " + Join(waiting) + " to be ready");
    return StepResult::kWait;
  }
  if (op.rollout().rollback) {
    op.error = "rollback failed: " + failure;
    return StepResult::kAbort;
  }
  BeginRollback(op, failure);
  return StepResult::kWait;
}

Controller::StepResult Controller::StepRolloutRoute(Operation& op) {
  for (const auto& name : op.rollout().wave_instances) {
    InstanceRecord* inst = FindInstance(name);
    if (inst == nullptr || inst->routed) continue;
    InstanceRecord r = *inst;
    r.routed = true;
    PutInstance(r);
  }
  SetWaveState(op, wire::DomainState::kDone);
  return StepResult::kDone;
}

bool Controller::NextRolloutStep(Operation& op) {
  constexpr size_t n = std::size(kRolloutSteps);
  for (size_t i = 0; i + 1 < n; ++i) {
    if (op.step == kRolloutSteps[i]) {
      op.step = kRolloutSteps[i + 1];
      return true;
    }
  }
  // route done: the next wave, if any.
  fence_version_.erase(op.id);
  op.rollout().wave_instances.clear();
  ++op.rollout().wave;
  if (static_cast<size_t>(op.rollout().wave) * static_cast<size_t>(op.rollout().per_wave) >=
      op.rollout().domains.size()) {
    return false;
  }
  op.step = kRolloutSteps[0];
  return true;
}

void Controller::BeginRollback(Operation& op, const std::string& why) {
  RoleRecord r = roles_.at(op.role);
  if (!r.previous) {
    op.error = "cannot roll back: no previous spec";
    return;
  }
  manifest::Role back = r.spec;
  CopyRuntime(*r.previous, &back);
  r.previous = r.spec;
  r.spec = back;
  std::swap(r.revision, r.previous_revision);
  PutRole(r);
  std::vector<std::string> first = WaveDomains(op);
  if (!op.steps.empty() && op.steps.back().duration_ms < 0) {
    op.steps.back().duration_ms = std::max<int64_t>(0, WallMs(clock_) - op.steps.back().started_ms);
    op.steps.back().note = "rolling back: " + why;
  }
  op.rollout().rollback = true;
  std::swap(op.rollout().from_revision, op.rollout().to_revision);
  std::swap(op.rollout().from_version, op.rollout().to_version);
  op.error = why;
  op.reason += "; rolled back: " + why;
  // The wave under way goes first, with the same instances: some may still run the old
  // spec, but all are out of rotation (or stopped) and must come back.
  op.rollout().domains = DomainsBehind(op.role, op.rollout().to_revision, first);
  op.rollout().domain_state.clear();
  for (const auto& d : op.rollout().domains)
    op.rollout().domain_state[d] = wire::DomainState::kPending;
  op.rollout().wave = 0;
  op.step = kRolloutSteps[0];
  op.step_begun = false;
  fence_version_.erase(op.id);
  PutOp(op);
  Emit("rollout-rollback",
       op.role + " (" + op.id + "): rolling back to " + VersionName(op.rollout().to_version) +
           " over [" + Join(op.rollout().domains) + "]: " + why,
       {{"op", op.id}, {"role", op.role}});
  (void)Commit();
}

Result<json> Controller::Upgrade(const std::string& role, const json& set, bool rollback) {
  if (crashed_) return Status::Unavailable("controller stopping");
  HAFAB_RETURN_IF_ERROR(ReloadIfNeeded());
  auto it = roles_.find(role);
  if (it == roles_.end()) return Status::NotFound("role " + role + " does not exist");
  RoleRecord rec = it->second;
  if (rec.spec.mode == manifest::RoleMode::kActivePassive) {
    return Status::InvalidArgument("role: " + role +
                                   " is active-passive; rolling upgrades are for load-balanced "
                                   "roles (a failover moves an active-passive role)");
  }
  std::string id;
  Operation* active = nullptr;
  if (auto ri = running_ops_.find(role); ri != running_ops_.end()) active = &ops_.at(ri->second);
  if (rollback && !set.is_null() && !set.empty()) {
    return Status::InvalidArgument("set: not allowed with rollback");
  }
  if (rollback && active != nullptr) {
    if (active->kind() != wire::OpKind::kRollout || active->rollout().rollback) {
      return Status::Conflict("role: " + role + " already has " +
                              std::string(wire::OpKindName(active->kind())) + " " + active->id +
                              (active->rollout().rollback ? " (a rollback)" : "") + " at step " +
                              active->step);
    }
    id = active->id;
    BeginRollback(*active, "requested by an operator");
    AdvanceOp(*active);
  } else {
    if (active != nullptr) {
      return Status::Conflict("role: " + role + " already has " +
                              std::string(wire::OpKindName(active->kind())) + " " + active->id +
                              " at step " + active->step + "; upgrade again when it is done");
    }
    manifest::Role next_spec = rec.spec;
    if (rollback) {
      if (!rec.previous || SameRuntime(*rec.previous, rec.spec)) {
        return Status::InvalidArgument("rollback: role " + role +
                                       " has no previous version to roll back to");
      }
      CopyRuntime(*rec.previous, &next_spec);
    } else {
      HAFAB_RETURN_IF_ERROR(ApplyUpgradeSet(set, &next_spec));
      if (SameRuntime(next_spec, rec.spec)) {
        return Status::InvalidArgument("set: nothing changes for role " + role);
      }
    }
    RoleRecord next = rec;
    next.spec = next_spec;
    PrepareSpecChange(rec, &next);
    PutRole(next);
    id = StartRollout(role, rollback ? "rollback requested by an operator" : "hafab upgrade",
                      rollback);
  }
  Status st = Commit();
  Publish();
  if (!st.ok()) return st;
  return json{{"operation", id}, {"role", role}, {"rollback", rollback}};
}

}  // namespace hafab::controller
