// RoutesAck: a step's wait for the gateways to take a routes table — the failover's fence (the
// primary unrouted) and the rollout's drain (a wave out of rotation). Per operation it notes
// the routes version current when the step first checks (the step has had its writes published
// before: Step::Publish), and is done once every live gateway has acknowledged that version (a
// gateway whose lease ended has stopped routing by itself).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "controller/op_view.h"
#include "controller/procedure.h"

namespace hafab::controller {

class RoutesAck {
 public:
  Step Check(const Operation& op, const OpView& view) {
    int64_t& version = version_[op.id];
    if (version == 0) version = view.RoutesVersion();
    const std::string behind = view.GatewayBehind(version);
    if (behind.empty()) return Step::Done();
    return Step::Wait("waiting for gateway " + behind + " to acknowledge routes version " +
                      std::to_string(version));
  }
  // The next check of `op` notes the version current then (a new wave, a rollback, the end).
  void Forget(const std::string& op) { version_.erase(op); }

 private:
  std::map<std::string, int64_t> version_;  // op id -> the routes version to confirm
};

}  // namespace hafab::controller
