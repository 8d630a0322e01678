// The states agents report and the controller and gateway read, and those of the
// controller's operations (docs/architecture.md, "Wire messages"): one enum each, with its
// wire name and a parser that names the allowed values.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace hafab::wire {

// An instance process as its agent's supervisor sees it (agent/supervisor.h).
enum class InstanceState { kStarting, kRunning, kStopping, kStopped, kBackoff, kFailed };
// What the liveness probe concluded: failing after one failure, failed after its threshold.
enum class Liveness { kUnknown, kOk, kFailing, kFailed };
// What the readiness probe concluded; busy is out of rotation but alive (the seed's "busy").
enum class Readiness { kUnknown, kReady, kBusy, kFailed };
// A volume on a node: detached also covers an attach not finished yet.
enum class VolumeState { kAttached, kDetaching, kDetached };
// A journaled operation (GET /v1/ops): what it is and whether it still runs. A failed
// failover is followed by a new one; a failed rollout is rolled back.
// A reconfiguration moves a replicated role's primary (docs/replication.md).
enum class OpKind { kFailover, kRollout, kReconfigure };
enum class OpState { kRunning, kDone, kFailed };
// An update domain in a rollout, in the order it goes through them.
enum class DomainState { kPending, kDraining, kStopping, kStarting, kDone };

std::string_view InstanceStateName(InstanceState s);  // "starting", "running", ...
std::string_view LivenessName(Liveness l);            // "unknown", "ok", "failing", "failed"
std::string_view ReadinessName(Readiness r);          // "unknown", "ready", "busy", "failed"
std::string_view VolumeStateName(VolumeState s);      // "attached", "detaching", "detached"
std::string_view OpKindName(OpKind k);                // "failover", "rollout", ...
std::string_view OpStateName(OpState s);              // "running", "done", "failed"
std::string_view DomainStateName(DomainState s);      // "pending", "draining", ...

// std::nullopt for a name that is not one of the enum's.
std::optional<InstanceState> ParseInstanceState(std::string_view name);
std::optional<Liveness> ParseLiveness(std::string_view name);
std::optional<Readiness> ParseReadiness(std::string_view name);
std::optional<VolumeState> ParseVolumeState(std::string_view name);
std::optional<OpKind> ParseOpKind(std::string_view name);
std::optional<OpState> ParseOpState(std::string_view name);
std::optional<DomainState> ParseDomainState(std::string_view name);

// The allowed names, for error messages: "starting, running, stopping, stopped, ...".
std::string InstanceStateNames();
std::string LivenessNames();
std::string ReadinessNames();
std::string VolumeStateNames();
std::string OpKindNames();
std::string OpStateNames();
std::string DomainStateNames();

}  // namespace hafab::wire
