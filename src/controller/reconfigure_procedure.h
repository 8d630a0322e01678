// ReconfigureProcedure: a replicated role's primary moves (docs/replication.md), as a
// procedure (procedure.h) on the operation journal, every step idempotent:
//   detect -> drain -> fence -> collect -> promote -> confirm -> route
// drain:   a planned switchover to a chosen replica only: the role leaves the routing table
//          (no new write reaches the old primary), and the target catches up with the old
//          primary, so that it is as far as any replica when the replicas freeze (bounded:
//          then promote takes the most advanced, nothing acknowledged is lost either way).
// fence:   a new epoch with no primary in anyone's configuration: every replica that takes it
//          stops following (and acknowledging) the old primary, and the old primary, if it
//          hears it, stops acknowledging writes; the role leaves the routing table and every
//          live gateway acknowledges that.
// collect: the replicas that took the new epoch, with where their logs end. Promotion needs
//          enough of them to overlap every write quorum (voters - quorum + 1): then the most
//          advanced holds every acknowledged write. Fewer: nothing is promoted (an event
//          `quorum-lost` names the missing replicas) until enough answer, unless the operator
//          accepted data loss. A planned switchover also waits (as long as drain may) for
//          its target to answer, so that promote can take it.
// promote: the most advanced replica becomes the primary of the epoch; the others follow it.
// confirm: it says it is the primary of the epoch (it takes writes).
// route:   the gateways route to it.
// The old primary needs no wait on its lease: a replica of an older epoch cannot gather a
// quorum once the replicas that took the new one no longer follow it. Unit-tested without a
// controller (reconfigure_procedure_test.cc).
#pragma once

#include <cstddef>
#include <iterator>
#include <set>
#include <string>

#include "controller/procedure.h"
#include "controller/routes_ack.h"
#include "core/clock.h"

namespace hafab::controller {

inline constexpr const char* kReconfigureSteps[] = {"detect",  "drain",   "fence", "collect",
                                                    "promote", "confirm", "route"};

class ReconfigureProcedure : public Procedure {
 public:
  // `quorum_lost_after`: how long collect waits for enough replicas before it says so (an
  // event; it goes on waiting).
  // `drain_for`: how long a planned switchover's drain waits for its target to catch up.
  ReconfigureProcedure(Duration quorum_lost_after, Duration drain_for)
      : quorum_lost_after_(quorum_lost_after), drain_for_(drain_for) {}

  Step Run(Operation& op, const OpView& view, OpWrites& out) override;
  bool Advance(Operation& op) override;
  size_t StepsPerPass(const Operation&) const override { return std::size(kReconfigureSteps); }
  // The reconfigure-started event of a new reconfiguration.
  JournalEvent Started(const Operation& op) const;
  JournalEvent Finished(const Operation& op, const std::string& timeline) const override;
  void Forget(const Operation& op) override;

  // Of `role`'s replicas, those in the quorum (primary and secondary, not building).
  static std::vector<const InstanceRecord*> Voters(const OpView& view, const std::string& role);
  // How many voters must answer so that every write quorum has one among them.
  static int Needed(const RoleRecord& role, int voters);

 private:
  Step Drain(Operation& op, const OpView& view, OpWrites& out);
  Step Fence(Operation& op, const OpView& view, OpWrites& out);
  Step Collect(Operation& op, const OpView& view, OpWrites& out);
  Step Promote(Operation& op, const OpView& view, OpWrites& out);
  Step Confirm(Operation& op, const OpView& view, OpWrites& out);
  Step Route(Operation& op, const OpView& view, OpWrites& out);

  Duration quorum_lost_after_;
  Duration drain_for_;
  RoutesAck routes_ack_;
  std::set<std::string> quorum_lost_told_;  // op ids whose quorum-lost event went out
};

}  // namespace hafab::controller
