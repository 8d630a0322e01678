// LeaderProbe: a follower's quick check that the leader's process is gone.
//
// The leader key outlives a leader that crashed by its store lease (--leader-ttl, whole
// seconds on etcd, plus etcd's 500 ms expiry check), and every agent's lease runs out in
// that gap. A refused TCP connection to the leader's advertised address is stronger evidence
// than silence: the leader's host is up and answering, and nothing listens on the port, so
// the process has died (or closed its API). A host that is down or cut off does not refuse —
// connections to it time out — and then the lease decides, as before. The probe only says
// what it saw; LeaderElection::TakeOver decides what that may cost (docs/architecture.md).
#pragma once

#include <string>

#include "core/clock.h"

namespace hafab::controller {

struct LeaderProbeOptions {
  Duration interval = std::chrono::milliseconds(50);  // between connection attempts
  // A connection neither accepted nor refused within this is inconclusive (a silent host).
  Duration connect_timeout = std::chrono::milliseconds(200);
  // Refusals in a row (with nothing accepted or inconclusive between) before Poll says gone.
  int refusals = 3;
};

// Not thread-safe. Never blocks: connections are non-blocking and checked at each Poll.
class LeaderProbe {
 public:
  LeaderProbe(Clock& clock, LeaderProbeOptions opts = {});
  ~LeaderProbe();
  LeaderProbe(const LeaderProbe&) = delete;
  LeaderProbe& operator=(const LeaderProbe&) = delete;

  // Call every tick with the current leader's URL (http://HOST:PORT/..., HOST a numeric IPv4
  // or IPv6 address; other URLs and "" are not probed). Returns true when the last
  // `refusals` attempts on this URL were all refused; then starts counting afresh. A new URL
  // starts afresh too.
  bool Poll(const std::string& leader_url);
  // Why the last true Poll said so, for the logs and events.
  const std::string& evidence() const { return evidence_; }

 private:
  void Close();
  // Starts a connection to url_; false when the URL cannot be probed.
  bool Start(TimePoint now);

  Clock& clock_;
  LeaderProbeOptions opts_;
  std::string url_;
  int fd_ = -1;
  TimePoint started_{};
  TimePoint next_{};
  int refused_ = 0;
  TimePoint first_refusal_{};
  std::string evidence_;
};

}  // namespace hafab::controller
