// NameMap: a map from names (nodes, instances, roles) that iterates in name order, as
// std::map does, and finds a name by hash. The controller walks its tables in name order
// (the order decides placements, so runs repeat) but mostly looks names up one at a time:
// at 10 000 nodes and 30 000 instances a std::map look-up is ~15 string compares on
// scattered nodes, a hashed one is one hash and one compare.
#pragma once

#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace hafab {

template <typename V>
class NameMap {
 public:
  using Map = std::map<std::string, V>;
  using key_type = std::string;
  using mapped_type = V;
  using value_type = typename Map::value_type;
  using iterator = typename Map::iterator;
  using const_iterator = typename Map::const_iterator;

  NameMap() = default;
  NameMap(const NameMap& o) : map_(o.map_) { Reindex(); }
  NameMap(NameMap&& o) noexcept = default;  // map nodes (and the index's keys) move as they are
  NameMap& operator=(const NameMap& o) {
    if (this != &o) {
      map_ = o.map_;
      Reindex();
    }
    return *this;
  }
  NameMap& operator=(NameMap&& o) noexcept = default;

  // The ordered map itself, read-only (for those who take a std::map).
  const Map& map() const { return map_; }

  iterator begin() { return map_.begin(); }
  iterator end() { return map_.end(); }
  const_iterator begin() const { return map_.begin(); }
  const_iterator end() const { return map_.end(); }
  size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }

  iterator find(std::string_view k) {
    auto it = index_.find(k);
    return it == index_.end() ? map_.end() : it->second;
  }
  const_iterator find(std::string_view k) const {
    auto it = index_.find(k);
    return it == index_.end() ? map_.end() : const_iterator(it->second);
  }
  size_t count(std::string_view k) const { return index_.count(k); }

  V& at(std::string_view k) {
    auto it = index_.find(k);
    if (it == index_.end()) throw std::out_of_range("NameMap::at");
    return it->second->second;
  }
  const V& at(std::string_view k) const {
    auto it = index_.find(k);
    if (it == index_.end()) throw std::out_of_range("NameMap::at");
    return it->second->second;
  }
  V& operator[](const std::string& k) { return try_emplace(k).first->second; }

  template <typename... Args>
  std::pair<iterator, bool> try_emplace(const std::string& k, Args&&... args) {
    if (auto it = find(k); it != map_.end()) return {it, false};
    auto [it, inserted] = map_.try_emplace(k, std::forward<Args>(args)...);
    index_.emplace(it->first, it);
    return {it, true};
  }

  size_t erase(std::string_view k) {
    auto it = index_.find(k);
    if (it == index_.end()) return 0;
    auto at = it->second;
    index_.erase(it);
    map_.erase(at);
    return 1;
  }
  iterator erase(iterator it) {
    index_.erase(std::string_view(it->first));
    return map_.erase(it);
  }
  void clear() {
    index_.clear();
    map_.clear();
  }
  void swap(NameMap& o) noexcept {
    map_.swap(o.map_);
    index_.swap(o.index_);
  }

 private:
  void Reindex() {
    index_.clear();
    index_.reserve(map_.size());
    for (auto it = map_.begin(); it != map_.end(); ++it) index_.emplace(it->first, it);
  }

  Map map_;
  std::unordered_map<std::string_view, iterator> index_;  // keys point into map_'s nodes
};

}  // namespace hafab
