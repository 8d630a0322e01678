#include "controller/placement.h"

#include <tuple>
#include <unordered_map>

namespace hafab::controller {

std::optional<std::string> PickNode(const std::vector<NodeCandidate>& candidates,
                                    const std::vector<Peer>& peers,
                                    const std::function<bool(std::string_view)>& skip) {
  // The peers counted once per node, fault domain and update domain: a look-up per candidate,
  // not a pass over the peers (placing a 1 000-instance role on 1 000 nodes compared ~10^9
  // strings and held the controller's loop for seconds: bench/controller_load).
  std::unordered_map<std::string_view, int> on_node, in_fault_domain, in_update_domain;
  for (const auto& p : peers) {
    ++on_node[p.node];
    ++in_fault_domain[p.fault_domain];
    ++in_update_domain[p.update_domain];
  }
  auto count = [](const std::unordered_map<std::string_view, int>& m, std::string_view key) {
    auto it = m.find(key);
    return it == m.end() ? 0 : it->second;
  };
  const NodeCandidate* best = nullptr;
  std::tuple<int, int, int, std::string_view> best_score;
  for (const auto& c : candidates) {
    if (c.capacity > 0 && c.load >= c.capacity) continue;
    // No candidate scores below (0, 0, its load, its name): once the best is no worse than
    // that, the look-ups are skipped (placing 30 000 instances on 10 000 nodes: hafab-sim).
    if (best != nullptr &&
        !(std::tuple<int, int, int, std::string_view>{0, 0, c.load, c.name} < best_score)) {
      continue;
    }
    if (skip && skip(c.name)) continue;
    int shared = 0;
    if (!c.fault_domain.empty()) shared += count(in_fault_domain, c.fault_domain);
    if (!c.update_domain.empty()) shared += count(in_update_domain, c.update_domain);
    std::tuple<int, int, int, std::string_view> score{count(on_node, c.name), shared, c.load,
                                                      c.name};
    if (best == nullptr || score < best_score) {
      best = &c;
      best_score = score;
    }
  }
  if (best == nullptr) return std::nullopt;
  return std::string(best->name);
}

std::string PickStandby(const std::vector<StandbyCandidate>& candidates,
                        const std::string& old_fault_domain) {
  const StandbyCandidate* best = nullptr;
  auto score = [&](const StandbyCandidate& c) {
    bool same_domain = !old_fault_domain.empty() && c.fault_domain == old_fault_domain;
    return std::tuple(same_domain, !c.reported, c.ordinal);
  };
  for (const auto& c : candidates) {
    if (best == nullptr || score(c) < score(*best)) best = &c;
  }
  return best == nullptr ? "" : best->instance;
}

int PickPort(int preferred, const std::set<int>& used) {
  if (preferred > 0 && !used.count(preferred)) return preferred;
  int p = preferred > 0 ? preferred + 1 : 20000;
  while (used.count(p) && p < 65535) ++p;
  return p;
}

}  // namespace hafab::controller
