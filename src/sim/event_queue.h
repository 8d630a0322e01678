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

// Not thread-safe: the simulator has one thread. The queue holds small entries (time, order,
// slot); the functions stay in their slots, so reordering moves no std::function.
//
// A calendar of 1 ms buckets: an event due in the bucket being run goes to a small heap (`near_`),
// one due within the next kBuckets ms is appended to its bucket unsorted, one later to the
// `far_` heap. A bucket is heaped only when its turn comes, so most events cost an append and a
// pop from a heap of the ~100 events of one millisecond instead of one of all pending events.
// The order is the same as one heap's: time, then order of scheduling.
class EventQueue {
 public:
  explicit EventQueue(testing::FakeClock& clock) : clock_(clock), buckets_(kBuckets) {}

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
    Place(Item{t, (next_seq_++ << kSlotBits) | slot});
  }
  void After(Duration d, std::function<void()> fn) { At(clock_.Now() + d, std::move(fn)); }
  TimePoint Now() const { return clock_.Now(); }

  // Runs the earliest event if it is due at or before `until`; false when none is.
  bool RunNext(TimePoint until) {
    if (near_.empty() && !Advance()) return false;
    if (near_.front().at > until) return false;
    std::pop_heap(near_.begin(), near_.end(), std::greater<Item>());
    const Item item = near_.back();
    near_.pop_back();
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
  size_t pending() const { return near_.size() + in_buckets_ + far_.size(); }

 private:
  // 16 bytes: the order of scheduling in the high bits, the slot in fns_ in the low ones (2^24
  // events pending at once, 2^40 scheduled in a run).
  static constexpr int kSlotBits = 24;
  static constexpr uint64_t kSlotMask = (uint64_t{1} << kSlotBits) - 1;
  static constexpr int64_t kBucketNs = 1'000'000;
  static constexpr int64_t kBuckets = 1 << 16;  // about 65 s ahead
  struct Item {
    TimePoint at;
    uint64_t order;
    bool operator>(const Item& o) const { return at != o.at ? at > o.at : order > o.order; }
  };

  static int64_t BucketOf(TimePoint t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count() /
           kBucketNs;
  }

  void Place(const Item& item) {
    const int64_t b = BucketOf(item.at);
    if (b <= current_) {
      near_.push_back(item);
      std::push_heap(near_.begin(), near_.end(), std::greater<Item>());
    } else if (b < current_ + kBuckets) {
      buckets_[static_cast<size_t>(b % kBuckets)].push_back(item);
      ++in_buckets_;
    } else {
      far_.push_back(item);
      std::push_heap(far_.begin(), far_.end(), std::greater<Item>());
    }
  }

  // Moves on to the next bucket that holds events and heaps it; false when nothing is pending.
  bool Advance() {
    while (near_.empty()) {
      if (in_buckets_ == 0) {
        if (far_.empty()) return false;
        current_ = std::max(current_, BucketOf(far_.front().at) - 1);  // skip the empty ones
      }
      ++current_;
      // The far events now within reach go to their buckets.
      while (!far_.empty() && BucketOf(far_.front().at) < current_ + kBuckets) {
        std::pop_heap(far_.begin(), far_.end(), std::greater<Item>());
        Item item = far_.back();
        far_.pop_back();
        buckets_[static_cast<size_t>(BucketOf(item.at) % kBuckets)].push_back(item);
        ++in_buckets_;
      }
      std::vector<Item>& due = buckets_[static_cast<size_t>(current_ % kBuckets)];
      if (due.empty()) continue;
      in_buckets_ -= due.size();
      near_.swap(due);  // the emptied near_ keeps its capacity in the bucket
      std::make_heap(near_.begin(), near_.end(), std::greater<Item>());
    }
    return true;
  }

  testing::FakeClock& clock_;
  std::vector<Item> near_;                  // bucket current_ (and any earlier): a heap
  std::vector<std::vector<Item>> buckets_;  // buckets current_+1 .. current_+kBuckets-1
  std::vector<Item> far_;                   // later: a heap
  int64_t current_ = -1;
  size_t in_buckets_ = 0;
  std::vector<std::function<void()>> fns_;
  std::vector<uint32_t> free_;
  uint64_t next_seq_ = 0;
  uint64_t executed_ = 0;
};

}  // namespace hafab::sim
