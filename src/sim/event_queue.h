// EventQueue: the simulator's time. Every action of the simulated cluster is an event at a
// simulated instant; running an event first sets the FakeClock to its time, so the real
// controller, supervisor and lease code see simulated time only. Events at the same instant
// run in the order they were scheduled: a run is a pure function of its seed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "testing/fake_clock.h"

namespace hafab::sim {

// Not thread-safe: the simulator has one thread. The heap holds small entries (time, order,
// slot); the functions stay in their slots, so reordering the heap moves no std::function.
class EventQueue {
 public:
  explicit EventQueue(testing::FakeClock& clock) : clock_(clock) {}

  void At(TimePoint t, std::function<void()> fn) {
    if (t < clock_.Now()) t = clock_.Now();
    uint32_t slot;
    if (free_.empty()) {
      slot = static_cast<uint32_t>(fns_.size());
      fns_.push_back(std::move(fn));
    } else {
      slot = free_.back();
      free_.pop_back();
      fns_[slot] = std::move(fn);
    }
    heap_.push_back(Item{t, next_seq_++, slot});
    std::push_heap(heap_.begin(), heap_.end(), std::greater<Item>());
  }
  void After(Duration d, std::function<void()> fn) { At(clock_.Now() + d, std::move(fn)); }

  // Runs the earliest event if it is due at or before `until`; false when none is.
  bool RunNext(TimePoint until) {
    if (heap_.empty() || heap_.front().at > until) return false;
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<Item>());
    const Item item = heap_.back();
    heap_.pop_back();
    std::function<void()> fn = std::move(fns_[item.slot]);
    fns_[item.slot] = nullptr;
    free_.push_back(item.slot);
    clock_.Set(item.at);
    ++executed_;
    fn();
    return true;
  }

  uint64_t executed() const { return executed_; }
  size_t pending() const { return heap_.size(); }

 private:
  struct Item {
    TimePoint at;
    uint64_t seq;
    uint32_t slot;  // in fns_
    bool operator>(const Item& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  testing::FakeClock& clock_;
  std::vector<Item> heap_;
  std::vector<std::function<void()>> fns_;
  std::vector<uint32_t> free_;
  uint64_t next_seq_ = 0;
  uint64_t executed_ = 0;
};

}  // namespace hafab::sim
