// FaultStore: a Store decorator that makes calls fail with Unavailable, at random (from a
// seeded hafab::Random) or on demand, to test how callers (the controller) survive a store
// that is unreachable or loses answers. Modelled on Service Fabric's FaultInjectionAdapter.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "core/random.h"
#include "core/thread_annotations.h"
#include "store/store.h"

namespace hafab::testing {

class FaultStore final : public store::Store {
 public:
  // Probabilities in [0, 1], drawn independently for each call.
  struct Faults {
    // The call fails with Unavailable before reaching the inner store: nothing happens.
    double fail_before = 0;
    // The call reaches the inner store and takes effect, then its answer is lost and the
    // caller sees Unavailable (a commit whose reply never arrived). Only for calls that
    // change something: Commit, GrantLease, KeepAlive, RevokeLease.
    double fail_after = 0;
    // Each Watcher::Next breaks the watch with this probability: it and every later Next
    // answer Unavailable, as when the connection drops; the caller re-watches.
    double break_watch = 0;
  };

  // Counts of injected faults, for assertions.
  struct Counts {
    int64_t failed_before = 0;
    int64_t failed_after = 0;
    int64_t broken_watches = 0;
  };

  // Wraps `inner`, which must outlive this store. Watchers returned by Watch must not
  // outlive this store. Thread-safe.
  FaultStore(store::Store& inner, Random random) : inner_(inner), random_(random) {}
  // Wraps and owns `inner`.
  FaultStore(std::unique_ptr<store::Store> inner, Random random)
      : owned_(std::move(inner)), inner_(*owned_), random_(random) {}

  void SetFaults(const Faults& faults);
  // While down, every call (and every Next of every watcher) fails with Unavailable before
  // reaching the inner store, whatever the probabilities: a partition from the store.
  void SetDown(bool down);
  Counts counts() const;

  Result<store::KeyValue> Get(const std::string& key) override;
  Result<store::RangeResult> Range(const std::string& prefix) override;
  Result<store::TxnResult> Commit(const store::Txn& txn) override;
  Result<std::unique_ptr<store::Watcher>> Watch(const std::string& prefix,
                                                store::Revision start) override;
  Result<store::LeaseId> GrantLease(Duration ttl) override;
  Status KeepAlive(store::LeaseId lease) override;
  Status RevokeLease(store::LeaseId lease) override;

 private:
  class FaultWatcher;

  // Whether a call fails before reaching the inner store.
  bool FailBefore();
  // Whether a call that took effect loses its answer.
  bool FailAfter();
  // Whether the watch breaks now.
  bool BreakWatch();

  std::unique_ptr<store::Store> owned_;  // null when not owned
  store::Store& inner_;
  mutable std::mutex mu_;
  Random random_ GUARDED_BY(mu_);
  Faults faults_ GUARDED_BY(mu_);
  bool down_ GUARDED_BY(mu_) = false;
  Counts counts_ GUARDED_BY(mu_);
};

}  // namespace hafab::testing
