// The controller's side of the operation journal (op_journal.h): it is the journal's store
// (its pending transaction and event log) and picks each operation's procedure.
#include "controller/controller.h"

namespace hafab::controller {

Procedure& Controller::ProcedureFor(const Operation& op) {
  return op.kind() == wire::OpKind::kRollout ? *rollout_ : *failover_;
}

void Controller::AdvanceOps() {
  std::vector<std::string> running;
  for (const auto& [role, id] : running_ops_) running.push_back(id);
  for (const auto& id : running) {
    if (Halted()) return;
    auto it = ops_.find(id);
    if (it != ops_.end()) AdvanceOp(it->second);
  }
}

void Controller::AdvanceOp(Operation& op) {
  if (opts_.drive_ops) journal_.Drive(op, ProcedureFor(op));
}

std::string Controller::RunStepOnce(const std::string& id, bool complete) {
  auto it = ops_.find(id);
  if (it == ops_.end()) return "none";
  std::string result = journal_.RunOnce(it->second, ProcedureFor(it->second), complete);
  Publish();
  return result;
}

bool Controller::RoleRemoved(Operation& op) {
  if (roles_.count(op.role)) return false;
  op.error = "role " + op.role + " was removed";
  return true;
}

}  // namespace hafab::controller
