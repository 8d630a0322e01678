// EventQueue: the simulator's time. Every action of the simulated cluster is an event at a
// simulated instant; running an event first sets the FakeClock to its time, so the real
// controller, supervisor and lease code see simulated time only. Events at the same instant
// run in the order they were scheduled: a run is a pure function of its seed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
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
      if (slot > kSlotMask) std::abort();  // more pending events than a slot can name
      fns_.push_back(std::move(fn));
    } else {
      slot = free_.back();
      free_.pop_back();
      fns_[slot] = std::move(fn);
    }
    heap_.push_back(Item{t, (next_seq_++ << kSlotBits) | slot});
    std::push_heap(heap_.begin(), heap_.end(), std::greater<Item>());
  }
  void After(Duration d, std::function<void()> fn) { At(clock_.Now() + d, std::move(fn)); }

  // Runs the earliest event if it is due at or before `until`; false when none is.
  bool RunNext(TimePoint until) {
    if (heap_.empty() || heap_.front().at > until) return false;
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<Item>());
    const Item item = heap_.back();
    heap_.pop_back();
    const auto slot = static_cast<uint32_t>(item.order & kSlotMask);
    std::function<void()> fn = std::move(fns_[slot]);
    fns_[slot] = nullptr;
    free_.push_back(slot);
    clock_.Set(item.at);
    ++executed_;
    fn();
    return true;
  }

  uint64_t executed() const { return executed_; }
  size_t pending() const { return heap_.size(); }

 private:
  // 16 bytes: the order of scheduling in the high bits, the slot in fns_ in the low ones (2^24
  // events pending at once, 2^40 scheduled in a run).
  static constexpr int kSlotBits = 24;
  static constexpr uint64_t kSlotMask = (uint64_t{1} << kSlotBits) - 1;
  struct Item {
    TimePoint at;
    uint64_t order;
    bool operator>(const Item& o) const { return at != o.at ? at > o.at : order > o.order; }
  };

  testing::FakeClock& clock_;
  std::vector<Item> heap_;
  std::vector<std::function<void()>> fns_;
  std::vector<uint32_t> free_;
  uint64_t next_seq_ = 0;
  uint64_t executed_ = 0;
};

}  // namespace hafab::sim
