#include "controller/placement.h"

#include <tuple>

namespace hafab::controller {

std::optional<std::string> PickNode(const std::vector<NodeCandidate>& candidates,
                                    const std::vector<Peer>& peers,
                                    const std::function<bool(std::string_view)>& skip) {
  const NodeCandidate* best = nullptr;
  std::tuple<int, int, int, std::string_view> best_score;
  for (const auto& c : candidates) {
    if ((c.capacity > 0 && c.load >= c.capacity) || (skip && skip(c.name))) continue;
    int on_node = 0, shared = 0;
    for (const auto& p : peers) {
      if (p.node == c.name) ++on_node;
      if (!c.fault_domain.empty() && p.fault_domain == c.fault_domain) ++shared;
      if (!c.update_domain.empty() && p.update_domain == c.update_domain) ++shared;
    }
    std::tuple<int, int, int, std::string_view> score{on_node, shared, c.load, c.name};
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
