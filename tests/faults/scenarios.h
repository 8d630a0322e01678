// Fault scenarios for the fault-injection harness: each injects one failure into a real
// embedded cluster (`hafab up`) while the checking client writes through the gateway, waits
// for the fabric to recover, and reports what the checker saw.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/random.h"
#include "core/result.h"
#include "tests/e2e/cluster.h"

namespace hafab::faults {

// What one injected fault did to the clients.
struct IterationResult {
  Duration downtime{};  // sum of the gateway checker's unavailability windows
  int64_t acked = 0;
  int64_t lost = 0;
  int64_t split_brain = 0;
  std::string detail;   // the fault injected (e.g. the crash step) and the violations
  std::string skipped;  // not "": the scenario cannot run here (why); nothing was checked
  int64_t spliced = 0;  // connections the gateway had handed to its kernel data path
};

// How the checking client reaches kvd: the gateway's data path (`hafab up
// --gateway-data-path`), and writes over a kept-alive connection or a connection each.
struct Clients {
  std::string data_path = "user";
  bool keep_alive = false;
};

class Scenario {
 public:
  virtual ~Scenario() = default;
  virtual std::string name() const = 0;
  // Runs one iteration: brings up (or reuses) a cluster, injects the fault, waits for the
  // fabric to recover and checks the writes. Errors mean the harness could not run the
  // iteration (a timeout waiting for recovery is an error too: downtime was not bounded).
  virtual Result<IterationResult> RunOnce(Random& rng) = 0;
  // Stops the cluster, if any. Errors: the stop was not clean (processes left behind).
  virtual Status Finish() = 0;

  void set_clients(const Clients& c) { clients_ = c; }

 protected:
  Clients clients_;
};

// Names of the scenarios of `group`, in the order they run: "active-passive" (the e2e
// manifest's kvd), "replicated" (examples/replicated.yaml's kv) or anything else for all.
std::vector<std::string> ScenarioNames(const std::string& group = "all");
// Errors: NotFound for an unknown name.
Result<std::unique_ptr<Scenario>> MakeScenario(const std::string& name);

}  // namespace hafab::faults
