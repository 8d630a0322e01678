// NameMap: a map from names (nodes, instances, roles) that iterates in name order, as
// std::map does, and finds a name by hash. The controller walks its tables in name order
// (the order decides placements, so runs repeat) but mostly looks names up one at a time:
// at 10 000 nodes and 30 000 instances a std::map look-up is ~15 string compares on
// scattered nodes, a hashed one is one hash and one compare.
//
// The index is an open-addressed table of (hash, map node) pairs probed linearly: a look-up
// reads one slot run and the one map node it names, where std::unordered_map read a bucket,
// a chain node and then the map node (at that scale each is a cache miss: the index was 22 % of
// hafab-sim's samples at 10 000 nodes, most of them in the heartbeat path; 13.6 % after).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
    const size_t i = Slot(k);
    return i == kNone ? map_.end() : slots_[i].it;
  }
  const_iterator find(std::string_view k) const {
    const size_t i = Slot(k);
    return i == kNone ? map_.end() : const_iterator(slots_[i].it);
  }
  size_t count(std::string_view k) const { return Slot(k) == kNone ? 0 : 1; }

  V& at(std::string_view k) {
    auto it = find(k);
    if (it == map_.end()) throw std::out_of_range("NameMap::at");
    return it->second;
  }
  const V& at(std::string_view k) const {
    auto it = find(k);
    if (it == map_.end()) throw std::out_of_range("NameMap::at");
    return it->second;
  }
  V& operator[](const std::string& k) { return try_emplace(k).first->second; }

  template <typename... Args>
  std::pair<iterator, bool> try_emplace(const std::string& k, Args&&... args) {
    if (auto it = find(k); it != map_.end()) return {it, false};
    auto [it, inserted] = map_.try_emplace(k, std::forward<Args>(args)...);
    Index(it);
    return {it, true};
  }

  size_t erase(std::string_view k) {
    const size_t i = Slot(k);
    if (i == kNone) return 0;
    auto it = slots_[i].it;
    Unindex(i);
    map_.erase(it);
    return 1;
  }
  iterator erase(iterator it) {
    Unindex(Slot(it->first));
    return map_.erase(it);
  }
  void clear() {
    slots_.clear();
    map_.clear();
  }
  void swap(NameMap& o) noexcept {
    map_.swap(o.map_);
    slots_.swap(o.slots_);
  }

 private:
  // hash 0: an empty slot (a stored hash has its lowest bit set).
  struct Entry {
    uint64_t hash = 0;
    iterator it;
  };
  static constexpr size_t kNone = ~size_t{0};

  static uint64_t Hash(std::string_view k) { return std::hash<std::string_view>()(k) | 1; }
  // Where a hash's probe starts: its high bits after a multiplicative mix.
  size_t Home(uint64_t hash) const {
    return static_cast<size_t>((hash * 0x9E3779B97F4A7C15ull) >> 32) & (slots_.size() - 1);
  }

  size_t Slot(std::string_view k) const {
    if (slots_.empty()) return kNone;
    const uint64_t h = Hash(k);
    const size_t mask = slots_.size() - 1;
    for (size_t i = Home(h);; i = (i + 1) & mask) {
      const Entry& e = slots_[i];
      if (e.hash == 0) return kNone;
      if (e.hash == h && e.it->first == k) return i;
    }
  }

  // At most half the slots are used, so probe runs stay short.
  void Index(iterator it) {
    if (2 * map_.size() > slots_.size()) {
      Reindex();  // map_ already holds `it`
      return;
    }
    Place(Entry{Hash(it->first), it});
  }
  void Place(const Entry& e) {
    const size_t mask = slots_.size() - 1;
    size_t i = Home(e.hash);
    while (slots_[i].hash != 0) i = (i + 1) & mask;
    slots_[i] = e;
  }
  // Empties slot i and moves back the entries after it that could no longer be reached
  // (linear probing's deletion without tombstones).
  void Unindex(size_t i) {
    const size_t mask = slots_.size() - 1;
    for (size_t j = (i + 1) & mask; slots_[j].hash != 0; j = (j + 1) & mask) {
      const size_t home = Home(slots_[j].hash);
      // The entry at j stays if its home lies cyclically in (i, j].
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Entry{};
  }
  void Reindex() {
    if (map_.empty()) {
      slots_.clear();
      return;
    }
    size_t n = 16;
    while (n < 2 * map_.size()) n *= 2;
    slots_.assign(n, Entry{});
    for (auto it = map_.begin(); it != map_.end(); ++it) Place(Entry{Hash(it->first), it});
  }

  Map map_;
  std::vector<Entry> slots_;  // the index: a power of two of slots, at most half used
};

}  // namespace hafab
