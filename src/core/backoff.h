// Backoff: the waits between retries of something that is not there yet (a store, a
// controller): `initial`, then doubling up to `max`; Reset after a success.
#pragma once

#include <algorithm>

#include "core/clock.h"

namespace hafab {

// Not thread-safe. REQUIRES: 0 < initial <= max.
class Backoff {
 public:
  Backoff(Duration initial, Duration max) : initial_(initial), max_(max), next_(initial) {}

  // The wait before the next retry; each call doubles the one after, up to max.
  Duration Next() {
    Duration d = next_;
    next_ = std::min(next_ * 2, max_);
    return d;
  }
  void Reset() { next_ = initial_; }

 private:
  Duration initial_;
  Duration max_;
  Duration next_;
};

}  // namespace hafab
