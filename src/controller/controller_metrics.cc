// GET /metrics: the controller's state and counters in Prometheus' text format.
#include "controller/controller.h"
#include "core/prometheus.h"

namespace hafab::controller {

std::string Controller::MetricsText() const {
  MetricsWriter w;
  std::map<std::string, int> nodes{{"up", 0}, {"down", 0}, {"drained", 0}};
  for (const auto& [name, node] : nodes_) {
    ++nodes[NodeDown(name) ? "down" : node.drained ? "drained" : "up"];
  }
  w.Family("hafab_controller_nodes", "gauge",
           "Nodes by state: up (live lease), down (declared down or lease expired), drained");
  for (const auto& [state, n] : nodes) w.Sample("hafab_controller_nodes", {{"state", state}}, n);

  // A follower replica answers /metrics from a read-only view that was never started.
  const bool leading = !id_.empty() && !deposed_ && !crashed_;
  w.Family("hafab_controller_leader", "gauge",
           "1 on the controller that leads (runs operations, takes heartbeats), 0 on a follower "
           "replica");
  w.Sample("hafab_controller_leader", {}, leading ? 1 : 0);

  w.Family("hafab_controller_gateways", "gauge", "Gateways holding a live lease");
  w.Sample("hafab_controller_gateways", {}, static_cast<double>(gateway_leases_.size()));

  std::map<std::pair<std::string, std::string>, int> instances;  // (role, state)
  for (const auto& [name, inst] : instances_) {
    const ObservedInstance* o = Observed(inst);
    ++instances[{inst.role, o ? std::string(wire::InstanceStateName(o->state)) : "unreported"}];
  }
  w.Family("hafab_controller_instances", "gauge",
           "Instances by role and the state their agent reports (unreported: not heard yet)");
  for (const auto& [key, n] : instances) {
    w.Sample("hafab_controller_instances", {{"role", key.first}, {"state", key.second}}, n);
  }

  std::map<std::string, int> running{{"failover", 0}, {"rollout", 0}};
  for (const auto& [role, id] : running_ops_) {
    if (auto op = ops_.find(id); op != ops_.end()) {
      ++running[std::string(wire::OpKindName(op->second.kind()))];
    }
  }
  w.Family("hafab_controller_operations_running", "gauge", "Operations under way, by kind");
  for (const auto& [kind, n] : running) {
    w.Sample("hafab_controller_operations_running", {{"kind", kind}}, n);
  }
  const OpMetrics& ops = journal_.metrics();
  w.Family("hafab_controller_operations_total", "counter",
           "Operations finished since this controller started, by kind and outcome");
  for (const auto& [key, n] : ops.finished) {
    w.Sample("hafab_controller_operations_total", {{"kind", key.first}, {"outcome", key.second}},
             static_cast<double>(n));
  }
  w.Family("hafab_controller_operation_step_seconds", "histogram",
           "Duration of each operation step (failover: detect ... route), as in its timeline");
  for (const auto& [key, h] : ops.step_seconds) {
    w.Samples("hafab_controller_operation_step_seconds",
              {{"kind", key.first}, {"step", key.second}}, h);
  }

  w.Family("hafab_controller_operation_seconds", "histogram",
           "Duration of each finished operation, from its creation to its end, by kind and "
           "outcome");
  for (const auto& [key, h] : ops.seconds) {
    w.Samples("hafab_controller_operation_seconds", {{"kind", key.first}, {"outcome", key.second}},
              h);
  }

  w.Family("hafab_controller_role_quorum_writable", "gauge",
           "1 while a replicated role has a quorum of replicas following its primary, else 0");
  for (const auto& [name, role] : roles_) {
    if (role.spec.mode != manifest::RoleMode::kReplicated) continue;
    w.Sample("hafab_controller_role_quorum_writable", {{"role", name}},
             QuorumJson(role)["writable"].get<bool>() ? 1 : 0);
  }
  w.Family(
      "hafab_controller_role_routable", "gauge",
      "1 while a role's endpoint has a ready, non-busy instance (as hafab sla counts), else 0");
  for (const auto& [name, log] : availability_) {
    w.Sample("hafab_controller_role_routable", {{"role", name}}, log.routable() ? 1 : 0);
  }
  w.Family("hafab_controller_role_availability_ratio", "gauge",
           "Fraction of the last hour (or of the time recorded, when shorter) during which the "
           "role was routable: hafab sla ROLE --window 1h");
  const int64_t now_ms = WallMs(clock_);
  for (const auto& [name, log] : availability_) {
    w.Sample("hafab_controller_role_availability_ratio", {{"role", name}, {"window", "1h"}},
             log.Over(3600 * 1000, now_ms).availability());
  }

  w.Family("hafab_controller_store_commit_seconds", "histogram",
           "Latency of the controller's store transactions");
  w.Samples("hafab_controller_store_commit_seconds", {}, commit_seconds_);
  w.Family("hafab_controller_store_commit_failures_total", "counter",
           "Store transactions that failed (the controller then reloads from the store)");
  w.Sample("hafab_controller_store_commit_failures_total", {},
           static_cast<double>(failed_commits_));
  w.Family("hafab_controller_store_reloads_total", "counter",
           "Reloads after a failed store transaction, by what was read again: the keys that "
           "transaction (and the writes dropped until the reload) named, or the whole store");
  w.Sample("hafab_controller_store_reloads_total", {{"of", "keys"}},
           static_cast<double>(reloads_keys_));
  w.Sample("hafab_controller_store_reloads_total", {{"of", "all"}},
           static_cast<double>(reloads_full_));

  w.Family("hafab_controller_heartbeats_total", "counter",
           "Heartbeats handled since this controller started, by sender");
  w.Sample("hafab_controller_heartbeats_total", {{"from", "agent"}},
           static_cast<double>(agent_heartbeats_));
  w.Sample("hafab_controller_heartbeats_total", {{"from", "gateway"}},
           static_cast<double>(gateway_heartbeats_));
  w.Family("hafab_controller_agent_keepalives_total", "counter",
           "Agent heartbeats that were keep-alives (the node's report unchanged since one the "
           "controller holds), by result: held, or refused because the controller does not hold "
           "that report (the agent then sends it whole)");
  w.Sample("hafab_controller_agent_keepalives_total", {{"result", "held"}},
           static_cast<double>(agent_keepalives_));
  w.Sample("hafab_controller_agent_keepalives_total", {{"result", "report_requested"}},
           static_cast<double>(reports_requested_));
  w.Family("hafab_controller_assignment_answers_total", "counter",
           "Answers to agents' assignment requests: the whole list, or 'unchanged' (a long poll "
           "whose wait ended with the node's list as the agent has it)");
  w.Sample("hafab_controller_assignment_answers_total", {{"kind", "list"}},
           static_cast<double>(assignment_lists_));
  w.Sample("hafab_controller_assignment_answers_total", {{"kind", "unchanged"}},
           static_cast<double>(assignments_unchanged_));
  w.Family("hafab_controller_assignment_generations_adopted_total", "counter",
           "Nodes whose agent runs the list this controller would send it, under an earlier "
           "controller's generation, which this controller kept (no new list, no second report)");
  w.Sample("hafab_controller_assignment_generations_adopted_total", {},
           static_cast<double>(generations_adopted_));
  w.Family("hafab_controller_gc_volume_describes_total", "counter",
           "Provider Describe calls of the GC sweeper, which looks for volumes left attached to "
           "silent nodes (at most gc_describes_per_pass a pass, in turn)");
  w.Sample("hafab_controller_gc_volume_describes_total", {},
           static_cast<double>(gc_volume_describes_));
  w.Family("hafab_controller_reconcile_passes_total", "counter",
           "Reconcile passes since this controller started (every 100 ms while something "
           "changes, every second in a steady cluster)");
  w.Sample("hafab_controller_reconcile_passes_total", {}, static_cast<double>(reconcile_passes_));
  w.Family("hafab_controller_reconcile_checks_total", "counter",
           "Roles and instances the reconcile passes checked: those that changed since their "
           "last check, a role short of instances, an instance whose node is down or drained "
           "or that failed, every replica; all of them after a load from the store");
  w.Sample("hafab_controller_reconcile_checks_total", {{"of", "role"}},
           static_cast<double>(reconcile_role_checks_));
  w.Sample("hafab_controller_reconcile_checks_total", {{"of", "instance"}},
           static_cast<double>(reconcile_instance_checks_));
  w.Family("hafab_controller_leases_from_memory_total", "counter",
           "Leases renewed while the store could not take a commit (a store outage rides on "
           "memory), by holder");
  w.Sample("hafab_controller_leases_from_memory_total", {{"holder", "node"}},
           static_cast<double>(node_leases_from_memory_));
  w.Sample("hafab_controller_leases_from_memory_total", {{"holder", "gateway"}},
           static_cast<double>(gateway_leases_from_memory_));

  if (opts_.ring_detector) {
    w.Family("hafab_controller_ring_checks_total", "counter",
             "Nodes the ring arbiter asked to report at once because neighbours suspected them");
    w.Sample("hafab_controller_ring_checks_total", {}, static_cast<double>(ring_checks_));
    w.Family("hafab_agent_ring_datagrams_total", "counter",
             "Ring probe datagrams each agent sent, received (valid) and dropped as invalid "
             "(oversize, malformed or forged) since it started, as of its last heartbeat");
    for (const auto& [node, obs] : observed_) {
      if (!obs.ring_endpoint) continue;
      const wire::RingEndpoint& e = *obs.ring_endpoint;
      for (auto [what, n] : {std::pair{"sent", e.sent}, std::pair{"received", e.received},
                             std::pair{"dropped_invalid", e.dropped_invalid}}) {
        w.Sample("hafab_agent_ring_datagrams_total", {{"node", node}, {"what", what}},
                 static_cast<double>(n));
      }
    }
  }

  w.Family("hafab_controller_routes_version", "gauge", "The routing table's version");
  w.Sample("hafab_controller_routes_version", {}, static_cast<double>(routes_version_));
  return w.text();
}

}  // namespace hafab::controller
