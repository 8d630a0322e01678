// RingMonitor: the agent's half of ring failure detection (docs/architecture.md, "Ring failure
// detection"). The controller gives each agent its ring neighbours (k on each side, by a hash
// of the node names); the agent probes them in turn, one every probe interval. A neighbour that
// does not answer within the probe timeout is probed again through up to `indirect` of the
// other neighbours (so one lossy link is not taken for a dead node); no answer either way
// within the indirect timeout and it is suspected. Suspicions, and the end of one when the
// neighbour answers again, are reports for the controller, which arbitrates
// (controller/ring_arbiter.h). A plain class on Clock&: the agent and the simulator drive it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "wire/ring.h"

namespace hafab::agent {

struct RingOptions {
  Duration probe_interval = std::chrono::milliseconds(100);    // one neighbour probed per interval
  Duration probe_timeout = std::chrono::milliseconds(50);      // then indirect probes
  Duration indirect_timeout = std::chrono::milliseconds(100);  // after the direct timeout
  int indirect = 2;  // neighbours asked to probe on our behalf
  // The seqs of this monitor's probes follow this one. The agent starts each run at a random
  // value, so that an ack recorded in an earlier run answers no probe of this one.
  uint64_t first_seq = 0;
};

// Not thread-safe.
class RingMonitor {
 public:
  using Send = std::function<void(const std::string& to, const wire::RingMessage&)>;

  RingMonitor(Clock& clock, std::string self, RingOptions options, Send send);

  // The neighbours to watch (from the controller's assignments). A suspicion of a node that is
  // no longer a neighbour is dropped without a report: the controller rebuilt the ring.
  void SetNeighbours(std::vector<std::string> neighbours);
  const std::vector<std::string>& neighbours() const { return neighbours_; }

  void OnMessage(const wire::RingMessage& m);
  // Probes due, timeouts passed. Call at least every probe_timeout / 2.
  void Tick();

  // Suspicions and their ends since the last call, oldest first.
  std::vector<wire::RingReport> TakeReports();
  bool Suspects(const std::string& node) const { return suspected_.count(node) > 0; }
  const std::set<std::string>& suspected() const { return suspected_; }
  // When Tick has something to do next (a probe, a timeout).
  TimePoint NextDue() const;

 private:
  struct Probe {
    std::string subject;
    TimePoint sent_at;
    bool indirect_sent = false;
  };

  void Heard(const std::string& node);
  void Report(const std::string& about, bool suspect);

  Clock& clock_;
  const std::string self_;
  const RingOptions options_;
  Send send_;
  std::vector<std::string> neighbours_;
  size_t next_ = 0;  // the neighbour probed next
  TimePoint next_probe_{};
  uint64_t seq_ = 0;
  std::map<uint64_t, Probe> probes_;  // seq -> our probe waiting for its ack
  // seq we pinged on someone's behalf -> (who asked, their seq)
  std::map<uint64_t, std::pair<std::string, uint64_t>> relayed_;
  std::map<uint64_t, TimePoint> relayed_at_;
  std::set<std::string> suspected_;
  std::vector<wire::RingReport> reports_;
};

}  // namespace hafab::agent
