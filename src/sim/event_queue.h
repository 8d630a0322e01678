// EventQueue: the simulator's time. Every action of the simulated cluster is an event at a
// simulated instant; running an event first sets the FakeClock to its time, so the real
// controller, supervisor and lease code see simulated time only. Events at the same instant
// run in the order they were scheduled: a run is a pure function of its seed.
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

#include "testing/fake_clock.h"

namespace hafab::sim {

// Not thread-safe: the simulator has one thread.
class EventQueue {
 public:
  explicit EventQueue(testing::FakeClock& clock) : clock_(clock) {}

  void At(TimePoint t, std::function<void()> fn) {
    if (t < clock_.Now()) t = clock_.Now();
    queue_.push(Item{t, next_seq_++, std::move(fn)});
  }
  void After(Duration d, std::function<void()> fn) { At(clock_.Now() + d, std::move(fn)); }

  // Runs the earliest event if it is due at or before `until`; false when none is.
  bool RunNext(TimePoint until) {
    if (queue_.empty() || queue_.top().at > until) return false;
    Item item = std::move(const_cast<Item&>(queue_.top()));
    queue_.pop();
    clock_.Set(item.at);
    ++executed_;
    item.fn();
    return true;
  }

  uint64_t executed() const { return executed_; }
  size_t pending() const { return queue_.size(); }

 private:
  struct Item {
    TimePoint at;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Item& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };

  testing::FakeClock& clock_;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue_;
  uint64_t next_seq_ = 0;
  uint64_t executed_ = 0;
};

}  // namespace hafab::sim
