// Ring failure detection on the controller's side (ControllerOptions::ring_detector;
// docs/architecture.md, "Ring failure detection"): the ring's membership, the arbiter's
// verdicts, and the leases and keep-alives that let the controller's work grow with changes
// rather than with nodes.
#include <algorithm>

#include "controller/controller.h"

namespace hafab::controller {

void Controller::RebuildRing() {
  if (!ring_dirty_) return;
  ring_dirty_ = false;
  std::vector<std::string> members;
  members.reserve(nodes_.size());
  for (const auto& [name, n] : nodes_) {
    if (!n.down && !n.drained) members.push_back(name);
  }
  ring_.Set(std::move(members));
  for (const auto& [name, peers] : ring_peers_) {
    if (!ring_.Contains(name)) arbiter_.Forget(name);  // down or drained: nobody's to judge
  }
  std::map<std::string, std::vector<wire::RingPeer>> now;
  for (const auto& m : ring_.members()) {
    std::vector<wire::RingPeer> peers = RingPeersOf(m);
    auto b = ring_peers_.find(m);
    if (b == ring_peers_.end() || b->second != peers) {
      assignments_cache_.erase(m);  // a new generation carries the new neighbours or addresses
      dirty_nodes_.insert(m);
    }
    now.emplace(m, std::move(peers));
  }
  ring_peers_ = std::move(now);
}

std::vector<wire::RingPeer> Controller::RingPeersOf(const std::string& node) const {
  std::vector<wire::RingPeer> out;
  if (!opts_.ring_detector) return out;
  for (const auto& n : ring_.Neighbours(node)) {
    // Its UDP port comes with its heartbeats; until the first, no address (it is suspected,
    // and the arbiter's check finds it silent or alive).
    auto it = nodes_.find(n);
    auto o = observed_.find(n);
    std::string address;
    if (it != nodes_.end() && o != observed_.end() && o->second.ring_endpoint &&
        o->second.ring_endpoint->port != 0) {
      const std::string& host = it->second.address;
      address = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                std::to_string(o->second.ring_endpoint->port);
    }
    out.push_back({n, std::move(address)});
  }
  return out;
}

bool Controller::ArbitrateRing() {
  bool down = false;
  auto live_watchers = [this](const std::string& node) {
    int live = 0;
    for (const auto& w : ring_.Neighbours(node)) live += NodeDown(w) ? 0 : 1;
    return live;
  };
  for (const Verdict& v : arbiter_.Tick(live_watchers)) {
    auto it = nodes_.find(v.node);
    if (it == nodes_.end() || it->second.down) continue;
    switch (v.kind) {
      case Verdict::Kind::kCheck:
        ++ring_checks_;
        if (listener_.check_node) listener_.check_node(v.node);
        break;
      case Verdict::Kind::kIsolated:
        Emit("node-isolated", "node " + v.node + " is " + v.why, {{"node", v.node}});
        break;
      case Verdict::Kind::kDown: {
        NodeRecord r = it->second;
        r.down = true;
        PutNode(r);
        Emit("node-down", "node " + v.node + " is down: " + v.why,
             {{"node", v.node}, {"detector", "ring"}});
        down = true;
        break;
      }
    }
  }
  return down;
}

bool Controller::NeedsShortLease(const std::string& node) const {
  for (const auto& name : FoundOrEmpty(by_node_, node)) {
    auto r = roles_.find(instances_.at(name).role);
    if (r != roles_.end() && r->second.spec.mode == manifest::RoleMode::kActivePassive) return true;
  }
  return false;
}

std::pair<Duration, std::optional<Duration>> Controller::LeaseFor(const std::string& node) const {
  if (!opts_.ring_detector) return {opts_.lease_ttl, std::nullopt};
  if (NeedsShortLease(node)) return {opts_.lease_ttl, opts_.heartbeat_interval};
  // The keep-alives of all the others come to about keepalives_per_second.
  const auto spread = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(
      static_cast<double>(nodes_.size()) / std::max(1.0, opts_.keepalives_per_second)));
  const Duration keepalive = std::max(opts_.heartbeat_interval, spread);
  // Its lease guards no primary: it outlasts two lost keep-alives (the ring finds a dead node
  // sooner; this finds one cut from the controller only).
  return {3 * keepalive + opts_.lease_ttl, keepalive};
}

}  // namespace hafab::controller
