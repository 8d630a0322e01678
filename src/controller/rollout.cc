// Rolling upgrades: a role's runtime spec changes, and a rollout starts (rollout.h; its steps:
// rollout_procedure.h).
#include "controller/rollout.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "controller/controller.h"

namespace hafab::controller {

using nlohmann::json;

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

std::string Controller::StartRollout(const std::string& role, const std::string& reason,
                                     bool rollback) {
  const RoleRecord& r = roles_.at(role);
  Operation op;
  op.id = "op-" + std::to_string(NextSeq());
  op.role = role;
  op.reason = reason;
  op.owner = id_;
  RolloutOp& ro = op.part.emplace<RolloutOp>();
  ro.rollback = rollback;
  ro.from_revision = r.previous_revision;
  ro.to_revision = r.revision;
  ro.from_version = r.previous ? r.previous->version : "";
  ro.to_version = r.spec.version;
  ro.per_wave = std::max(1, r.spec.update.max_unavailable_domains);
  ro.domains = DomainsBehind(*this, role, r.revision, {});
  for (const auto& d : ro.domains) ro.domain_state[d] = wire::DomainState::kPending;
  op.step = kRolloutSteps[0];
  op.created_ms = WallMs(clock_);
  PutOp(op);
  JournalEvent started = rollout_.Started(op);
  Emit(started.type, started.message, std::move(started.fields));
  std::string id = op.id;
  AdvanceOp(ops_[id]);
  return id;
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
    const RolloutOp* ro = std::get_if<RolloutOp>(&active->part);
    if (ro == nullptr || ro->rollback) {
      return Status::Conflict("role: " + role + " already has " +
                              std::string(wire::OpKindName(active->kind())) + " " + active->id +
                              (ro != nullptr ? " (a rollback)" : "") + " at step " + active->step);
    }
    id = active->id;
    rollout_.BeginRollback(*active, *this, *this, "requested by an operator");
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
