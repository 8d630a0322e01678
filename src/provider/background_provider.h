// BackgroundProvider: the controller's view of a Provider that never blocks its caller.
//
// The controller decides on one event-loop thread; a provider call may take seconds (a
// cloud CLI detaching a disk). Blocking the loop that long stops heartbeats from being
// answered — other nodes' leases run out and they fence themselves — and, with replicas, the
// leader's own lease. This wrapper runs every call on one worker thread and answers at once:
//
// - ForceDetach(v, n): the first call starts it and returns Unavailable("… in progress");
//   later calls return Unavailable while it runs, then its result once (a result not
//   collected within a minute is dropped, and the next call starts afresh).
// - Describe(v): the result of the latest Describe of `v` if it completed within the last
//   500 ms, else Unavailable("… in progress") while a new one runs (one is started whenever
//   none is running). A ForceDetach of `v` completing discards every Describe result begun
//   before it, so a caller never sees the attachment as it was before its own detach, nor
//   one older than the caller's current step (the controller polls every 20 ms).
// - AddEndpoint / RemoveEndpoint: queued; OK at once; a failure is logged by the worker.
// - Attach, Detach, MountPath: the agent's calls, passed straight through (not used by the
//   controller).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/clock.h"
#include "provider/provider.h"

namespace hafab::provider {

class BackgroundProvider final : public Provider {
 public:
  // `clock` times out uncollected results; it must outlive this object.
  BackgroundProvider(std::unique_ptr<Provider> inner, Clock& clock);
  ~BackgroundProvider() override;  // waits for the call running now, drops the queue

  Status Attach(const std::string& volume, const std::string& node,
                const std::string& instance) override;
  Status Detach(const std::string& volume, const std::string& node) override;
  Status ForceDetach(const std::string& volume, const std::string& node) override;
  Result<VolumeAttachment> Describe(const std::string& volume) override;
  std::string MountPath(const std::string& volume, const std::string& node) override;
  Status AddEndpoint(const std::string& role, const std::string& node) override;
  Status RemoveEndpoint(const std::string& role, const std::string& node) override;

  // Calls queued or running (for tests and status).
  size_t pending() const;

 private:
  struct Detaching {
    bool done = false;
    Status result;
    TimePoint finished;
  };
  struct Described {
    bool running = false;
    uint64_t generation = 0;  // bumped by each completed ForceDetach of the volume
    std::optional<Result<VolumeAttachment>> latest;
    TimePoint completed;  // of `latest`
  };

  void Enqueue(std::function<void()> call);                     // REQUIRES: mu_ held
  void StartDescribe(const std::string& volume, Described& d);  // REQUIRES: mu_ held
  void Run();

  std::unique_ptr<Provider> inner_;
  Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  size_t running_ = 0;
  std::deque<std::function<void()>> queue_;
  std::map<std::pair<std::string, std::string>, Detaching> detaching_;  // (volume, node)
  std::map<std::string, Described> described_;                          // by volume
  std::thread worker_;
};

}  // namespace hafab::provider
