// FailoverProcedure: the failover of an active-passive role as a procedure (procedure.h) —
// DESIGN.md's nine steps, in order, each idempotent (running a step twice leaves the same
// state), each confirmed before the next starts:
//   detect -> fence -> stop -> detach -> promote -> wait_detached -> attach -> start -> route
// It reads the cluster through an OpView and writes through an OpWrites; the journal commits
// and publishes. Its memory (the routes version its fence waits for, the provider calls made
// once) is per operation and forgotten at the end; a controller that resumes an operation
// starts it afresh. Unit-tested without a controller (failover_procedure_test.cc).
#pragma once

#include <cstddef>
#include <iterator>
#include <map>
#include <set>
#include <string>

#include "controller/procedure.h"
#include "controller/routes_ack.h"
#include "provider/provider.h"

namespace hafab::controller {

// The nine failover steps of DESIGN.md, in order; then "done".
inline constexpr const char* kFailoverSteps[] = {
    "detect", "fence", "stop", "detach", "promote", "wait_detached", "attach", "start", "route"};

class FailoverProcedure : public Procedure {
 public:
  // `provider` (may be null: then detach completion is judged from agents' reports only) must
  // outlive the procedure. `unsafe_skip_stop_wait`: TEST ONLY (ControllerOptions, hafab-sim
  // --break stop-wait): stop does not wait for the old primary to stop or fence itself.
  explicit FailoverProcedure(provider::Provider* provider, bool unsafe_skip_stop_wait = false)
      : provider_(provider), unsafe_skip_stop_wait_(unsafe_skip_stop_wait) {}

  Step Run(Operation& op, const OpView& view, OpWrites& out) override;
  bool Advance(Operation& op) override;
  size_t StepsPerPass(const Operation&) const override { return std::size(kFailoverSteps); }
  // The failover-started event of a new failover.
  JournalEvent Started(const Operation& op) const;
  JournalEvent Finished(const Operation& op, const std::string& timeline) const override;
  void Forget(const Operation& op) override;

 private:
  Step Fence(Operation& op, const OpView& view, OpWrites& out);
  Step Stop(Operation& op, const OpView& view, OpWrites& out);
  Step Detach(Operation& op, const OpView& view, OpWrites& out);
  Step Promote(Operation& op, const OpView& view, OpWrites& out);
  Step WaitDetached(Operation& op, const OpView& view, OpWrites& out);
  Step Attach(Operation& op, const OpView& view, OpWrites& out);
  Step Start(Operation& op, const OpView& view, OpWrites& out);
  Step Route(Operation& op, const OpView& view, OpWrites& out);

  // The standby to promote (PickStandby), or else an instance moved to (or restarted on) a
  // node with room; "" when there is none.
  std::string ChooseNewPrimary(const Operation& op, const OpView& view, OpWrites& out);
  // The new primary at the operation's epoch, with the volume, run or not; nullptr (and
  // `error`) when it or its node is gone.
  const InstanceRecord* AssignNewPrimary(const Operation& op, const OpView& view, OpWrites& out,
                                         bool run, std::string* error);
  // `node` is silent (no live lease) and SilentPastMargin — or, for the operation's old node,
  // the journal says an earlier controller saw that during `op` (old_node_fenced, journaled
  // here at the first sighting and cleared by the node's next heartbeat).
  bool SilentNodeFenced(Operation& op, const OpView& view, OpWrites& out, const std::string& node);

  provider::Provider* provider_;
  bool unsafe_skip_stop_wait_;
  RoutesAck routes_ack_;
  // op id -> the provider's endpoint calls made for it ("removed", "added"): once each.
  std::map<std::string, std::set<std::string>> endpoint_calls_;
};

}  // namespace hafab::controller
