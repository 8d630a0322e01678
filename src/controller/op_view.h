// OpView: what a procedure's step (procedure.h) reads — the desired state (roles, instances,
// nodes), the observed state (leases, agents' reports, gateways' acknowledgements) and the
// placement rules — read-only. The controller implements it over its maps; a procedure's unit
// tests over a few records of their own (fake_op_state.h). Writes go through OpWrites.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "controller/observed.h"
#include "controller/records.h"
#include "core/clock.h"
#include "manifest/model.h"

namespace hafab::controller {

class OpView {
 public:
  virtual ~OpView() = default;

  // Desired state; nullptr when there is no such record.
  virtual const RoleRecord* Role(const std::string& name) const = 0;
  virtual const InstanceRecord* Instance(const std::string& name) const = 0;
  // The instances of `role`, by name.
  virtual std::vector<const InstanceRecord*> InstancesOf(const std::string& role) const = 0;
  virtual const NodeRecord* Node(const std::string& name) const = 0;

  // Liveness. NodeLive: the node holds a lease. NodeDeclaredDown: its record says down, or
  // there is none. NodeDown: either, or no lease. SilentPastMargin: silent for its lease plus
  // the fence margin — its agent has stopped its primaries itself.
  virtual bool NodeLive(const std::string& node) const = 0;
  virtual bool NodeDeclaredDown(const std::string& node) const = 0;
  virtual bool NodeDown(const std::string& node) const = 0;
  virtual bool SilentPastMargin(const std::string& node) const = 0;

  // What agents report. Observation: nullptr until this controller heard the node.
  virtual const NodeObservation* Observation(const std::string& node) const = 0;
  virtual const ObservedInstance* Observed(const InstanceRecord& inst) const = 0;
  // Every node whose agent reports volume `volume`, with its report.
  virtual std::vector<std::pair<std::string, ObservedVolume>> VolumeReports(
      const std::string& volume) const = 0;
  // The node's agent reports running the assignments last published for it.
  virtual bool AssignmentsTaken(const std::string& node) const = 0;
  // The instance restarted more often than its role's restart policy allows, lately.
  virtual bool RestartsExceeded(const InstanceRecord& inst) const = 0;

  // Routes: the version last published, and the first live gateway that has not
  // acknowledged `version` ("" when none).
  virtual int64_t RoutesVersion() const = 0;
  virtual std::string GatewayBehind(int64_t version) const = 0;

  // Placement (placement.h over the whole cluster): a node for one more instance of `role`
  // (`moving`: the instance that moves), not in `exclude`; the port `moving` would get there.
  virtual std::optional<std::string> Place(const std::string& role, const std::string& moving,
                                           const std::set<std::string>& exclude) const = 0;
  virtual int PortFor(const manifest::Role& spec, const std::string& node,
                      const std::string& moving) const = 0;

  // How long `op`'s current step has run, on the monotonic clock (OpJournal::StepElapsed).
  virtual Duration StepElapsed(const Operation& op) const = 0;
};

}  // namespace hafab::controller
