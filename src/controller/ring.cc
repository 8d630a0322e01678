#include "controller/ring.h"

#include <algorithm>

#include "core/fnv.h"

namespace hafab::controller {

uint64_t RingHash(std::string_view name) { return Fnv1a().Add(name).value(); }

void Ring::Set(std::vector<std::string> members) {
  std::sort(members.begin(), members.end(), [](const std::string& a, const std::string& b) {
    const uint64_t ha = RingHash(a), hb = RingHash(b);
    return ha != hb ? ha < hb : a < b;
  });
  members.erase(std::unique(members.begin(), members.end()), members.end());
  order_ = std::move(members);
  index_.clear();
  for (size_t i = 0; i < order_.size(); ++i) index_[order_[i]] = i;
}

std::vector<std::string> Ring::Neighbours(const std::string& node) const {
  auto it = index_.find(node);
  if (it == index_.end()) return {};
  const size_t n = order_.size(), at = it->second;
  std::vector<std::string> out;
  for (size_t d = 1; d <= static_cast<size_t>(k_) && d < n; ++d) {
    for (size_t i : {(at + d) % n, (at + n - d) % n}) {
      if (i != at && std::find(out.begin(), out.end(), order_[i]) == out.end()) {
        out.push_back(order_[i]);
      }
    }
  }
  return out;
}

}  // namespace hafab::controller
