// The GC sweeper: finds and repairs what an interrupted operation (or a lost message) left
// behind: operations nobody drives, instances no assignment wants, volumes attached where
// no instance has them; and trims old events and finished operations from the store.
#include <spdlog/spdlog.h>

#include "controller/controller.h"

namespace hafab::controller {

namespace {
constexpr size_t kEventsKept = 5000;
constexpr size_t kFinishedOpsKept = 200;
}  // namespace

void Controller::Gc() {
  if (crashed_) return;
  // Operations with no (live) owner: this controller is the only one, so it adopts them.
  for (auto& [id, op] : ops_) {
    if (op.state != wire::OpState::kRunning || op.owner == id_) continue;
    std::string prev = op.owner.empty() ? "nobody" : op.owner;
    op.owner = id_;
    PutOp(op);
    Emit("gc-op-adopted", "operation " + id + " (owned by " + prev + ") resumed at step " + op.step,
         {{"op", id}, {"role", op.role}});
  }

  // Instances an agent runs that no assignment wants: tell the agent again. Only where that
  // may have changed: a report, the instances assigned there or the node's lease (gc_nodes_).
  std::set<std::string> look;
  look.swap(gc_nodes_);
  if (gc_all_nodes_) {
    for (const auto& [node, obs] : observed_) look.insert(node);
    gc_all_nodes_ = false;
  }
  for (const auto& node : look) {
    const NodeObservation* obs = Observation(node);
    if (obs == nullptr || !node_leases_.Live(node)) continue;
    const auto& wanted = FoundOrEmpty(by_node_, node);
    for (const auto& [name, o] : obs->instances) {
      if (wanted.count(name) ||
          (o.state != wire::InstanceState::kRunning && o.state != wire::InstanceState::kStarting))
        continue;
      if (warned_.insert("orphan/" + node + "/" + name).second) {
        Emit("gc-orphan-instance",
             "node " + node + " runs " + name +
                 " that no assignment wants; re-sending its assignments",
             {{"node", node}, {"instance", name}});
        assignments_cache_.erase(node);
        dirty_nodes_.insert(node);
      }
    }
  }

  // Volumes attached where no instance has them: on a node that reports one (memory only),
  // and, by the provider, on a node gone silent.
  for (const auto& [rname, role] : roles_) {
    const std::string& vol = role.spec.volume;
    if (vol.empty() || ActiveOp(rname) != nullptr) continue;
    const std::string want = VolumeHolder(rname);
    for (const auto& node : FoundOrEmpty(volume_reporters_, vol)) {
      if (node == want || !node_leases_.Live(node) ||
          observed_.at(node).volumes.at(vol).state != wire::VolumeState::kAttached) {
        continue;
      }
      if (warned_.insert("stray-volume/" + node + "/" + vol).second) {
        Emit("gc-stray-volume",
             "node " + node + " holds volume " + vol +
                 " that no instance there has; re-sending its assignments",
             {{"node", node}, {"role", rname}});
        assignments_cache_.erase(node);
        dirty_nodes_.insert(node);
      }
    }
  }
  if (provider_ != nullptr) DescribeVolumes();

  // Trim history.
  while (stored_events_.size() > kEventsKept) {
    pending_.push_back(store::Op::Delete(EventKey(stored_events_.front())));
    stored_events_.pop_front();
  }
  std::vector<std::string> finished;
  for (const auto& [id, op] : ops_) {
    if (op.state != wire::OpState::kRunning) finished.push_back(id);
  }
  // Ids are "op-<seq>": sort numerically, drop the oldest.
  auto seq = [](const std::string& id) -> long long {
    try {
      return std::stoll(id.substr(3));
    } catch (...) {
      return 0;  // not one of ours: oldest
    }
  };
  std::sort(finished.begin(), finished.end(),
            [&](const std::string& a, const std::string& b) { return seq(a) < seq(b); });
  for (size_t i = 0; i + kFinishedOpsKept < finished.size(); ++i) {
    pending_.push_back(store::Op::Delete(kOpsPrefix + finished[i]));
    ops_.erase(finished[i]);
  }
}

std::string Controller::VolumeHolder(const std::string& role) const {
  std::string holder;
  for (const auto& name : FoundOrEmpty(by_role_, role)) {
    const InstanceRecord& inst = instances_.at(name);
    if (inst.volume) holder = inst.node;
  }
  return holder;
}

// A provider call is a cloud API request (or a CLI run): a pass asks about at most
// gc_describes_per_pass volumes, in turn, the next pass going on after the last it asked
// about. With fewer volumes than that, every pass asks about all of them.
void Controller::DescribeVolumes() {
  const auto& roles = roles_.map();
  auto it = roles.lower_bound(gc_describe_from_);
  gc_describe_from_.clear();
  size_t budget = opts_.gc_describes_per_pass;
  for (size_t seen = 0; seen < roles.size(); ++seen, ++it) {
    if (it == roles.end()) it = roles.begin();
    const auto& [rname, role] = *it;
    const std::string& vol = role.spec.volume;
    if (vol.empty() || ActiveOp(rname) != nullptr) continue;
    if (budget == 0) {
      gc_describe_from_ = rname;  // the next pass starts here
      break;
    }
    --budget;
    ++gc_volume_describes_;
    auto d = provider_->Describe(vol);
    if (!d.ok() || d->node.empty() || d->node == VolumeHolder(rname)) continue;
    if (!node_leases_.Live(d->node) && SilentPastMargin(d->node)) {
      Status st = provider_->ForceDetach(vol, d->node);
      if (st.code() == StatusCode::kUnavailable) continue;  // still at it: told when done
      Emit("gc-force-detach",
           "volume " + vol + " was attached to silent node " + d->node +
               " with no instance for it: force-detach " +
               (st.ok() ? "done" : "failed: " + st.ToString()),
           {{"node", d->node}, {"role", rname}});
    }
  }
}

}  // namespace hafab::controller
