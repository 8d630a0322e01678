#include "controller/controller.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstring>
#include <variant>

#include "core/fnv.h"
#include "core/json.h"
#include "manifest/limits.h"

namespace hafab::controller {

using nlohmann::json;

namespace {

constexpr size_t kEventsInMemory = 2000;

// The node a running failover holds fenced (old_node_fenced), or "".
std::string FencedNode(const Operation& op) {
  const FailoverOp* f = std::get_if<FailoverOp>(&op.part);
  return op.state == wire::OpState::kRunning && f != nullptr && f->old_node_fenced ? f->old_node
                                                                                   : "";
}

// Reads an optional member of a JSON object into `out`, naming `path.key` on a type error.
template <typename T>
Status Read(const json& obj, const char* key, const std::string& path, T* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::Ok();
  const std::string where = path.empty() ? key : path + "." + key;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return Status::InvalidArgument(where + ": must be a string");
  } else if constexpr (std::is_same_v<T, double>) {
    if (!it->is_number()) return Status::InvalidArgument(where + ": must be a number");
  } else {
    if (!it->is_number_integer()) return Status::InvalidArgument(where + ": must be an integer");
  }
  *out = it->get<T>();
  return Status::Ok();
}

std::string PosString(const manifest::SourcePos& p) {
  if (p.line <= 0) return p.file.empty() ? "manifest" : p.file;
  return p.file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column);
}

}  // namespace

std::string StableHash(const std::string& text) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, Fnv1a().Add(text).value());
  return buf;
}

Controller::Controller(store::Store& store, Clock& clock, provider::Provider* provider,
                       ControllerOptions opts)
    : store_(store), clock_(clock), provider_(provider), opts_(std::move(opts)) {}

Status Controller::Start() {
  HAFAB_RETURN_IF_ERROR(Load());
  started_at_ = clock_.Now();
  id_ = "ctl-" + std::to_string(NextSeq());
  // A new controller knows nothing of liveness: every node that was up gets one full TTL
  // before it can be declared down, and every known gateway must acknowledge (or let its
  // lease expire) before a fence completes. (With the ring a node's keep-alive may be due
  // later: FirstLeaseEnd gives it that.)
  const TimePoint first_lease_end = started_at_ + opts_.lease_ttl + opts_.takeover_grace;
  // Every node gets a new generation; its list is built when its agent asks for it (and kept
  // then as the published one), not all at once here.
  for (const auto& [name, n] : nodes_) {
    if (n.down) down_at_start_.insert(name);
    if (!n.down) RenewNodeLease(name, FirstLeaseEnd(name));
    node_generation_[name] = NextSeq();
  }
  dirty_nodes_.clear();
  for (const auto& g : gateways_) {
    gateway_leases_.Renew(g, first_lease_end);
    gateway_acked_[g] = 0;
  }
  for (auto& [id, op] : ops_) {
    if (op.state != wire::OpState::kRunning) continue;
    std::string prev = op.owner;
    op.owner = id_;
    PutOp(op);
    Emit("op-resumed",
         "resuming " + std::string(wire::OpKindName(op.kind())) + " of " + op.role + " at step " +
             op.step + " (was owned by " + prev + ")",
         {{"op", op.id}, {"role", op.role}});
  }
  Emit("controller-started",
       "controller " + id_ + " started" + (opts_.started_as.empty() ? "" : " " + opts_.started_as),
       {});
  HAFAB_RETURN_IF_ERROR(Commit());
  Publish();
  return Status::Ok();
}

Status Controller::Load() {
  // Read first: a store that cannot be read leaves memory as it was (LeaseFromMemory and the
  // views keep working from it).
  HAFAB_ASSIGN_OR_RETURN(store::RangeResult all, store_.Range("/hafab/"));
  changed_since_reconcile_ = true;
  recheck_all_ = true;
  orphans_possible_ = true;
  gc_all_nodes_ = true;
  recheck_roles_.clear();
  recheck_.clear();
  // The roles as they were: their spec hashes are kept for the roles that come back unchanged.
  NameMap<RoleRecord> held;
  held.swap(roles_);
  auto held_hashes = std::move(spec_hashes_);
  spec_hashes_.clear();
  listen_ports_.reset();
  instances_.clear();
  by_node_.clear();
  by_role_.clear();
  nodes_.clear();
  nodes_at_address_.clear();
  gateways_.clear();
  ops_.clear();
  running_ops_.clear();
  pending_.clear();
  // A decision record that cannot be read stops the load, naming its key: acting on a
  // partial view (a role without its instances, a failover without its journal) could start
  // a second primary. History (events, availability) is logged and skipped.
  auto corrupt = [](const std::string& key, const std::string& why) {
    return Status::Internal("store: " + key + ": " + why);
  };
  // Of the events (history, in id order) only the newest kEventsInMemory are read; the ids of
  // the older ones, which GC deletes in turn, come from their keys.
  stored_events_.clear();
  size_t events_seen = 0;
  const size_t events_stored = static_cast<size_t>(
      std::count_if(all.kvs.begin(), all.kvs.end(),
                    [](const store::KeyValue& kv) { return kv.key.starts_with(kEventsPrefix); }));
  for (const auto& kv : all.kvs) {
    if (kv.key.starts_with(kEventsPrefix) && events_stored - events_seen++ > kEventsInMemory) {
      if (auto id = EventIdOfKey(kv.key)) {
        stored_events_.push_back(*id);
        continue;
      }
    }
    json j = json::parse(kv.value, nullptr, false);
    const bool history =
        kv.key.starts_with(kEventsPrefix) || kv.key.starts_with(kAvailabilityPrefix);
    if (j.is_discarded()) {
      if (!history) return corrupt(kv.key, "not JSON");
      spdlog::error("store: {} is not JSON; ignored", kv.key);
      continue;
    }
    if (kv.key == kSeqKey) {
      if (!j.is_number_integer()) return corrupt(kv.key, "not an integer");
      seq_ = std::max(seq_, j.get<int64_t>());
      seq_floor_ = seq_;
    } else if (kv.key.starts_with(kRolesPrefix)) {
      auto r = RoleFromJson(j);
      if (!r.ok()) return corrupt(kv.key, r.status().message());
      roles_[r->spec.name] = std::move(*r);
    } else if (kv.key.starts_with(kInstancesPrefix)) {
      auto r = InstanceFromJson(j);
      if (!r.ok()) return corrupt(kv.key, r.status().message());
      by_node_[r->node].insert(r->name);
      by_role_[r->role].insert(r->name);
      instances_[r->name] = std::move(*r);
    } else if (kv.key.starts_with(kNodesPrefix)) {
      auto r = NodeFromJson(j);
      if (!r.ok()) return corrupt(kv.key, r.status().message());
      nodes_at_address_[r->address].insert(r->name);
      nodes_[r->name] = std::move(*r);
    } else if (kv.key.starts_with(kGatewaysPrefix)) {
      gateways_.insert(kv.key.substr(std::strlen(kGatewaysPrefix)));
    } else if (kv.key.starts_with(kOpsPrefix)) {
      auto r = OperationFromJson(j);
      if (!r.ok()) return corrupt(kv.key, r.status().message());
      if (r->state == wire::OpState::kRunning) running_ops_[r->role] = r->id;
      ops_[r->id] = *r;
    } else if (kv.key.starts_with(kAvailabilityPrefix)) {
      // A role tracked in memory keeps its record (steady state is not written).
      auto log = AvailabilityLog::FromJson(j);
      if (log.ok()) {
        availability_.emplace(kv.key.substr(std::strlen(kAvailabilityPrefix)), *log);
      } else {
        spdlog::error("store: {}: {}; ignored", kv.key, log.status().ToString());
      }
    } else if (kv.key.starts_with(kEventsPrefix)) {
      auto r = EventFromJson(j);
      if (!r.ok()) {
        spdlog::error("store: {}: {}; ignored", kv.key, r.status().ToString());
        continue;
      }
      stored_events_.push_back(r->id);
      if (events_.empty() || events_.back().id < r->id) events_.push_back(*r);
    }
  }
  while (events_.size() > kEventsInMemory) events_.pop_front();
  for (auto& [name, hashes] : held_hashes) {
    auto was = held.find(name);
    auto is = roles_.find(name);
    if (was != held.end() && is != roles_.end() && was->second == is->second) {
      spec_hashes_.emplace(name, std::move(hashes));
    }
  }
  stored_down_.clear();
  stored_fenced_.clear();
  stored_gateways_ = gateways_;
  for (const auto& [name, n] : nodes_) {
    if (n.down) stored_down_.insert(name);
  }
  for (const auto& [id, op] : ops_) {
    if (std::string node = FencedNode(op); !node.empty()) stored_fenced_[id] = node;
  }
  AllRoutesDirty();
  availability_all_ = true;  // the records read are judged again with the next routes
  for (const auto& [n, _] : nodes_) dirty_nodes_.insert(n);
  return Status::Ok();
}

// Sequence numbers (generations, routes versions, event and operation ids) grow across
// restarts: the store keeps a floor above every number handed out, raised 1000 at a time.
int64_t Controller::NextSeq() {
  ++seq_;
  if (seq_ >= seq_floor_ && !crashed_) {
    seq_floor_ = seq_ + 1000;
    store::Txn txn;
    txn.compares = opts_.write_guard;
    txn.success = {store::Op::Put(kSeqKey, std::to_string(seq_floor_))};
    auto r = store_.Commit(txn);
    if (!r.ok()) spdlog::error("store: cannot raise the sequence floor: {}", r.status().ToString());
    if (r.ok() && !r->succeeded) Depose();
  }
  return seq_;
}

bool Controller::PutRole(const RoleRecord& r) {
  auto it = roles_.find(r.spec.name);
  if (it != roles_.end() && it->second == r) return false;
  json j = ToJson(r);
  auto listen = [](const RoleRecord& role) {
    return role.spec.endpoint ? role.spec.endpoint->listen : std::string();
  };
  if (it == roles_.end() || listen(it->second) != listen(r)) listen_ports_.reset();
  // The hashes depend on the specs only (a failover's new epoch keeps them).
  if (it == roles_.end() || it->second.spec != r.spec || it->second.previous != r.previous) {
    spec_hashes_.erase(r.spec.name);
  }
  roles_[r.spec.name] = r;
  pending_.push_back(store::Op::Put(kRolesPrefix + r.spec.name, Dump(j)));
  if (r.spec.endpoint) {
    for (const auto& entry : r.spec.endpoint->allow) allow_referrers_[entry].insert(r.spec.name);
  }
  MarkRoleDirty(r.spec.name);
  RecheckRole(r.spec.name);
  return true;
}

void Controller::DeleteRole(const std::string& name) {
  if (!roles_.erase(name)) return;
  orphans_possible_ = true;
  pending_.push_back(store::Op::Delete(kRolesPrefix + name));
  listen_ports_.reset();
  spec_hashes_.erase(name);
  RoutesDirty(name);
}

bool Controller::PutInstance(const InstanceRecord& r) {
  auto it = instances_.find(r.name);
  json j = ToJson(r);
  if (it != instances_.end()) {
    if (ToJson(it->second) == j) return false;
    by_node_[it->second.node].erase(r.name);
    PassLoad(it->second.node, -1);
    dirty_nodes_.insert(it->second.node);
    gc_nodes_.insert(it->second.node);
  } else if (in_health_pass_ && !deleted_in_pass_.count(r.name)) {
    created_in_pass_.insert(r.name);
  }
  Recheck(r.role, r.name);
  instances_[r.name] = r;
  by_node_[r.node].insert(r.name);
  PassLoad(r.node, +1);
  by_role_[r.role].insert(r.name);
  dirty_nodes_.insert(r.node);
  RoutesDirty(r.role);
  // Every replica's configuration lists them all: each of their nodes hears of the change.
  if (r.replica) MarkRoleDirty(r.role);
  pending_.push_back(store::Op::Put(kInstancesPrefix + r.name, Dump(j)));
  return true;
}

void Controller::PassLoad(const std::string& node, int delta) {
  if (!placement_pass_) return;
  auto it = placement_pass_->index.find(node);
  if (it != placement_pass_->index.end()) placement_pass_->candidates[it->second].load += delta;
}

void Controller::DeleteInstance(const std::string& name) {
  auto it = instances_.find(name);
  if (it == instances_.end()) return;
  by_node_[it->second.node].erase(name);
  by_role_[it->second.role].erase(name);
  gc_nodes_.insert(it->second.node);
  PassLoad(it->second.node, -1);
  dirty_nodes_.insert(it->second.node);
  RoutesDirty(it->second.role);
  const std::string role = it->second.role;
  const bool replica = it->second.replica.has_value();
  if (in_health_pass_) deleted_in_pass_.insert(name);
  recheck_roles_.insert(role);
  instances_.erase(it);
  if (replica) MarkRoleDirty(role);
  restarts_.erase(name);
  pending_.push_back(store::Op::Delete(kInstancesPrefix + name));
}

void Controller::PutNode(const NodeRecord& r) {
  auto it = nodes_.find(r.name);
  if (it != nodes_.end() && it->second == r) return;
  if (it == nodes_.end() || it->second.down != r.down || it->second.drained != r.drained ||
      it->second.address != r.address) {
    ring_dirty_ = true;
  }
  json j = ToJson(r);
  if (it != nodes_.end()) nodes_at_address_[it->second.address].erase(r.name);
  nodes_at_address_[r.address].insert(r.name);
  nodes_[r.name] = r;
  dirty_nodes_.insert(r.name);
  RoutesDirtyOnNode(r.name);
  RecheckNode(r.name);
  for (const auto& name : FoundOrEmpty(by_node_, r.name)) {
    const InstanceRecord& inst = instances_.at(name);
    if (inst.replica) MarkRoleDirty(inst.role);  // its address is in every replica's config
  }
  pending_.push_back(store::Op::Put(kNodesPrefix + r.name, Dump(j)));
  pending_down_[r.name] = r.down;
}

void Controller::PutOp(const Operation& op) {
  Operation& slot = ops_[op.id];
  if (&slot != &op) slot = op;
  pending_fenced_[op.id] = FencedNode(op);
  RoutesDirty(op.role);  // a planned switchover's old primary hands over (HandingOver)
  RecheckRole(op.role);
  if (op.state == wire::OpState::kRunning) {
    running_ops_[op.role] = op.id;
  } else if (auto it = running_ops_.find(op.role);
             it != running_ops_.end() && it->second == op.id) {
    running_ops_.erase(it);
  }
  pending_.push_back(store::Op::Put(kOpsPrefix + op.id, Dump(ToJson(op))));
}

void Controller::Emit(const std::string& type, const std::string& message,
                      std::map<std::string, std::string> fields) {
  Event e;
  e.id = NextSeq();
  e.time_ms = WallMs(clock_);
  e.type = type;
  e.message = message;
  e.fields = std::move(fields);
  spdlog::info("event {}: {}", type, message);
  pending_.push_back(store::Op::Put(EventKey(e.id), Dump(ToJson(e))));
  stored_events_.push_back(e.id);
  events_.push_back(std::move(e));
  while (events_.size() > kEventsInMemory) events_.pop_front();
  if (listener_.event_added) listener_.event_added();
}

Status Controller::Commit() {
  auto down = std::move(pending_down_);
  auto fenced = std::move(pending_fenced_);
  auto gateways = std::move(pending_gateways_);
  pending_down_.clear();
  pending_fenced_.clear();
  pending_gateways_.clear();
  if (crashed_) {
    pending_.clear();
    return Status::Unavailable("controller crashed (test)");
  }
  if (reload_needed_) {
    // Memory is ahead of the store since an earlier commit failed: what was computed from
    // it is dropped, not written over the store's truth.
    for (const store::Op& op : pending_) unsure_keys_.insert(op.key);
    pending_.clear();
    return Status::Unavailable("store: reloading state after a failed commit");
  }
  if (pending_.empty()) return Status::Ok();
  changed_since_reconcile_ = true;
  // A key written twice since the last commit: only the last write counts (a store
  // transaction may name each key once, as in etcd).
  store::Txn txn;
  txn.compares = opts_.write_guard;
  std::set<std::string> seen;
  for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) {
    if (seen.insert(it->key).second) txn.success.push_back(std::move(*it));
  }
  std::reverse(txn.success.begin(), txn.success.end());
  pending_.clear();
  const TimePoint began = clock_.Now();
  auto r = store_.Commit(txn);
  commit_seconds_.Observe(std::chrono::duration<double>(clock_.Now() - began).count());
  if (r.ok() && !r->succeeded) {
    Depose();
    return Status::Unavailable("not leader: another controller replica was elected");
  }
  if (r.ok()) {
    Committed(down, fenced, gateways);
    return Status::Ok();
  }
  spdlog::error("store commit failed ({}); reloading state from the store", r.status().ToString());
  for (const store::Op& op : txn.success) unsure_keys_.insert(op.key);
  ++failed_commits_;
  last_commit_error_ = r.status().ToString();
  reload_needed_ = true;
  return r.status();
}

void Controller::Committed(const std::map<std::string, bool>& down,
                           const std::map<std::string, std::string>& fenced,
                           const std::vector<std::string>& gateways) {
  for (const auto& [node, is_down] : down) {
    if (is_down) {
      stored_down_.insert(node);
    } else {
      stored_down_.erase(node);
    }
  }
  for (const auto& [id, node] : fenced) {
    if (node.empty()) {
      stored_fenced_.erase(id);
    } else {
      stored_fenced_[id] = node;
    }
  }
  stored_gateways_.insert(gateways.begin(), gateways.end());
}

void Controller::Depose() {
  spdlog::error(
      "controller {}: a write lost its leadership guard: another replica leads; "
      "this one stops acting",
      id_);
  deposed_ = true;
  crashed_ = true;  // nothing more is persisted or published
  pending_.clear();
}

Status Controller::ReloadIfNeeded() {
  if (!reload_needed_) return Status::Ok();
  // A few keys are read one by one; many (a failed load's publish) in one range.
  const bool by_key = unsure_keys_.size() <= kReloadKeysAtMost;
  Status st = by_key ? ReloadUnsureKeys() : Load();
  if (!st.ok()) {
    spdlog::error("store reload failed: {}", st.ToString());
    return st;
  }
  ++(by_key ? reloads_keys_ : reloads_full_);
  unsure_keys_.clear();
  reload_needed_ = false;
  // A node whose expiry was not stored is up again in the store but has no lease left:
  // it expires again at once, so its failure is acted on, not forgotten.
  TimePoint now = clock_.Now();
  for (const auto& [name, n] : nodes_) {
    if (!n.down && !node_leases_.Live(name)) RenewNodeLease(name, now);
  }
  spdlog::info("state reloaded from the store after a failed commit");
  return Status::Ok();
}

Status Controller::ReloadUnsureKeys() {
  for (const store::Op& op : pending_) unsure_keys_.insert(op.key);
  unsure_keys_.insert(kSeqKey);  // a failed raise of the floor is not a failed commit
  // Everything is read and parsed before anything is put back.
  struct Restored {
    const std::string& key;
    bool stored = false;  // false: the store does not have it
    std::variant<std::monostate, int64_t, RoleRecord, InstanceRecord, NodeRecord, Operation> record;
  };
  std::vector<Restored> restored;
  for (const std::string& key : unsure_keys_) {
    auto kv = store_.Get(key);
    if (!kv.ok() && kv.status().code() != StatusCode::kNotFound) return kv.status();
    Restored& r = restored.emplace_back(Restored{key, false, {}});
    if (!kv.ok()) continue;
    r.stored = true;
    auto parse = [&](auto from_json) -> Status {
      json j = json::parse(kv->value, nullptr, false);
      if (j.is_discarded()) return Status::Internal("not JSON");
      auto parsed = from_json(j);
      if (!parsed.ok()) return parsed.status();
      r.record = std::move(*parsed);
      return Status::Ok();
    };
    Status st;  // history (events, availability) is not read: only whether the store has it
    if (key == kSeqKey) {
      st = parse([](const json& j) -> Result<int64_t> {
        if (!j.is_number_integer()) return Status::Internal("not an integer");
        return j.get<int64_t>();
      });
    } else if (key.starts_with(kRolesPrefix)) {
      st = parse(RoleFromJson);
    } else if (key.starts_with(kInstancesPrefix)) {
      st = parse(InstanceFromJson);
    } else if (key.starts_with(kNodesPrefix)) {
      st = parse(NodeFromJson);
    } else if (key.starts_with(kOpsPrefix)) {
      st = parse(OperationFromJson);
    }
    if (!st.ok()) return Status::Internal("store: " + key + ": " + st.message());
  }

  auto drop_pending = [this] {
    pending_.clear();
    pending_down_.clear();
    pending_fenced_.clear();
    pending_gateways_.clear();
  };
  drop_pending();  // their keys are unsure: restored below
  std::set<std::string> unstored_events;
  for (const Restored& r : restored) {
    auto name = [&](const char* prefix) { return r.key.substr(std::strlen(prefix)); };
    if (const auto* seq = std::get_if<int64_t>(&r.record)) {
      seq_ = std::max(seq_, *seq);
    } else if (const auto* role = std::get_if<RoleRecord>(&r.record)) {
      PutRole(*role);
    } else if (const auto* inst = std::get_if<InstanceRecord>(&r.record)) {
      PutInstance(*inst);
    } else if (const auto* node = std::get_if<NodeRecord>(&r.record)) {
      PutNode(*node);
    } else if (const auto* op = std::get_if<Operation>(&r.record)) {
      PutOp(*op);
    } else if (r.key.starts_with(kGatewaysPrefix)) {
      if (r.stored) {
        gateways_.insert(name(kGatewaysPrefix));
        stored_gateways_.insert(name(kGatewaysPrefix));
      } else {
        gateways_.erase(name(kGatewaysPrefix));
        stored_gateways_.erase(name(kGatewaysPrefix));
      }
    } else if (r.stored) {
      continue;  // history (events, availability): memory keeps what it has, as a full load
    } else if (r.key.starts_with(kRolesPrefix)) {
      DeleteRole(name(kRolesPrefix));
    } else if (r.key.starts_with(kInstancesPrefix)) {
      DeleteInstance(name(kInstancesPrefix));
    } else if (r.key.starts_with(kNodesPrefix)) {
      ForgetNode(name(kNodesPrefix));
    } else if (r.key.starts_with(kOpsPrefix)) {
      ForgetOp(name(kOpsPrefix));
    } else if (r.key.starts_with(kEventsPrefix)) {
      unstored_events.insert(r.key);
    }
  }
  // An event not stored stays in memory (as after a full load), and Gc does not delete it.
  if (!unstored_events.empty()) {
    std::erase_if(stored_events_,
                  [&](int64_t id) { return unstored_events.count(EventKey(id)) > 0; });
  }
  seq_floor_ = seq_;  // the next number raises the floor in the store again
  // What the Put and Delete above wrote is the store's own: it counts as committed.
  Committed(pending_down_, pending_fenced_, pending_gateways_);
  drop_pending();
  changed_since_reconcile_ = true;
  orphans_possible_ = true;
  return Status::Ok();
}

void Controller::ForgetNode(const std::string& name) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return;
  nodes_at_address_[it->second.address].erase(name);
  nodes_.erase(it);
  stored_down_.erase(name);
  ring_dirty_ = true;
  dirty_nodes_.insert(name);
  RoutesDirtyOnNode(name);
  RecheckNode(name);
}

void Controller::ForgetOp(const std::string& id) {
  auto it = ops_.find(id);
  if (it == ops_.end()) return;
  const std::string role = it->second.role;
  if (auto r = running_ops_.find(role); r != running_ops_.end() && r->second == id) {
    running_ops_.erase(r);
  }
  ops_.erase(it);
  stored_fenced_.erase(id);
  RoutesDirty(role);
  RecheckRole(role);
}

Status Controller::Reload() {
  events_.clear();
  stored_events_.clear();
  availability_.clear();
  return Load();
}

void Controller::Publish() {
  // After a failed commit nothing is published: agents and gateways only ever see what the
  // store holds (a stale leader's unstored failover must not reach them).
  if (crashed_ || reload_needed_) return;
  std::set<std::string> dirty;
  dirty.swap(dirty_nodes_);
  for (const auto& node : dirty) {
    std::vector<wire::Assignment> assignments = BuildAssignments(node);
    // Not cached (first time, or erased to re-send): a new generation even when empty.
    auto cached = assignments_cache_.find(node);
    if (cached != assignments_cache_.end() && cached->second == assignments &&
        node_generation_.count(node)) {
      continue;
    }
    assignments_cache_[node] = std::move(assignments);
    node_generation_[node] = NextSeq();
    adopted_.erase(node);
    if (listener_.assignments_changed) listener_.assignments_changed(node);
  }
  // Endpoints that changed get the new version as their revision (gateways compile only
  // those again); the others keep theirs.
  std::vector<std::string> changed;  // new or changed; a removal sets only routes_changed
  bool routes_changed = false;
  std::vector<wire::RouteEndpoint>& endpoints = routes_.endpoints;  // sorted by role
  if (all_routes_dirty_) {
    allow_referrers_.clear();
    std::vector<wire::RouteEndpoint> all;
    auto old = endpoints.begin();
    for (const auto& [name, role] : roles_) {
      if (role.spec.endpoint) {
        for (const auto& entry : role.spec.endpoint->allow) allow_referrers_[entry].insert(name);
      }
      auto e = BuildEndpoint(role);
      if (!e) continue;
      while (old != endpoints.end() && old->role < name) ++old;
      if (old != endpoints.end() && old->role == name) e->revision = old->revision;
      if (old == endpoints.end() || old->role != name || *old != *e) changed.push_back(name);
      all.push_back(std::move(*e));
    }
    routes_changed = !changed.empty() || all.size() != endpoints.size();
    if (routes_changed) endpoints = std::move(all);
    availability_all_ |= routes_changed;
  } else {
    for (const auto& name : dirty_routes_) {
      auto at = RouteOf(endpoints, name);
      const bool present = at != endpoints.end() && at->role == name;
      auto role = roles_.find(name);
      std::optional<wire::RouteEndpoint> e;
      if (role != roles_.end()) e = BuildEndpoint(role->second);
      if (!e) {
        if (present) {
          endpoints.erase(at);
          availability_dirty_.insert(name);
        }
        routes_changed |= present;
        continue;
      }
      if (present) e->revision = at->revision;
      if (!present) {
        endpoints.insert(at, std::move(*e));
      } else if (*at != *e) {
        *at = std::move(*e);
      } else {
        continue;
      }
      changed.push_back(name);
      availability_dirty_.insert(name);
      routes_changed = true;
    }
  }
  all_routes_dirty_ = false;
  dirty_routes_.clear();
  if (routes_changed || routes_version_ == 0) {
    routes_version_ = NextSeq();
    routes_.version = routes_version_;
    for (const auto& name : changed) {
      auto at = RouteOf(endpoints, name);
      if (at != endpoints.end() && at->role == name) at->revision = routes_version_;
    }
    const TimePoint now = clock_.Now();
    routes_published_[routes_version_] = now;
    while (routes_published_.size() > 1 &&
           routes_published_.begin()->second + opts_.lease_ttl < now) {
      routes_forgotten_ = routes_published_.begin()->first;
      routes_published_.erase(routes_published_.begin());
    }
    if (listener_.routes_changed) listener_.routes_changed();
  }
}

void Controller::MarkRoleDirty(const std::string& role) {
  RoutesDirty(role);
  auto br = by_role_.find(role);
  if (br == by_role_.end()) return;
  for (const auto& name : br->second) dirty_nodes_.insert(instances_.at(name).node);
}

void Controller::RoutesDirty(const std::string& role) {
  if (all_routes_dirty_ || !dirty_routes_.insert(role).second) return;
  auto refs = allow_referrers_.find(role);
  if (refs != allow_referrers_.end())
    dirty_routes_.insert(refs->second.begin(), refs->second.end());
}

void Controller::RoutesDirtyOnNode(const std::string& node) {
  if (all_routes_dirty_) return;
  auto bn = by_node_.find(node);
  if (bn == by_node_.end()) return;
  for (const auto& name : bn->second) RoutesDirty(instances_.at(name).role);
}

InstanceRecord* Controller::FindInstance(const std::string& name) {
  auto it = instances_.find(name);
  return it == instances_.end() ? nullptr : &it->second;
}

const NodeObservation* Controller::Observation(const std::string& node) const {
  auto it = observed_.find(node);
  return it == observed_.end() || !it->second.heard ? nullptr : &it->second;
}

const ObservedInstance* Controller::Observed(const InstanceRecord& inst) const {
  const NodeObservation* obs = Observation(inst.node);
  if (obs == nullptr) return nullptr;
  auto it = obs->instances.find(inst.name);
  return it == obs->instances.end() ? nullptr : &it->second;
}

bool Controller::NodeDown(const std::string& node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() || it->second.down || !node_leases_.Live(node);
}

bool Controller::NodeDeclaredDown(const std::string& node) const {
  auto it = nodes_.find(node);
  return it == nodes_.end() || it->second.down;
}

bool Controller::SilentPastMargin(const std::string& node) const {
  if (node_leases_.Live(node)) return false;
  const NodeObservation* obs = Observation(node);
  TimePoint lease_end = obs != nullptr               ? obs->lease_end
                        : down_at_start_.count(node) ? started_at_
                                                     : FirstLeaseEnd(node);
  return clock_.Now() >= lease_end + opts_.fence_margin;
}

void Controller::RenewNodeLease(const std::string& node, TimePoint deadline) {
  if (node_leases_.Renew(node, deadline)) gc_nodes_.insert(node);  // live again: Gc looks at it
}

void Controller::OnNodeExpired(const std::string& node) {
  auto it = nodes_.find(node);
  if (it == nodes_.end() || it->second.down) return;
  NodeRecord r = it->second;
  r.down = true;
  PutNode(r);
  const NodeObservation* obs = Observation(node);
  const Duration lease = obs != nullptr ? obs->lease_ttl : LeaseFor(node).first;
  Emit("node-down",
       "node " + node + " is down: no heartbeat for " + std::to_string(ToMs(lease)) + "ms",
       {{"node", node}});
}

Result<wire::HeartbeatAnswer> Controller::AgentHeartbeat(const std::string& node,
                                                         const wire::AgentHeartbeat& hb) {
  if (crashed_) return Status::Unavailable("controller stopping");
  if (Status st = ReloadIfNeeded(); !st.ok()) return LeaseFromMemory(node, st);
  const bool keepalive = hb.same_as != 0;
  auto held = observed_.find(node);
  if (keepalive) {
    if (held == observed_.end() || !held->second.heard || held->second.report != hb.same_as ||
        held->second.boot_id != hb.boot_id) {
      ++reports_requested_;
      return Status::Conflict("same_as: this controller does not hold report " +
                              std::to_string(hb.same_as) + " of node " + node +
                              "; send the full report");
    }
    ++agent_keepalives_;
  }
  ++agent_heartbeats_;
  NodeObservation& obs = held != observed_.end() ? held->second : observed_[node];
  if (!keepalive) {
    TakeReport(node, hb, obs);
    AdoptGeneration(node, hb.assignments_generation, hb.assignments_digest);
  }
  // The agent repeats an unacknowledged self-fence until a heartbeat is answered: once each.
  if (hb.fence && hb.fence->at != obs.last_fence) {
    obs.last_fence = hb.fence->at;
    std::string killed;
    for (const auto& name : hb.fence->killed) killed += (killed.empty() ? "" : ", ") + name;
    Emit("node-self-fenced",
         "node " + node + " fenced itself (" + hb.fence->reason + ")" +
             (killed.empty() ? "" : ", killing " + killed),
         {{"node", node}});
  }
  const TimePoint now = clock_.Now();
  const auto [lease, keepalive_interval] = LeaseFor(node);
  obs.heard = true;
  obs.last_heartbeat = now;
  obs.lease_ttl = lease;
  obs.lease_end = std::max(obs.lease_end, now + lease);
  auto ring_port = [](const std::optional<wire::RingEndpoint>& e) { return e ? e->port : 0; };
  if (ring_port(hb.ring_endpoint) != ring_port(obs.ring_endpoint)) {
    ring_dirty_ = true;  // its watchers learn the new port
  }
  obs.ring_endpoint = hb.ring_endpoint;

  RenewNodeLease(node, now + lease);
  if (opts_.ring_detector) {
    arbiter_.Heard(node);
    for (const wire::RingReport& r : hb.ring) arbiter_.Report(node, r);
  }
  // The node's agent takes this answer as a renewed lease: an operation's record that it was
  // silent past its margin no longer holds (committed below, before the answer leaves).
  for (const auto& [role, id] : running_ops_) {
    auto op = ops_.find(id);
    if (op == ops_.end()) continue;
    auto* f = std::get_if<FailoverOp>(&op->second.part);
    if (f != nullptr && f->old_node == node && f->old_node_fenced) {
      f->old_node_fenced = false;
      PutOp(op->second);
    }
  }
  auto label = [&](const char* key) {
    auto it = hb.labels.find(key);
    return it == hb.labels.end() ? std::string() : it->second;
  };
  auto it = nodes_.find(node);
  const bool known = it != nodes_.end();
  const bool was_down = known && it->second.down;
  // A keep-alive of a node that is up changes nothing in its record (it carries no address
  // and no labels).
  if (!keepalive || !known || was_down) {
    NodeRecord rec;
    if (known) rec = it->second;
    rec.name = node;
    if (!hb.address.empty()) rec.address = hb.address;
    if (const std::string fd = label("fault_domain"); !fd.empty()) rec.fault_domain = fd;
    if (const std::string ud = label("update_domain"); !ud.empty()) rec.update_domain = ud;
    rec.down = false;
    PutNode(rec);
  }
  if (!known) Emit("node-joined", "node " + node + " joined", {{"node", node}});
  if (was_down) Emit("node-up", "node " + node + " is back", {{"node", node}});

  // Failures of this node's instances are acted on now, not at the next reconcile (a
  // keep-alive reports none: the reconcile pass covers what only time changes).
  if (!keepalive || was_down) {
    std::set<std::string> here = by_node_[node];  // a copy: relocation edits the index
    for (const auto& name : here) {
      auto ii = instances_.find(name);
      if (ii == instances_.end()) continue;
      auto ri = roles_.find(ii->second.role);
      if (ri != roles_.end()) CheckHealth(ri->second, ii->second);
    }
  }
  AdvanceOps();
  Status st = Commit();
  Publish();
  if (!st.ok()) return LeaseFromMemory(node, st);
  return wire::HeartbeatAnswer{lease, static_cast<uint64_t>(AssignmentsGeneration(node)),
                               std::nullopt, keepalive_interval};
}

void Controller::TakeReport(const std::string& node, const wire::AgentHeartbeat& hb,
                            NodeObservation& obs) {
  gc_nodes_.insert(node);
  std::map<std::string, ObservedInstance> instances;
  for (const wire::InstanceReport& r : hb.instances) instances[r.instance] = r;
  // Anything the gateway shows (state, readiness, epoch) changes the routing table.
  // So does a replica's role and epoch (ReplicaServes), not its position.
  auto shown = [](const ObservedInstance& o) {
    return std::make_tuple(
        o.state, o.liveness, o.readiness, o.epoch,
        o.replica ? std::optional(std::pair(o.replica->role, o.replica->epoch)) : std::nullopt);
  };
  // What the reconcile pass acts on besides: restarts, a replica's state (not its position).
  auto acted_on = [&](const ObservedInstance& o) {
    return std::make_tuple(shown(o), o.restarts, o.replica ? o.replica->state : std::string());
  };
  if (obs.instances.size() != instances.size()) {
    RoutesDirtyOnNode(node);
    RecheckNode(node);
    changed_since_reconcile_ = true;
  }
  for (const auto& [name, o] : instances) {
    auto old = obs.instances.find(name);
    if (old == obs.instances.end() || acted_on(old->second) != acted_on(o)) {
      changed_since_reconcile_ = true;
      if (auto ii = instances_.find(name); ii != instances_.end()) {
        Recheck(ii->second.role, name);
      }
    }
    if (old == obs.instances.end() || shown(old->second) != shown(o)) {
      if (auto ii = instances_.find(name); ii != instances_.end()) RoutesDirty(ii->second.role);
    }
    if (instances_.count(name)) TrackRestarts(name, node, o);
    if (o.state == wire::InstanceState::kFailed &&
        (old == obs.instances.end() || old->second.state != wire::InstanceState::kFailed)) {
      // The agent gave up on it (restart limit, policy, or it cannot start it there: a user
      // missing on that node); the reconciler moves it.
      Emit("instance-failed",
           "instance " + name + " failed on node " + node + ": " +
               (o.last_exit.empty() ? "?" : o.last_exit),
           {{"role", o.role}, {"instance", name}, {"node", node}});
    }
  }
  obs.instances = std::move(instances);
  for (const auto& [name, v] : obs.volumes) {
    auto r = volume_reporters_.find(name);
    if (r != volume_reporters_.end() && r->second.erase(node) && r->second.empty()) {
      volume_reporters_.erase(r);
    }
  }
  obs.volumes.clear();
  for (const wire::VolumeReport& v : hb.volumes) {
    obs.volumes[v.name] = v;
    volume_reporters_[v.name].insert(node);
  }
  obs.agent_version = hb.agent_version;
  obs.boot_id = hb.boot_id;
  obs.report = hb.report;
  obs.assignments_generation = static_cast<int64_t>(hb.assignments_generation);
  if (!hb.address.empty()) obs.address = hb.address;
}

// The store cannot take a commit now (an etcd election, a partition from the store). The
// lease is memory only (DESIGN: heartbeats never go through the store), so it is renewed
// anyway when the store already agrees that the node may hold one: its record is not down
// and no running operation holds it as fenced. Otherwise granting it must wait for the commit
// that records it (a controller started from the store would take the node for fenced).
// Without this, a store outage longer than a lease would make every agent fence its
// primaries and the controller fail them all over once the store is back. A controller that
// cannot reach the store for longer than its own leader lease steps down (leader.h), and a
// successor waits out `takeover_grace` for exactly these renewals.
Result<wire::HeartbeatAnswer> Controller::LeaseFromMemory(const std::string& node,
                                                          const Status& error) {
  if (crashed_ || !nodes_.count(node) || stored_down_.count(node)) return error;
  for (const auto& [id, fenced] : stored_fenced_) {
    if (fenced == node) return error;
  }
  const auto [lease, keepalive] = LeaseFor(node);
  RenewNodeLease(node, clock_.Now() + lease);
  if (auto o = observed_.find(node); o != observed_.end()) {
    o->second.last_heartbeat = clock_.Now();
    o->second.lease_ttl = lease;
    o->second.lease_end = std::max(o->second.lease_end, clock_.Now() + lease);
  }
  ++node_leases_from_memory_;
  auto g = node_generation_.find(node);
  return wire::HeartbeatAnswer{lease,
                               static_cast<uint64_t>(g == node_generation_.end() ? 0 : g->second),
                               std::nullopt, keepalive};
}

int64_t Controller::AssignmentsGeneration(const std::string& node) {
  auto it = node_generation_.find(node);
  if (it != node_generation_.end()) return it->second;
  dirty_nodes_.insert(node);
  Publish();
  it = node_generation_.find(node);
  return it == node_generation_.end() ? 0 : it->second;  // 0: not published (reload pending)
}

wire::AssignmentList Controller::BuildList(const std::string& node) const {
  wire::AssignmentList list;
  list.assignments = BuildAssignments(node);
  list.ring = RingPeersOf(node);
  if (!list.ring.empty()) list.ring_key = opts_.ring_key;
  return list;
}

Result<wire::AssignmentList> Controller::AssignmentListFor(const std::string& node) {
  HAFAB_RETURN_IF_ERROR(ReloadIfNeeded());
  const int64_t gen = AssignmentsGeneration(node);
  wire::AssignmentList list = BuildList(node);
  list.generation = static_cast<uint64_t>(gen);
  // The first list of a generation Start gave: what the next Publish compares with.
  if (!dirty_nodes_.count(node)) assignments_cache_.try_emplace(node, list.assignments);
  return list;
}

bool Controller::AdoptGeneration(const std::string& node, uint64_t generation, uint64_t digest) {
  if (crashed_ || reload_needed_ || generation == 0) return false;
  auto g = node_generation_.find(node);
  if (g == node_generation_.end()) return false;
  if (adopted_.count(node)) {
    if (static_cast<uint64_t>(g->second) != generation) {
      // The agent names another list of an earlier controller than the one kept (an answer
      // of that controller reached it late). What it runs is not known here: the node gets a
      // new generation now, before AssignmentsTaken could count that list as taken.
      adopted_.erase(node);
      assignments_cache_.erase(node);
      dirty_nodes_.insert(node);
      g->second = NextSeq();
    }
    return false;
  }
  // Only a generation Start gave, which no list has been built for since: the agent's list can
  // then only be an earlier controller's, and every list this one publishes is newer
  // (NextSeq). A report it holds must name the same list.
  const NodeObservation* obs = Observation(node);
  if (digest == 0 || assignments_cache_.count(node) || dirty_nodes_.count(node) ||
      static_cast<uint64_t>(g->second) <= generation ||
      (obs != nullptr && static_cast<uint64_t>(obs->assignments_generation) != generation)) {
    return false;
  }
  wire::AssignmentList list = BuildList(node);
  if (wire::ContentDigest(list) != digest) return false;
  g->second = static_cast<int64_t>(generation);
  assignments_cache_[node] = std::move(list.assignments);
  adopted_.insert(node);
  ++generations_adopted_;
  return true;
}

Result<json> Controller::Assignments(const std::string& node, std::optional<int64_t> held) {
  if (held && ReloadIfNeeded().ok() && AssignmentsGeneration(node) == *held) {
    ++assignments_unchanged_;
    wire::AssignmentList unchanged;
    unchanged.generation = static_cast<uint64_t>(*held);
    unchanged.unchanged = true;
    return wire::ToJson(unchanged);
  }
  ++assignment_lists_;
  auto list = AssignmentListFor(node);
  if (!list.ok()) return list.status();
  return wire::ToJson(*list);
}

Result<wire::HeartbeatAnswer> Controller::GatewayHeartbeat(const std::string& id,
                                                           const wire::GatewayHeartbeat& hb) {
  if (crashed_) return Status::Unavailable("controller stopping");
  const bool reloaded = ReloadIfNeeded().ok();
  // A gateway's lease is memory only, like a node's (LeaseFromMemory): while the store cannot
  // take a commit, a gateway the store knows keeps its lease and its say in fencing.
  if (!reloaded && !stored_gateways_.count(id)) {
    return Status::Unavailable("store: reloading state after a failed commit");
  }
  ++gateway_heartbeats_;
  // Leases only grow: the first lease of a new controller is kept.
  const TimePoint now = clock_.Now();
  const auto version = static_cast<int64_t>(hb.routes_version);
  TimePoint deadline = std::min(now + opts_.lease_ttl, AckDeadline(version));
  if (gateway_leases_.Live(id)) deadline = std::max(deadline, gateway_leases_.Deadline(id));
  if (deadline > now) gateway_leases_.Renew(id, deadline);
  gateway_acked_[id] = version;
  // A scale-down waits for its instance to drain (ScaleDownDrained).
  if (!scale_drain_.empty() && gateway_active_[id] != hb.active) changed_since_reconcile_ = true;
  gateway_active_[id] = hb.active;
  if (!gateways_.count(id)) {
    gateways_.insert(id);
    pending_.push_back(store::Op::Put(kGatewaysPrefix + id, Dump(json{{"id", id}})));
    pending_gateways_.push_back(id);
    Emit("gateway-joined", "gateway " + id + " joined", {{"gateway", id}});
  }
  Status st = Status::Ok();
  if (reloaded) {
    AdvanceOps();
    st = Commit();
    Publish();
  }
  if (!st.ok() || !reloaded) {
    if (!stored_gateways_.count(id)) return st;  // not ok: unstored gateways returned above
    ++gateway_leases_from_memory_;
  }
  wire::HeartbeatAnswer answer{opts_.lease_ttl, 0, std::nullopt, std::nullopt};
  answer.lease = deadline > now ? deadline - now : Duration::zero();
  return answer;
}

TimePoint Controller::AckDeadline(int64_t acked) const {
  if (acked >= routes_version_) return TimePoint::max();
  if (acked < routes_forgotten_) return TimePoint::min();  // its next version is that old
  auto next = routes_published_.upper_bound(acked);
  return next == routes_published_.end() ? TimePoint::max() : next->second + opts_.lease_ttl;
}

Result<json> Controller::Apply(const manifest::Manifest& m) {
  if (crashed_) return Status::Unavailable("controller stopping");
  HAFAB_RETURN_IF_ERROR(ReloadIfNeeded());
  // Changes a running cluster cannot take are refused before anything is written.
  const bool ring = m.settings.failure_detector == manifest::FailureDetector::kRing;
  if (m.settings.failure_detector_pos.line > 0 && ring != opts_.ring_detector) {
    return Status::InvalidArgument(
        PosString(m.settings.failure_detector_pos) + ": error: settings.failure_detector: " +
        std::string(manifest::FailureDetectorName(m.settings.failure_detector)) +
        ", but the controllers run the " + (opts_.ring_detector ? "ring" : "star") +
        ", chosen when they start (hafab up, hafab controller --manifest or "
        "--failure-detector): restart them to change it; nothing was applied");
  }
  std::map<std::string, std::string> volume_owner;
  for (size_t i = 0; i < m.roles.size(); ++i) {
    const manifest::Role& r = m.roles[i];
    std::string where = PosString(r.pos) + ": error: roles[" + std::to_string(i) + "]";
    auto old = roles_.find(r.name);
    if (old != roles_.end() && old->second.spec.mode != r.mode) {
      return Status::InvalidArgument(where + ".mode: cannot change a running role from " +
                                     ModeName(old->second.spec.mode) + " to " + ModeName(r.mode) +
                                     "; remove the role first");
    }
    if (old != roles_.end() && r.mode == manifest::RoleMode::kReplicated &&
        old->second.spec.instances != r.instances) {
      return Status::InvalidArgument(
          where + ".instances: a replicated role keeps its " +
          std::to_string(old->second.spec.instances) +
          " replicas (another count changes every write quorum); remove the role first");
    }
    if (!r.volume.empty()) {
      auto [it, fresh] = volume_owner.emplace(r.volume, r.name);
      if (!fresh) {
        return Status::InvalidArgument(where + ".volume: '" + r.volume +
                                       "' is already the volume of role " + it->second);
      }
    }
    if (old != roles_.end() && old->second.spec.volume != r.volume && ActiveOp(r.name)) {
      return Status::Conflict(where + ".volume: a failover of " + r.name +
                              " is running; apply again when it is done");
    }
    if (old != roles_.end() && RollsOut(old->second, r)) {
      if (const Operation* op = ActiveOp(r.name)) {
        return Status::Conflict(where + ": the spec of " + r.name + " changed while " +
                                std::string(wire::OpKindName(op->kind())) + " " + op->id +
                                " is at step " + op->step + "; apply again when it is done");
      }
    }
  }
  std::vector<std::string> names;
  std::set<std::string> wanted;
  std::vector<std::string> rollouts;  // roles whose runtime spec changed: rolled, not restarted
  for (const auto& r : m.roles) {
    RoleRecord rec;
    auto old = roles_.find(r.name);
    if (old != roles_.end()) rec = old->second;
    rec.spec = r;
    if (old == roles_.end()) rec.revision = NextSeq();
    if (old != roles_.end() && old->second.spec.autoscale && r.autoscale) {
      // The autoscaler's count stands (within the new bounds); the manifest says min.
      rec.spec.instances = std::clamp(old->second.spec.instances, r.autoscale->min,
                                      std::max(r.autoscale->min, r.autoscale->max));
    }
    if (old != roles_.end() && RollsOut(old->second, r)) {
      PrepareSpecChange(old->second, &rec);
      rollouts.push_back(r.name);
    }
    PutRole(rec);
    wanted.insert(r.name);
    names.push_back(r.name);
  }
  std::vector<std::string> removed;
  for (const auto& [name, _] : roles_) {
    if (!wanted.count(name)) removed.push_back(name);
  }
  for (const auto& name : removed) DeleteRole(name);
  TimePoint now = clock_.Now();
  for (const auto& n : m.nodes) {
    NodeRecord rec;
    auto old = nodes_.find(n.name);
    bool fresh = old == nodes_.end();
    if (!fresh) rec = old->second;
    rec.name = n.name;
    if (!n.address.empty()) rec.address = n.address;
    if (!n.fault_domain.empty()) rec.fault_domain = n.fault_domain;
    if (!n.update_domain.empty()) rec.update_domain = n.update_domain;
    rec.capacity = n.capacity;
    PutNode(rec);
    // A node declared but not yet heard from gets one lease to show up.
    if (fresh && !node_leases_.Live(n.name)) {
      RenewNodeLease(n.name, now + std::max(opts_.lease_ttl, opts_.first_contact_grace));
    }
  }
  Emit("applied",
       "manifest applied: " + std::to_string(m.roles.size()) + " roles" +
           (removed.empty() ? "" : ", removed " + std::to_string(removed.size())),
       {});
  HAFAB_RETURN_IF_ERROR(Commit());
  for (const auto& name : rollouts) StartRollout(name, "manifest applied", false);
  Reconcile();
  (void)Commit();
  Publish();
  return json{{"applied", true}, {"cluster", m.cluster}, {"roles", names}, {"removed", removed}};
}

Result<json> Controller::Scale(const std::string& role, int n) {
  HAFAB_RETURN_IF_ERROR(ReloadIfNeeded());
  auto it = roles_.find(role);
  if (it == roles_.end()) return Status::NotFound("role " + role + " does not exist");
  if (it->second.spec.mode == manifest::RoleMode::kReplicated && n != it->second.spec.instances) {
    return Status::InvalidArgument("instances: role " + role + " is replicated: it keeps its " +
                                   std::to_string(it->second.spec.instances) + " replicas");
  }
  if (n < 1 || n > manifest::kMaxInstancesPerRole) {
    return Status::InvalidArgument("instances: must be between 1 and " +
                                   std::to_string(manifest::kMaxInstancesPerRole));
  }
  int64_t total = n;
  for (const auto& [name, r] : roles_) {
    if (name != role) total += r.spec.autoscale ? r.spec.autoscale->max : r.spec.instances;
  }
  if (total > manifest::kMaxTotalInstances) {
    return Status::InvalidArgument("instances: " + std::to_string(n) + " would make " +
                                   std::to_string(total) + " instances in all; at most " +
                                   std::to_string(manifest::kMaxTotalInstances));
  }
  RoleRecord rec = it->second;
  int before = rec.spec.instances;
  rec.spec.instances = n;
  PutRole(rec);
  Emit("scaled",
       "role " + role + " scaled from " + std::to_string(before) + " to " + std::to_string(n) +
           " instances",
       {{"role", role}});
  HAFAB_RETURN_IF_ERROR(Commit());
  Reconcile();
  (void)Commit();
  Publish();
  return json{{"role", role}, {"instances", n}};
}

Result<json> Controller::Drain(const std::string& node, bool drain) {
  HAFAB_RETURN_IF_ERROR(ReloadIfNeeded());
  auto it = nodes_.find(node);
  if (it == nodes_.end()) return Status::NotFound("node " + node + " is not known");
  NodeRecord rec = it->second;
  rec.drained = drain;
  PutNode(rec);
  Emit(drain ? "node-drained" : "node-undrained",
       "node " + node + (drain ? " drained: its instances move away" : " back in service"),
       {{"node", node}});
  HAFAB_RETURN_IF_ERROR(Commit());
  Reconcile();
  AdvanceOps();
  (void)Commit();
  Publish();
  return json{{"node", node}, {"drained", drain}};
}

Result<json> Controller::RequestFailover(const std::string& role, const std::string& to,
                                         bool accept_data_loss) {
  HAFAB_RETURN_IF_ERROR(ReloadIfNeeded());
  auto it = roles_.find(role);
  if (it == roles_.end()) return Status::NotFound("role " + role + " does not exist");
  RoleRecord& r = it->second;
  if (r.spec.mode == manifest::RoleMode::kReplicated) {
    return RequestReconfiguration(r, to, accept_data_loss);
  }
  if (r.spec.mode != manifest::RoleMode::kActivePassive) {
    return Status::InvalidArgument("role: " + role + " is " + ModeName(r.spec.mode) +
                                   "; failover is for active-passive and replicated roles");
  }
  if (accept_data_loss) {
    return Status::InvalidArgument("accept_data_loss: only for replicated roles (" + role +
                                   " is active-passive: its data moves with its volume)");
  }
  if (const Operation* op = ActiveOp(role)) {
    return Status::Conflict("role: " + role + " already has operation " + op->id + " at step " +
                            op->step);
  }
  if (!to.empty()) {
    if (!nodes_.count(to)) return Status::NotFound("to: node " + to + " is not known");
    if (NodeDown(to)) return Status::InvalidArgument("to: node " + to + " is down");
    bool has_standby = false;
    for (const auto& name : by_node_[to]) {
      const InstanceRecord& inst = instances_.at(name);
      if (inst.role == role && inst.name != r.primary) has_standby = true;
    }
    if (!has_standby) {
      return Status::InvalidArgument("to: node " + to + " has no standby of role " + role);
    }
  }
  StartFailover(r, to.empty() ? "planned switchover" : "planned switchover to " + to, true, to);
  const Operation* op = ActiveOp(role);
  Status st = Commit();
  Publish();
  if (!st.ok()) return st;
  std::string id = op ? op->id : "";
  if (id.empty()) {
    // It completed at once (possible only when nothing had to wait); report the last one.
    for (const auto& [oid, o] : ops_) {
      if (o.role == role) id = oid;
    }
  }
  return json{{"operation", id}, {"role", role}, {"to", to}};
}

// The secondary a planned switchover without a named target moves the primary to: the most
// advanced one that reports its position, on a live node (the lowest name on a tie). Without
// it the old primary, always at least as far, would be promoted again: an outage that moves
// nothing. "" when there is none.
std::string Controller::SwitchoverTarget(const std::string& role) const {
  std::string target;
  std::optional<wire::Position> best;
  auto instances = by_role_.find(role);
  if (instances == by_role_.end()) return target;
  for (const std::string& name : instances->second) {
    const InstanceRecord& inst = instances_.at(name);
    const ObservedInstance* o = Observed(inst);
    if (inst.replica != wire::ReplicaRole::kSecondary || NodeDown(inst.node) || o == nullptr ||
        !o->replica || (best && o->replica->position <= *best)) {
      continue;
    }
    best = o->replica->position;
    target = name;
  }
  return target;
}

// A planned move of a replicated role's primary (to the replica `to`, else the most advanced);
// or, with `accept_data_loss`, the operator's word to a reconfiguration waiting for a quorum.
Result<json> Controller::RequestReconfiguration(RoleRecord& r, const std::string& to,
                                                bool accept_data_loss) {
  const std::string& role = r.spec.name;
  auto running = running_ops_.find(role);
  auto found = running == running_ops_.end() ? ops_.end() : ops_.find(running->second);
  if (found != ops_.end()) {
    Operation* op = &found->second;
    if (accept_data_loss && op->kind() == wire::OpKind::kReconfigure && op->step == "collect") {
      op->reconfigure().accept_data_loss = true;
      PutOp(*op);
      Emit("data-loss-accepted-requested",
           role + " (" + op->id + "): the operator accepts data loss to promote a replica",
           {{"role", role}, {"op", op->id}});
      AdvanceOp(*op);
      const std::string id = op->id;
      HAFAB_RETURN_IF_ERROR(Commit());
      Publish();
      return json{{"operation", id}, {"role", role}, {"to", to}};
    }
    return Status::Conflict("role: " + role + " already has operation " + op->id + " at step " +
                            op->step +
                            (op->kind() == wire::OpKind::kReconfigure && op->step == "collect"
                                 ? " (waiting for a quorum: --accept-data-loss promotes the "
                                   "most advanced replica that answered)"
                                 : ""));
  }
  if (!to.empty()) {
    const InstanceRecord* target = FindInstance(to);
    if (target == nullptr || target->role != role) {
      return Status::NotFound("to: " + to + " is not a replica of role " + role);
    }
    if (target->replica != wire::ReplicaRole::kSecondary) {
      return Status::InvalidArgument("to: " + to + " is " +
                                     std::string(wire::ReplicaRoleName(
                                         target->replica.value_or(wire::ReplicaRole::kBuilding))) +
                                     "; only a secondary can be promoted");
    }
    if (NodeDown(target->node)) {
      return Status::InvalidArgument("to: node " + target->node + " of " + to + " is down");
    }
  }
  const std::string target = to.empty() ? SwitchoverTarget(role) : to;
  if (target.empty()) {
    return Status::InvalidArgument("role: " + role +
                                   " has no secondary on a live node to switch over to");
  }
  StartReconfiguration(r, "planned switchover to " + target, true, target, accept_data_loss);
  const Operation* op = ActiveOp(role);
  Status st = Commit();
  Publish();
  if (!st.ok()) return st;
  std::string id = op ? op->id : "";
  for (const auto& [oid, o] : ops_) {
    if (id.empty() && o.role == role) id = oid;  // it completed at once
  }
  return json{{"operation", id}, {"role", role}, {"to", target}};
}

const Operation* Controller::ActiveOp(const std::string& role) const {
  auto it = running_ops_.find(role);
  if (it == running_ops_.end()) return nullptr;
  auto op = ops_.find(it->second);
  return op == ops_.end() ? nullptr : &op->second;
}

void Controller::Tick() {
  if (crashed_ || !ReloadIfNeeded().ok()) return;
  TimePoint now = clock_.Now();
  if (!routes_window_passed_ && now >= started_at_ + opts_.lease_ttl) {
    routes_window_passed_ = true;  // instances of unheard nodes are no longer taken as ready
    AllRoutesDirty();
  }
  bool expired = false;
  for (const auto& node : node_leases_.PopExpired(now)) {
    OnNodeExpired(node);
    expired = true;
  }
  if (opts_.ring_detector) {
    RebuildRing();
    expired |= ArbitrateRing();
  }
  for (const auto& gw : gateway_leases_.PopExpired(now)) {
    Emit("gateway-lease-expired",
         "gateway " + gw + " lost its lease (silent, or not acknowledging new routes, for " +
             std::to_string(ToMs(opts_.lease_ttl)) +
             "ms): it no longer routes active-passive roles",
         {{"gateway", gw}});
  }
  if (now >= next_autoscale_) {
    next_autoscale_ = now + opts_.autoscale_interval;
    Autoscale();
  }
  if (expired ||
      (now >= next_reconcile_ &&
       (changed_since_reconcile_ || now >= last_reconcile_ + opts_.reconcile_idle_interval))) {
    next_reconcile_ = now + opts_.reconcile_interval;
    Reconcile();
  }
  AdvanceOps();
  if (now >= next_gc_) {
    next_gc_ = now + opts_.gc_interval;
    Gc();
  }
  (void)Commit();
  Publish();
  TrackAvailability();
  (void)Commit();
}

std::vector<Event> Controller::EventsAfter(int64_t after, size_t limit) const {
  std::vector<Event> out;
  auto it = std::upper_bound(events_.begin(), events_.end(), after,
                             [](int64_t a, const Event& e) { return a < e.id; });
  for (; it != events_.end() && out.size() < limit; ++it) out.push_back(*it);
  return out;
}

}  // namespace hafab::controller
