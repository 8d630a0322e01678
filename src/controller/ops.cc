// The controller's side of the operations: it starts them, is the journal's store (its pending
// transaction and event log, the write set) and the procedures' view (OpView) of its state,
// and picks each operation's procedure (op_journal.h runs the steps).
#include <spdlog/spdlog.h>

#include "controller/controller.h"

namespace hafab::controller {

// A new operation on `role` at its first step; its kind's part is the caller's.
Operation Controller::NewOperation(const RoleRecord& role, const std::string& reason,
                                   const char* first_step) {
  Operation op;
  op.id = "op-" + std::to_string(NextSeq());
  op.role = role.spec.name;
  op.reason = reason;
  op.owner = id_;
  op.step = first_step;
  op.created_ms = WallMs(clock_);
  return op;
}

// What a failover and a reconfiguration both move: from the role's primary (and its node) to
// the next epoch; planned, `to` the target asked for.
void Controller::MovePrimary(const RoleRecord& role, bool planned, const std::string& to,
                             FailoverOp* f) {
  f->planned = planned;
  f->to = to;
  f->old_primary = role.primary;
  if (const InstanceRecord* old = FindInstance(role.primary)) f->old_node = old->node;
  f->epoch = role.epoch + 1;
}

void Controller::BeginOperation(const Operation& op, JournalEvent started) {
  PutOp(op);
  Emit(started.type, started.message, std::move(started.fields));
  AdvanceOp(ops_[op.id]);
}

void Controller::StartFailover(RoleRecord& role, const std::string& reason, bool planned,
                               const std::string& to) {
  if (ActiveOp(role.spec.name) != nullptr) return;
  Operation op = NewOperation(role, reason, kFailoverSteps[0]);
  FailoverOp& f = op.part.emplace<FailoverOp>();
  MovePrimary(role, planned, to, &f);
  f.volume = role.spec.volume;
  BeginOperation(op, failover_.Started(op));
}

void Controller::StartReconfiguration(const RoleRecord& role, const std::string& reason,
                                      bool planned, const std::string& to, bool accept_data_loss) {
  if (ActiveOp(role.spec.name) != nullptr) return;
  Operation op = NewOperation(role, reason, kReconfigureSteps[0]);
  ReconfigureOp& r = op.part.emplace<ReconfigureOp>();
  MovePrimary(role, planned, to, &r);
  r.accept_data_loss = accept_data_loss;
  BeginOperation(op, reconfigure_.Started(op));
}

Procedure& Controller::ProcedureFor(const Operation& op) {
  switch (op.kind()) {
    case wire::OpKind::kRollout:
      return rollout_;
    case wire::OpKind::kReconfigure:
      return reconfigure_;
    case wire::OpKind::kFailover:
      break;
  }
  return failover_;
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

const RoleRecord* Controller::Role(const std::string& name) const {
  auto it = roles_.find(name);
  return it == roles_.end() ? nullptr : &it->second;
}

const InstanceRecord* Controller::Instance(const std::string& name) const {
  auto it = instances_.find(name);
  return it == instances_.end() ? nullptr : &it->second;
}

std::vector<const InstanceRecord*> Controller::InstancesOf(const std::string& role) const {
  std::vector<const InstanceRecord*> out;
  for (const auto& name : FoundOrEmpty(by_role_, role)) out.push_back(&instances_.at(name));
  return out;
}

const NodeRecord* Controller::Node(const std::string& name) const {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : &it->second;
}

std::vector<std::pair<std::string, ObservedVolume>> Controller::VolumeReports(
    const std::string& volume) const {
  std::vector<std::pair<std::string, ObservedVolume>> out;
  for (const auto& node : FoundOrEmpty(volume_reporters_, volume)) {
    out.emplace_back(node, observed_.at(node).volumes.at(volume));
  }
  return out;
}

bool Controller::AssignmentsTaken(const std::string& node) const {
  const NodeObservation* obs = Observation(node);
  auto g = node_generation_.find(node);
  return obs != nullptr &&
         obs->assignments_generation >= (g == node_generation_.end() ? 0 : g->second);
}

std::string Controller::GatewayBehind(int64_t version) const {
  for (const auto& gw : gateway_leases_.Holders()) {
    auto acked = gateway_acked_.find(gw);
    if (acked == gateway_acked_.end() || acked->second < version) return gw;
  }
  return "";
}

int64_t Controller::OpenConnections(const std::string& instance) const {
  int64_t n = 0;
  for (const auto& gw : gateway_leases_.Holders()) {
    auto g = gateway_active_.find(gw);
    if (g == gateway_active_.end()) continue;
    auto c = g->second.find(instance);
    if (c != g->second.end()) n += static_cast<int64_t>(c->second);
  }
  return n;
}

}  // namespace hafab::controller
