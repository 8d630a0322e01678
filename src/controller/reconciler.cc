// The reconciler: level-triggered, it compares desired state (roles) with what exists
// (instance records) and with what agents observe, and makes the records match: creates
// and removes instances, relocates them off down, drained or crash-looping nodes, and
// starts failovers of active-passive primaries. Also builds what agents and gateways read.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "controller/controller.h"
#include "controller/placement.h"
#include "core/json.h"

namespace hafab::controller {

using manifest::RoleMode;
using nlohmann::json;

namespace {

bool IsAddressLike(const std::string& s) {
  if (s.find('/') != std::string::npos || s.find(':') != std::string::npos) return true;
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

// "host:port" -> {host, port}; port 0 when it does not parse.
std::pair<std::string, int> SplitHostPort(const std::string& hp) {
  auto colon = hp.rfind(':');
  if (colon == std::string::npos) return {hp, 0};
  try {
    return {hp.substr(0, colon), std::stoi(hp.substr(colon + 1))};
  } catch (...) {
    return {hp.substr(0, colon), 0};
  }
}

}  // namespace

void Controller::Reconcile() {
  if (crashed_) return;
  ++reconcile_passes_;
  last_reconcile_ = clock_.Now();
  changed_since_reconcile_ = false;
  if (recheck_all_) {
    recheck_all_ = false;
    for (const auto& [name, _] : roles_) recheck_roles_.insert(name);
    for (const auto& [name, _] : instances_) recheck_.insert(name);
  }
  std::vector<std::string> orphans;
  if (std::exchange(orphans_possible_, false)) {
    for (const auto& [role, names] : by_role_) {
      if (!roles_.count(role)) orphans.insert(orphans.end(), names.begin(), names.end());
    }
  }
  if (orphans.empty() && recheck_roles_.empty() && recheck_.empty()) return;
  in_pass_ = true;
  struct EndPass {
    Controller& c;
    ~EndPass() {
      c.in_pass_ = false;
      c.placement_pass_.reset();
      c.in_health_pass_ = false;
      c.created_in_pass_.clear();
      c.deleted_in_pass_.clear();
    }
  } end_pass{*this};
  for (const auto& name : orphans) {
    Emit("instance-removed", "instance " + name + " removed: its role is no longer applied",
         {{"instance", name}});
    DeleteInstance(name);
  }
  // Marks made during the pass for what comes later in it are taken in it, as a pass over
  // everything would see them; the others wait for the next pass.
  for (auto it = recheck_roles_.begin(); it != recheck_roles_.end();) {
    const std::string name = *it;
    it = recheck_roles_.erase(it);
    auto ri = roles_.find(name);
    if (ri == roles_.end()) continue;
    ++reconcile_role_checks_;
    EnsureCount(ri->second, FoundOrEmpty(by_role_, name));
    if (!CountSteady(ri->second, FoundOrEmpty(by_role_, name))) recheck_roles_.insert(name);
  }
  in_health_pass_ = true;
  for (auto it = recheck_.begin(); it != recheck_.end();) {
    const std::string name = *it;
    if (created_in_pass_.count(name)) {
      ++it;
      continue;
    }
    it = recheck_.erase(it);
    auto ii = instances_.find(name);
    if (ii == instances_.end()) continue;
    auto ri = roles_.find(ii->second.role);
    if (ri == roles_.end()) continue;
    ++reconcile_instance_checks_;
    CheckHealth(ri->second, ii->second);
    // What it could not do yet (no node with room, an operation under way) is tried again.
    ii = instances_.find(name);
    if (ii != instances_.end() && MayAct(ri->second, ii->second)) recheck_.insert(name);
  }
}

bool Controller::MayAct(const RoleRecord& role, const InstanceRecord& inst) const {
  // A replica on a down node is rebuilt once rebuild_after has passed, on the clock alone.
  if (role.spec.mode == RoleMode::kReplicated) return true;
  auto ni = nodes_.find(inst.node);
  if (ni == nodes_.end() || ni->second.down || ni->second.drained) return true;
  const ObservedInstance* o = Observed(inst);
  const bool current = o != nullptr && (o->epoch == 0 || o->epoch >= inst.epoch);
  return current && inst.run &&
         (o->state == wire::InstanceState::kFailed || RestartsExceeded(inst));
}

void Controller::Recheck(const std::string& role, const std::string& instance) {
  recheck_roles_.insert(role);
  recheck_.insert(instance);
}

void Controller::RecheckRole(const std::string& role) {
  recheck_roles_.insert(role);
  for (const auto& name : FoundOrEmpty(by_role_, role)) recheck_.insert(name);
}

void Controller::RecheckNode(const std::string& node) {
  for (const auto& name : FoundOrEmpty(by_node_, node)) recheck_.insert(name);
}

bool Controller::CountSteady(const RoleRecord& role, const std::set<std::string>& current) const {
  if (static_cast<int>(current.size()) != role.spec.instances) return false;
  if (role.spec.mode == RoleMode::kActivePassive || role.spec.mode == RoleMode::kReplicated) {
    return !role.primary.empty() && instances_.count(role.primary) > 0;
  }
  return std::all_of(current.begin(), current.end(),
                     [&](const std::string& n) { return instances_.at(n).routed; });
}

void Controller::EnsureCount(RoleRecord& role, const std::set<std::string>& current) {
  const std::string& rname = role.spec.name;
  if (ActiveOp(rname) != nullptr) return;  // a failover owns the role's instances now
  const bool ap = role.spec.mode == RoleMode::kActivePassive;
  const bool replicated = role.spec.mode == RoleMode::kReplicated;
  if (CountSteady(role, current)) return;  // most roles, most passes
  // A copy: placing and removing instances below edits the index.
  std::vector<std::string> names(current.begin(), current.end());
  std::set<int> ordinals;
  for (const auto& n : names) ordinals.insert(instances_.at(n).ordinal);
  // A replicated role's first replicas all start empty: secondaries of the first one. A
  // replica added later must first copy the primary's data: building.
  const bool bootstrap = replicated && names.empty();
  while (static_cast<int>(names.size()) < role.spec.instances) {
    int ord = 0;
    while (ordinals.count(ord)) ++ord;
    auto node = Place(rname, "", {});
    if (!node) {
      if (warned_.insert("unplaceable/" + rname).second) {
        Emit("unplaceable",
             "role " + rname + ": no live node with room for instance " + rname + "-" +
                 std::to_string(ord),
             {{"role", rname}});
      }
      break;
    }
    warned_.erase("unplaceable/" + rname);
    InstanceRecord r;
    r.name = rname + "-" + std::to_string(ord);
    r.role = rname;
    r.ordinal = ord;
    r.node = *node;
    r.port = PortFor(role.spec, *node, "");
    r.epoch = role.epoch;
    r.revision = role.revision;
    r.created_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_.WallNow().time_since_epoch())
            .count();
    std::string what = "instance";
    if (ap) {
      bool has_primary = !role.primary.empty() && instances_.count(role.primary);
      if (!has_primary) {
        r.run = true;
        r.volume = !role.spec.volume.empty();
        RoleRecord rr = role;
        rr.primary = r.name;
        rr.routed = true;
        PutRole(rr);
        what = "primary";
      } else {
        r.run = false;
        what = "standby";
      }
    } else if (replicated) {
      if (role.primary.empty() || !instances_.count(role.primary)) {
        r.replica = wire::ReplicaRole::kPrimary;
        RoleRecord rr = role;
        rr.primary = r.name;
        PutRole(rr);
      } else {
        r.replica = bootstrap ? wire::ReplicaRole::kSecondary : wire::ReplicaRole::kBuilding;
      }
      what = std::string(wire::ReplicaRoleName(*r.replica));
    }
    PutInstance(r);
    ordinals.insert(ord);
    names.push_back(r.name);
    Emit("instance-placed",
         what + " " + r.name + " placed on node " + r.node + " port " + std::to_string(r.port),
         {{"role", rname}, {"instance", r.name}, {"node", r.node}});
  }
  // Scale down: the highest ordinals go. A load-balanced instance leaves the rotation first
  // and is removed once it is drained (ScaleDownDrained), so scaling down cuts no request.
  std::vector<std::string> surplus;
  {
    std::vector<std::pair<int, std::string>> by_ordinal;
    for (const auto& n : names) {
      if (n != role.primary) by_ordinal.emplace_back(instances_.at(n).ordinal, n);
    }
    std::sort(by_ordinal.rbegin(), by_ordinal.rend());
    int extra = static_cast<int>(names.size()) - role.spec.instances;
    for (int i = 0; i < extra && i < static_cast<int>(by_ordinal.size()); ++i) {
      surplus.push_back(by_ordinal[static_cast<size_t>(i)].second);
    }
  }
  if (!ap && !replicated) {
    // An instance drained for a scale-down that is wanted again (the count went back up)
    // returns to the rotation.
    for (const auto& n : names) {
      const InstanceRecord& inst = instances_.at(n);
      if (inst.routed || std::find(surplus.begin(), surplus.end(), n) != surplus.end()) continue;
      InstanceRecord r = inst;
      r.routed = true;
      PutInstance(r);
      scale_drain_.erase(n);
    }
  }
  for (const auto& victim : surplus) {
    if (replicated) break;  // Apply refuses another count: a replica goes only by a rebuild
    if (!ap && !ScaleDownDrained(role, victim)) continue;
    Emit("instance-removed", "instance " + victim + " removed (scale down)",
         {{"role", rname}, {"instance", victim}});
    DeleteInstance(victim);
    scale_drain_.erase(victim);
    names.erase(std::find(names.begin(), names.end(), victim));
  }
  if (ap && !names.empty() && (role.primary.empty() || !instances_.count(role.primary))) {
    StartFailover(role, "role has no primary", false, "");
  }
  if (replicated && !names.empty() && (role.primary.empty() || !instances_.count(role.primary))) {
    StartReconfiguration(role, "role has no primary", false, "", false);
  }
}

bool Controller::ScaleDownDrained(const RoleRecord& role, const std::string& name) {
  const InstanceRecord& inst = instances_.at(name);
  const TimePoint now = clock_.Now();
  // No live gateway: nothing routes to it, nothing to drain.
  if (gateway_leases_.size() == 0) return true;
  auto& [since, version] = scale_drain_[name];
  if (inst.routed) {
    InstanceRecord r = inst;
    r.routed = false;
    PutInstance(r);
    since = now;
    version = 0;
    return false;
  }
  if (since == TimePoint{}) since = now;  // drained by a previous controller
  // The routes without it were published after the pass that took it out.
  if (version == 0) version = routes_version_;
  if (now >= since + role.spec.stop_grace) return true;
  // Once no gateway gives it new connections it goes; its open connections are its own to
  // hand over when the agent's SIGTERM asks it to drain (the drain contract).
  return GatewayBehind(version).empty();
}

void Controller::CheckHealth(RoleRecord& role, InstanceRecord& inst) {
  auto ni = nodes_.find(inst.node);
  bool declared_down = ni == nodes_.end() || ni->second.down;
  bool drained = ni != nodes_.end() && ni->second.drained;
  const ObservedInstance* o = Observed(inst);
  bool current = o != nullptr && (o->epoch == 0 || o->epoch >= inst.epoch);
  bool crashed =
      current && inst.run && (o->state == wire::InstanceState::kFailed || RestartsExceeded(inst));
  if (role.spec.mode == RoleMode::kReplicated) {
    // A replica stays on its node (its data is there). The primary's loss moves the primary to
    // the most advanced replica; a replica whose node stays down (or is drained) is rebuilt
    // on another node; a rebuilt one joins the quorum once it has caught up.
    if (ActiveOp(role.spec.name) != nullptr) return;
    if (inst.name != role.primary) {
      if (drained) {
        Rebuild(role, inst, "node " + inst.node + " is drained");
      } else if (declared_down &&
                 clock_.Now() >= SilentSince(inst.node) + role.spec.replication.rebuild_after) {
        Rebuild(role, inst,
                "node " + inst.node + " has been down for " +
                    std::to_string(ToMs(clock_.Now() - SilentSince(inst.node))) + "ms");
      } else if (inst.replica == wire::ReplicaRole::kBuilding && o != nullptr && o->replica &&
                 o->replica->epoch == role.epoch && o->replica->state == "streaming") {
        InstanceRecord r = inst;
        r.replica = wire::ReplicaRole::kSecondary;
        PutInstance(r);
        Emit("replica-joined",
             "replica " + inst.name + " on node " + inst.node + " has caught up (position " +
                 std::to_string(o->replica->position.epoch) + ":" +
                 std::to_string(o->replica->position.index) + ") and joins the quorum",
             {{"role", role.spec.name}, {"instance", inst.name}, {"node", inst.node}});
      }
      return;
    }
    if (declared_down) {
      StartReconfiguration(role, "node " + inst.node + " of primary " + inst.name + " is down",
                           false, "", false);
    } else if (drained) {
      StartReconfiguration(role, "node " + inst.node + " is drained", true,
                           SwitchoverTarget(role.spec.name), false);
    } else if (crashed) {
      StartReconfiguration(role,
                           "primary " + inst.name + " failed (state " +
                               std::string(wire::InstanceStateName(o->state)) + ", restarts " +
                               std::to_string(o->restarts) + ")",
                           false, "", false);
    }
    return;
  }
  if (role.spec.mode != RoleMode::kActivePassive) {
    if (declared_down) {
      Relocate(role, inst, "node " + inst.node + " is down");
    } else if (drained) {
      Relocate(role, inst, "node " + inst.node + " is drained");
    } else if (crashed) {
      // During a rollout a crashing new version is the rollout's to judge (it rolls back).
      const Operation* op = ActiveOp(role.spec.name);
      if (op == nullptr || op->kind() != wire::OpKind::kRollout) {
        Relocate(role, inst, "restart limit reached on node " + inst.node, /*crash_loop=*/true);
      }
    }
    return;
  }
  if (ActiveOp(role.spec.name) != nullptr) return;
  if (inst.name == role.primary) {
    if (declared_down) {
      StartFailover(role, "node " + inst.node + " of primary " + inst.name + " is down", false, "");
    } else if (drained) {
      StartFailover(role, "node " + inst.node + " is drained", true, "");
    } else if (crashed) {
      // Liveness failures are the agent's to act on first (restart in place, per the
      // policy); the primary moves once the agent gives up or the restarts pass the limit.
      StartFailover(role,
                    "primary " + inst.name + " failed (state " +
                        std::string(wire::InstanceStateName(o->state)) + ", liveness " +
                        std::string(wire::LivenessName(o->liveness)) + ", restarts " +
                        std::to_string(o->restarts) +
                        (o->last_exit.empty() ? "" : ", last exit: " + o->last_exit) + ")",
                    false, "");
    }
  } else if (drained) {
    Relocate(role, inst, "node " + inst.node + " is drained");
  }
  // A standby on a down node stays: when the node returns it is a standby again.
}

// The replica `inst` is given up with its node: a new one, building, on another node copies
// the primary's data; the old record goes, so that the old node, back, stops it rather than
// bringing it back as a voter (its data stays on that node's disk).
void Controller::Rebuild(RoleRecord& role, const InstanceRecord& inst, const std::string& why) {
  const std::string rname = role.spec.name;
  std::set<std::string> exclude;
  std::set<int> ordinals;
  for (const auto& name : FoundOrEmpty(by_role_, rname)) {
    exclude.insert(instances_.at(name).node);
    ordinals.insert(instances_.at(name).ordinal);
  }
  auto node = Place(rname, "", exclude);
  if (!node) {
    if (warned_.insert("unrebuildable/" + inst.name).second) {
      Emit("unplaceable",
           "role " + rname + ": replica " + inst.name + " cannot be rebuilt (" + why +
               "): no live node with room and without a replica of the role",
           {{"role", rname}, {"instance", inst.name}});
    }
    return;
  }
  warned_.erase("unrebuildable/" + inst.name);
  int ord = 0;
  while (ordinals.count(ord)) ++ord;
  InstanceRecord r;
  r.name = rname + "-" + std::to_string(ord);
  r.role = rname;
  r.ordinal = ord;
  r.node = *node;
  r.port = PortFor(role.spec, *node, "");
  r.epoch = role.epoch;
  r.revision = role.revision;
  r.replica = wire::ReplicaRole::kBuilding;
  r.created_ms = WallMs(clock_);
  const std::string old = inst.name, old_node = inst.node;
  DeleteInstance(old);
  PutInstance(r);
  Emit("replica-rebuilding",
       "replica " + old + " on node " + old_node + " is given up (" + why + "): " + r.name +
           " is rebuilt on node " + r.node + " from the primary " + role.primary,
       {{"role", rname}, {"instance", r.name}, {"node", r.node}});
}

TimePoint Controller::SilentSince(const std::string& node) const {
  const NodeObservation* obs = Observation(node);
  return obs != nullptr ? obs->last_heartbeat : started_at_;
}

int Controller::CarriedRestarts(const RoleRecord& role, const InstanceRecord& inst) const {
  if (inst.crash_restarts <= 0) return 0;
  return WallMs(clock_) - inst.crash_moved_ms < ToMs(role.spec.restart.window) ? inst.crash_restarts
                                                                               : 0;
}

bool Controller::Relocate(const RoleRecord& role, InstanceRecord& inst, const std::string& why,
                          bool crash_loop) {
  auto node = Place(role.spec.name, inst.name, {inst.node});
  if (!node) {
    if (warned_.insert("relocate/" + inst.name).second) {
      Emit("unplaceable", "cannot relocate " + inst.name + " (" + why + "): no live node with room",
           {{"role", role.spec.name}, {"instance", inst.name}});
    }
    return false;
  }
  warned_.erase("relocate/" + inst.name);
  InstanceRecord r = inst;
  std::string from = r.node;
  r.node = *node;
  r.port = PortFor(role.spec, *node, r.name);
  if (role.spec.mode == RoleMode::kActivePassive && r.name != role.primary) {
    r.run = false;
    r.volume = false;
  }
  if (crash_loop) {
    // The agent on the next node starts it after the backoff these restarts earned, so a
    // crash loop does not start over at backoff_initial on every node.
    auto t = restarts_.find(r.name);
    const int here = t == restarts_.end() ? 0 : static_cast<int>(t->second.times.size());
    r.crash_restarts = CarriedRestarts(role, inst) + std::max(here, 1);
    r.crash_moved_ms = WallMs(clock_);
  }
  restarts_.erase(r.name);
  PutInstance(r);
  Emit("relocated",
       "instance " + r.name + " relocated from " + from + " to " + r.node + ": " + why +
           (crash_loop ? " (" + std::to_string(r.crash_restarts) +
                             " restarts carried: the backoff continues)"
                       : ""),
       {{"role", role.spec.name}, {"instance", r.name}, {"node", r.node}});
  return true;
}

// Leases and nodes stay as they are during a pass: the live nodes are listed once, at its first
// placement, and PutInstance / DeleteInstance keep their loads from then on.
const Controller::PlacementPass& Controller::Pass() const {
  if (!placement_pass_) {
    placement_pass_.emplace();
    placement_pass_->candidates = LiveCandidates("", {});
    for (size_t i = 0; i < placement_pass_->candidates.size(); ++i) {
      placement_pass_->index.emplace(placement_pass_->candidates[i].name, i);
    }
  }
  return *placement_pass_;
}

std::vector<NodeCandidate> Controller::LiveCandidates(const std::string& moving,
                                                      const std::set<std::string>& exclude) const {
  std::vector<NodeCandidate> candidates;
  for (const auto& [name, n] : nodes_) {
    if (n.down || n.drained || !node_leases_.Live(name) || exclude.count(name)) continue;
    int load = 0;
    auto bn = by_node_.find(name);
    if (bn != by_node_.end()) load = static_cast<int>(bn->second.size() - bn->second.count(moving));
    candidates.push_back({name, n.fault_domain, n.update_domain, n.capacity, load});
  }
  return candidates;
}

std::optional<std::string> Controller::Place(const std::string& role, const std::string& moving,
                                             const std::set<std::string>& exclude) const {
  // During a reconcile pass the live nodes are listed once (placement_pass_); that list
  // counts the mover on its node, so it serves when the mover's node is excluded anyway.
  const InstanceRecord* mover = moving.empty() ? nullptr : &instances_.at(moving);
  const bool pass = in_pass_ && (mover == nullptr || exclude.count(mover->node));
  std::vector<NodeCandidate> own;
  if (!pass) own = LiveCandidates(moving, exclude);
  std::vector<Peer> peers;
  for (const auto& name : FoundOrEmpty(by_role_, role)) {
    if (name == moving) continue;
    const InstanceRecord& inst = instances_.at(name);
    auto ni = nodes_.find(inst.node);
    if (ni == nodes_.end()) {
      peers.push_back({inst.node, {}, {}});
    } else {
      peers.push_back({inst.node, ni->second.fault_domain, ni->second.update_domain});
    }
  }
  if (!pass) return PickNode(own, peers);
  return PickNode(Pass().candidates, peers, [&](std::string_view node) {
    for (const auto& e : exclude) {
      if (node == e) return true;
    }
    return false;
  });
}

int Controller::PortFor(const manifest::Role& spec, const std::string& node,
                        const std::string& moving) const {
  auto ni = nodes_.find(node);
  std::string address = ni == nodes_.end() ? "" : ni->second.address;
  std::set<int> used;
  for (const auto& other : FoundOrEmpty(nodes_at_address_, address)) {
    auto bn = by_node_.find(other);
    if (bn == by_node_.end()) continue;
    for (const auto& name : bn->second) {
      if (name != moving) used.insert(instances_.at(name).port);
    }
  }
  // Gateway listeners on the same address are taken too (embedded mode: all on loopback).
  if (!listen_ports_) {
    listen_ports_.emplace();
    for (const auto& [rname, r] : roles_) {
      if (!r.spec.endpoint) continue;
      auto [host, port] = SplitHostPort(r.spec.endpoint->listen);
      if (port > 0) (*listen_ports_)[host].insert(port);
    }
  }
  for (const char* host : {address.c_str(), "0.0.0.0", ""}) {
    auto lp = listen_ports_->find(host);
    if (lp != listen_ports_->end()) used.insert(lp->second.begin(), lp->second.end());
  }
  return PickPort(spec.port, used);
}

void Controller::TrackRestarts(const std::string& instance, const std::string& node,
                               const ObservedInstance& o) {
  RestartTrack& t = restarts_[instance];
  // Restarts older than the role's window no longer count (RestartsExceeded): dropped here.
  const RoleRecord* role = t.times.empty() ? nullptr : Role(instances_.at(instance).role);
  if (role != nullptr) {
    const TimePoint now = clock_.Now();
    while (!t.times.empty() && t.times.front() + role->spec.restart.window < now) {
      t.times.pop_front();
    }
  }
  if (t.last_seen >= 0 && o.restarts > t.last_seen) {
    int n = std::min(o.restarts - t.last_seen, 100);
    for (int i = 0; i < n; ++i) t.times.push_back(clock_.Now());
    Emit("instance-restarted",
         "instance " + instance + " restarted in place on node " + node + " (restart " +
             std::to_string(o.restarts) + "): " + (o.last_exit.empty() ? "?" : o.last_exit),
         {{"role", o.role}, {"instance", instance}, {"node", node}});
  }
  t.last_seen = o.restarts;
}

bool Controller::RestartsExceeded(const InstanceRecord& inst) const {
  auto ri = roles_.find(inst.role);
  auto ti = restarts_.find(inst.name);
  if (ri == roles_.end() || ti == restarts_.end()) return false;
  const manifest::Restart& policy = ri->second.spec.restart;
  const TimePoint now = clock_.Now();
  const auto& times = ti->second.times;  // oldest first; TrackRestarts drops the expired
  auto recent = std::find_if(times.begin(), times.end(),
                             [&](TimePoint t) { return t + policy.window >= now; });
  return static_cast<int>(times.end() - recent) > policy.max_restarts;
}

bool Controller::InstanceReady(const RoleRecord& role, const InstanceRecord& inst,
                               bool* busy) const {
  *busy = false;
  const ObservedInstance* o = Observed(inst);
  if (o == nullptr || NodeDown(inst.node) || o->state != wire::InstanceState::kRunning)
    return false;
  if (o->epoch != 0 && o->epoch < inst.epoch) return false;
  *busy = o->readiness == wire::Readiness::kBusy;
  if (SpecFor(role, inst).probes.readiness)
    return o->readiness == wire::Readiness::kReady || o->readiness == wire::Readiness::kBusy;
  return o->liveness != wire::Liveness::kFailed;
}

std::vector<wire::Assignment> Controller::BuildAssignments(const std::string& node) const {
  std::vector<wire::Assignment> out;
  auto bn = by_node_.find(node);
  if (bn == by_node_.end()) return out;
  for (const auto& name : bn->second) {
    const InstanceRecord& inst = instances_.at(name);
    auto ri = roles_.find(inst.role);
    if (ri == roles_.end()) continue;
    const manifest::Role& spec = SpecFor(ri->second, inst);  // mid-rollout: old or new
    SpecHashes& hashes = spec_hashes_[inst.role][&spec != &ri->second.spec];
    if (hashes.before.empty()) {
      // What the hash covers, written as the stored role spec writes it: an upgraded
      // controller must hash a role as the one before did, or every instance would restart.
      // (user and group only when set: the hashes of roles without them stay as they were.)
      // The first "port":-1 is the port's: the members before it (args, command, env, group)
      // hold strings, and the probes' ports come after it.
      json hashed = RoleSpecHashedToJson(spec);
      hashed["port"] = -1;
      const std::string text = Dump(hashed);
      const size_t at = text.find("\"port\":-1");
      hashes.before = text.substr(0, at + 7);
      hashes.after = text.substr(at + 9);
    }
    std::string& hash = hashes.by_port[inst.port];
    if (hash.empty()) hash = StableHash(hashes.before + std::to_string(inst.port) + hashes.after);
    wire::Assignment& a = out.emplace_back();
    a.instance = inst.name;
    a.role = inst.role;
    a.mode = spec.mode;
    a.run = inst.run;
    a.epoch = static_cast<uint64_t>(inst.epoch);
    a.command = spec.command;
    a.args = spec.args;
    a.env = spec.env;
    a.port = inst.port;
    a.spec_hash = hash;
    a.stop_grace = spec.stop_grace;
    a.probes = spec.probes;
    a.restart = spec.restart;
    a.resources = spec.resources;
    if (inst.volume) a.volume = spec.volume;
    a.user = spec.user;
    a.group = spec.group;
    a.prior_restarts = CarriedRestarts(ri->second, inst);
    a.drain = spec.drain;
    if (inst.replica) {
      a.replica = ReplicaConfigFor(ri->second, inst);
      a.replica_hook = spec.replication.hook;
    }
  }
  return out;
}

wire::ReplicaConfig Controller::ReplicaConfigFor(const RoleRecord& role,
                                                 const InstanceRecord& inst) const {
  wire::ReplicaConfig c;
  c.instance = inst.name;
  c.role = inst.replica.value_or(wire::ReplicaRole::kBuilding);
  c.epoch = role.epoch;
  c.quorum = role.spec.replication.QuorumOf(role.spec.instances);
  for (const auto& name : FoundOrEmpty(by_role_, role.spec.name)) {
    const InstanceRecord& r = instances_.at(name);
    if (!r.replica) continue;
    auto node = nodes_.find(r.node);
    wire::ReplicaMember m{r.name,
                          (node == nodes_.end() ? std::string() : node->second.address) + ":" +
                              std::to_string(r.port),
                          *r.replica};
    if (r.name == role.primary && r.replica == wire::ReplicaRole::kPrimary) c.primary = m;
    c.replicas.push_back(std::move(m));
  }
  return c;
}

bool Controller::ReplicaServes(const RoleRecord& role, const InstanceRecord& inst) const {
  const ObservedInstance* o = Observed(inst);
  return o != nullptr && o->replica && o->replica->role == wire::ReplicaRole::kPrimary &&
         o->replica->epoch == role.epoch;
}

std::vector<std::string> Controller::ResolveAllow(const std::vector<std::string>& allow) const {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& entry : allow) {
    if (IsAddressLike(entry)) {
      if (seen.insert(entry).second) out.push_back(entry);
      continue;
    }
    std::set<std::string> resolved;  // a role name: the addresses of its nodes
    for (const auto& name : FoundOrEmpty(by_role_, entry)) {
      const InstanceRecord& inst = instances_.at(name);
      auto ni = nodes_.find(inst.node);
      if (ni == nodes_.end() || ni->second.address.empty()) continue;
      const std::string& a = ni->second.address;
      resolved.insert(a + (a.find(':') != std::string::npos ? "/128" : "/32"));
    }
    for (const auto& cidr : resolved) {
      if (seen.insert(cidr).second) out.push_back(cidr);
    }
  }
  return out;
}

bool Controller::HandingOver(const RoleRecord& role, const InstanceRecord& primary) const {
  const Operation* op = ActiveOp(role.spec.name);
  return op != nullptr && op->kind() != wire::OpKind::kRollout && op->failover().planned &&
         op->failover().old_primary == primary.name &&
         (op->step == "fence" || op->step == "stop") && !NodeDown(primary.node);
}

std::optional<wire::RouteEndpoint> Controller::BuildEndpoint(const RoleRecord& role) const {
  const std::string& rname = role.spec.name;
  if (!role.spec.endpoint) return std::nullopt;
  const bool ap = role.spec.mode == RoleMode::kActivePassive;
  const bool replicated = role.spec.mode == RoleMode::kReplicated;
  wire::RouteEndpoint ep;
  ep.role = rname;
  // A replicated role is routed as an active-passive one: to its primary alone.
  ep.mode = ap || replicated ? wire::RoutingMode::kActivePassive : wire::RoutingMode::kLoadBalanced;
  ep.listen = role.spec.endpoint->listen;
  // A list whose roles have no node yet resolves to nothing: nobody, not everybody.
  if (!role.spec.endpoint->allow.empty()) ep.allow = ResolveAllow(role.spec.endpoint->allow);
  ep.epoch = role.epoch;
  auto backend = [&](const InstanceRecord& inst, bool ready, bool busy) {
    wire::RouteBackend b;
    b.instance = inst.name;
    b.node = inst.node;
    b.address = nodes_.at(inst.node).address;
    b.port = inst.port;
    b.epoch = inst.epoch;
    b.ready = ready;
    b.busy = busy;
    return b;
  };
  auto add = [&](const InstanceRecord& inst) {
    if (NodeDown(inst.node)) return;
    bool busy = false;
    // Out of rotation (a rollout drains it): listed, never routable. A replicated primary
    // only once it says it is the primary of the role's epoch (it takes writes).
    bool ready = InstanceReady(role, inst, &busy) && inst.routed &&
                 (!replicated || ReplicaServes(role, inst));
    // A controller that just started has not heard this (live-leased) node yet: what its
    // instances do is unknown, not "not ready". Publishing them unready would empty every
    // gateway's rotation at each controller restart; they keep it until the node reports
    // (its first heartbeat or its lease expiry republishes the routes).
    if (!ready && inst.run && inst.routed && Observation(inst.node) == nullptr &&
        clock_.Now() < started_at_ + opts_.lease_ttl) {
      ready = true;
    }
    ep.backends.push_back(backend(inst, ready, busy));
  };
  if (replicated) {
    auto pi = instances_.find(role.primary);
    if (role.routed && pi != instances_.end() && pi->second.replica == wire::ReplicaRole::kPrimary)
      add(pi->second);
  } else if (ap) {
    auto pi = instances_.find(role.primary);
    if (role.routed && pi != instances_.end() && pi->second.run) {
      add(pi->second);
    } else if (pi != instances_.end() && HandingOver(role, pi->second)) {
      wire::RouteBackend b = backend(pi->second, false, false);
      b.handing_over = true;
      ep.backends.push_back(std::move(b));
    }
  } else if (auto br = by_role_.find(rname); br != by_role_.end()) {
    for (const auto& name : br->second) {
      const InstanceRecord& inst = instances_.at(name);
      if (inst.run) add(inst);
    }
  }
  return ep;
}

}  // namespace hafab::controller
