// RolloutProcedure: the rolling upgrade of a load-balanced role (rollout.h) as a procedure
// (procedure.h): drain, stop, start, route, once per wave of update domains; a failed start
// turns it into a rollback. It reads the cluster through an OpView and writes through an
// OpWrites; the journal commits and publishes. Unit-tested without a controller
// (rollout_procedure_test.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "controller/procedure.h"
#include "controller/routes_ack.h"
#include "core/clock.h"

namespace hafab::controller {

inline constexpr const char* kRolloutSteps[] = {"drain", "stop", "start", "route"};

// An instance's update domain: its node's, or the node's name when it has none.
std::string DomainOf(const OpView& view, const InstanceRecord& inst);

// The update domains with an instance of `role` not at `revision`: `first` in its order, then
// the others by name.
std::vector<std::string> DomainsBehind(const OpView& view, const std::string& role,
                                       int64_t revision, const std::vector<std::string>& first);

class RolloutProcedure : public Procedure {
 public:
  // `clock`: the wall time a rollback closes the interrupted step's timeline entry at.
  explicit RolloutProcedure(const Clock& clock) : clock_(clock) {}

  std::string StepLabel(const Operation& op) const override;  // the step and its wave's domains
  Step Run(Operation& op, const OpView& view, OpWrites& out) override;
  bool Advance(Operation& op) override;
  size_t StepsPerPass(const Operation& op) const override {
    return std::size(kRolloutSteps) * (op.rollout().domains.size() + 1);
  }
  // The rollout-started (or rollback-started) event of a new rollout.
  JournalEvent Started(const Operation& op) const;
  JournalEvent Finished(const Operation& op, const std::string& timeline) const override;
  void Forget(const Operation& op) override { routes_ack_.Forget(op.id); }

  // Turns `op` back towards the role's previous spec (swapped into the role record), the wave
  // under way first: a failed start, or an operator's rollback. op.error says why (or, when
  // the role keeps no previous spec, that it cannot).
  void BeginRollback(Operation& op, const OpView& view, OpWrites& out, const std::string& why);

 private:
  Step Drain(Operation& op, const OpView& view, OpWrites& out);
  Step Stop(Operation& op, const OpView& view, OpWrites& out);
  Step Start(Operation& op, const OpView& view, OpWrites& out);
  Step Route(Operation& op, const OpView& view, OpWrites& out);
  // The domains of the wave under way.
  static std::vector<std::string> WaveDomains(const Operation& op);
  // Puts the wave's domains in `state` (and `op`, when that changes it).
  static void SetWaveState(Operation& op, OpWrites& out, wire::DomainState state);

  const Clock& clock_;
  RoutesAck routes_ack_;
};

}  // namespace hafab::controller
