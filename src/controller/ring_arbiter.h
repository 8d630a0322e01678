// RingArbiter: the controller's half of ring failure detection (docs/architecture.md, "Ring
// failure detection"). Agents report the neighbours they stop hearing (agent/ring_monitor.h);
// the arbiter decides. A node accused by enough of its watchers (two, or all of them when
// fewer are alive) is asked to speak to the controller (a check: the controller wakes its
// long poll and the agent heartbeats at once); silent for `check_timeout`, it is down. One that
// answers while its accusers stand is isolated: cut from its neighbours, not failed — said
// once, and checked again every `recheck_interval` while the accusations stand (it may die
// later without a new one). Whether its primaries may be taken over is not decided here: that
// still waits for its lease plus the margin (fencing is unchanged). A plain class on Clock&.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "wire/ring.h"

namespace hafab::controller {

struct ArbiterOptions {
  int accusers = 2;  // watchers that must suspect a node (fewer if fewer are alive)
  // How long an accused node has to answer the controller's check. Longer than the pauses a
  // merely slow node takes (twice the probe interval), so that it is not failed.
  Duration check_timeout = std::chrono::milliseconds(400);
  Duration recheck_interval = std::chrono::seconds(1);
};

struct Verdict {
  enum class Kind {
    kCheck,     // ask the node to report now
    kDown,      // accused and silent: down
    kIsolated,  // accused, yet it answers the controller
  };
  Kind kind = Kind::kCheck;
  std::string node;
  std::string why;
};

// Not thread-safe.
class RingArbiter {
 public:
  RingArbiter(Clock& clock, ArbiterOptions options) : clock_(clock), options_(options) {}

  void Report(const std::string& reporter, const wire::RingReport& report);
  // The node reached the controller (a heartbeat).
  void Heard(const std::string& node);
  // The node is down or gone: its accusations, and those it made, are dropped.
  void Forget(const std::string& node);
  // The verdicts due now. `live_watchers(node)` counts the node's watchers that
  // are up: the accusers it takes are the fewer of that and options.accusers. O(accused).
  std::vector<Verdict> Tick(const std::function<int(const std::string&)>& live_watchers);

  bool Accused(const std::string& node) const { return accused_.count(node) > 0; }
  std::set<std::string> AccusersOf(const std::string& node) const;

 private:
  struct Accusation {
    std::set<std::string> by;
    std::optional<TimePoint> check_since;  // a check is waiting for the node's answer
    std::optional<TimePoint> last_check;   // when the last check ended (answered or not)
    bool check_now = false;                // a new accuser: check at the next tick
    bool answered = false;                 // a check was answered since the last tick
    bool isolated_told = false;
  };

  Clock& clock_;
  ArbiterOptions options_;
  std::map<std::string, Accusation> accused_;
};

}  // namespace hafab::controller
