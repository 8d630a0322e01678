// Autoscaling: feeds the Autoscaler (autoscaler.h) each role's metric and acts on its
// decisions. Metrics come from memory only: the agents' per-instance cpu_percent and the
// gateways' per-backend active connections, both from their heartbeats.
#include <algorithm>

#include "controller/controller.h"

namespace hafab::controller {

using nlohmann::json;

namespace {

std::string MetricName(const manifest::Autoscale& a) {
  return a.metric == "connections" ? "connections_per_instance" : "cpu_percent";
}

}  // namespace

// One sample per ready (routable, not busy) instance: an instance out of rotation carries
// no load, and one still starting would pull the mean down.
std::vector<double> Controller::AutoscaleSamples(const RoleRecord& role) const {
  std::vector<double> out;
  const manifest::Autoscale& a = *role.spec.autoscale;
  for (const auto& [name, inst] : instances_) {
    if (inst.role != role.spec.name || !inst.run || !inst.routed) continue;
    bool busy = false;
    if (!InstanceReady(role, inst, &busy) || busy) continue;
    if (a.metric == "connections") {
      out.push_back(static_cast<double>(OpenConnections(name)));
    } else {
      const ObservedInstance* o = Observed(inst);
      if (o == nullptr) continue;
      // Utilisation of the instance's CPU limit when it has one, else of one core.
      double cores = role.spec.resources.cpu > 0 ? role.spec.resources.cpu : 1.0;
      out.push_back(o->cpu_percent / cores);
    }
  }
  return out;
}

void Controller::Autoscale() {
  if (crashed_) return;
  for (auto it = autoscale_last_.begin(); it != autoscale_last_.end();) {
    auto ri = roles_.find(it->first);
    if (ri == roles_.end() || !ri->second.spec.autoscale) {
      autoscaler_.Forget(it->first);
      it = autoscale_last_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [name, role] : roles_) {
    if (!role.spec.autoscale || role.spec.mode == manifest::RoleMode::kActivePassive) continue;
    const manifest::Autoscale& a = *role.spec.autoscale;
    if (const Operation* op = ActiveOp(name)) {
      AutoscaleDecision& d = autoscale_last_[name];
      d.current = d.desired = role.spec.instances;
      d.reason = "held while " + std::string(wire::OpKindName(op->kind())) + " " + op->id + " runs";
      continue;
    }
    AutoscalePolicy p;
    p.min = a.min;
    p.max = a.max;
    p.target = a.target;
    p.stabilization = a.stabilization;
    p.cooldown = a.cooldown;
    AutoscaleDecision d =
        autoscaler_.Evaluate(name, p, role.spec.instances, AutoscaleSamples(role), MetricName(a));
    autoscale_last_[name] = d;
    if (!d.changed()) continue;
    RoleRecord rec = role;
    rec.spec.instances = d.desired;
    PutRole(rec);
    Emit(d.desired > d.current ? "autoscaled-up" : "autoscaled-down",
         "role " + name + " autoscaled from " + std::to_string(d.current) + " to " +
             std::to_string(d.desired) + " instances: " + d.reason,
         {{"role", name}});
  }
}

json Controller::AutoscaleJson(const std::string& role) const {
  auto ri = roles_.find(role);
  if (ri == roles_.end() || !ri->second.spec.autoscale) return nullptr;
  const manifest::Autoscale& a = *ri->second.spec.autoscale;
  json j = {{"metric", MetricName(a)},
            {"target", a.target},
            {"min", a.min},
            {"max", a.max},
            {"stabilization_ms", ToMs(a.stabilization)},
            {"cooldown_ms", ToMs(a.cooldown)}};
  auto it = autoscale_last_.find(role);
  if (it != autoscale_last_.end()) {
    j["value"] = it->second.value;
    j["samples"] = it->second.samples;
    j["recommendation"] = it->second.recommendation;
    j["desired"] = it->second.desired;
    j["reason"] = it->second.reason;
  }
  return j;
}

}  // namespace hafab::controller
