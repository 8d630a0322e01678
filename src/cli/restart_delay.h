// RestartDelay: how long `hafab up` waits before starting a dead controller, etcd member or
// gateway again. A process that dies after running for a while is restarted after `first`
// (zero for most: a crash then costs the cluster only the process's start-up, and a sole
// controller that dies in the middle of a failover resumes it sooner). One that dies again
// soon after such a restart is crash-looping: it waits `initial`, doubling up to `max`, so a
// process that cannot start does not spin; a run of `stable` ends the loop.
#pragma once

#include "core/backoff.h"
#include "core/clock.h"

namespace hafab::cli {

// Not thread-safe. REQUIRES: 0 <= first, 0 < initial <= max.
class RestartDelay {
 public:
  RestartDelay(Duration first, Duration initial, Duration max, Duration stable)
      : first_(first), backoff_(initial, max), stable_(stable) {}

  // The process was started at `now`: its first start, or a restart after Died.
  void Started(TimePoint now, bool restart) {
    started_ = now;
    restarted_ = restart;
  }

  // The process died at `now`: the wait before starting it again (zero = at once).
  Duration Died(TimePoint now) {
    if (restarted_ && now - started_ < stable_) return backoff_.Next();
    backoff_.Reset();
    return first_;
  }

 private:
  Duration first_;
  Backoff backoff_;
  Duration stable_;
  TimePoint started_{};
  bool restarted_ = false;
};

}  // namespace hafab::cli
