// Ring: the order of ring failure detection (settings.failure_detector: ring). Nodes sit on a
// ring by a hash of their names, so the order is the same on every controller and does not
// follow fault domains or names; each node watches the k nodes before it and the k after it,
// and so is watched by the same 2k (fewer on a small ring: then everyone watches everyone).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hafab::controller {

// Fnv1a (core/fnv.h) of the name: stable across builds and platforms (std::hash is not).
uint64_t RingHash(std::string_view name);

class Ring {
 public:
  explicit Ring(int k = 2) : k_(k) {}

  // The members, in any order. O(n log n).
  void Set(std::vector<std::string> members);
  // The k members before `node` and the k after it, nearest first, each once, never `node`;
  // empty when `node` is not a member.
  std::vector<std::string> Neighbours(const std::string& node) const;
  bool Contains(const std::string& node) const { return index_.count(node) > 0; }
  size_t size() const { return order_.size(); }
  const std::vector<std::string>& members() const { return order_; }

 private:
  int k_;
  std::vector<std::string> order_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace hafab::controller
