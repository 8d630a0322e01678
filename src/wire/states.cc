#include "wire/states.h"

#include <array>
#include <utility>

namespace hafab::wire {
namespace {

template <typename E, size_t N>
using Table = std::array<std::pair<E, std::string_view>, N>;

constexpr Table<InstanceState, 6> kInstanceStates{{{InstanceState::kStarting, "starting"},
                                                   {InstanceState::kRunning, "running"},
                                                   {InstanceState::kStopping, "stopping"},
                                                   {InstanceState::kStopped, "stopped"},
                                                   {InstanceState::kBackoff, "backoff"},
                                                   {InstanceState::kFailed, "failed"}}};
constexpr Table<Liveness, 4> kLiveness{{{Liveness::kUnknown, "unknown"},
                                        {Liveness::kOk, "ok"},
                                        {Liveness::kFailing, "failing"},
                                        {Liveness::kFailed, "failed"}}};
constexpr Table<Readiness, 4> kReadiness{{{Readiness::kUnknown, "unknown"},
                                          {Readiness::kReady, "ready"},
                                          {Readiness::kBusy, "busy"},
                                          {Readiness::kFailed, "failed"}}};
constexpr Table<VolumeState, 3> kVolumeStates{{{VolumeState::kAttached, "attached"},
                                               {VolumeState::kDetaching, "detaching"},
                                               {VolumeState::kDetached, "detached"}}};
constexpr Table<OpKind, 3> kOpKinds{{{OpKind::kFailover, "failover"},
                                     {OpKind::kRollout, "rollout"},
                                     {OpKind::kReconfigure, "reconfigure"}}};
constexpr Table<OpState, 3> kOpStates{
    {{OpState::kRunning, "running"}, {OpState::kDone, "done"}, {OpState::kFailed, "failed"}}};
constexpr Table<DomainState, 5> kDomainStates{{{DomainState::kPending, "pending"},
                                               {DomainState::kDraining, "draining"},
                                               {DomainState::kStopping, "stopping"},
                                               {DomainState::kStarting, "starting"},
                                               {DomainState::kDone, "done"}}};

template <typename E, size_t N>
std::string_view NameIn(const Table<E, N>& table, E value) {
  for (const auto& [e, name] : table) {
    if (e == value) return name;
  }
  return table[0].second;
}

template <typename E, size_t N>
std::optional<E> ParseIn(const Table<E, N>& table, std::string_view name) {
  for (const auto& [e, n] : table) {
    if (n == name) return e;
  }
  return std::nullopt;
}

template <typename E, size_t N>
std::string NamesIn(const Table<E, N>& table) {
  std::string out;
  for (const auto& [e, name] : table) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

}  // namespace

std::string_view InstanceStateName(InstanceState s) { return NameIn(kInstanceStates, s); }
std::string_view LivenessName(Liveness l) { return NameIn(kLiveness, l); }
std::string_view ReadinessName(Readiness r) { return NameIn(kReadiness, r); }
std::string_view VolumeStateName(VolumeState s) { return NameIn(kVolumeStates, s); }
std::string_view OpKindName(OpKind k) { return NameIn(kOpKinds, k); }
std::string_view OpStateName(OpState s) { return NameIn(kOpStates, s); }
std::string_view DomainStateName(DomainState s) { return NameIn(kDomainStates, s); }

std::optional<InstanceState> ParseInstanceState(std::string_view name) {
  return ParseIn(kInstanceStates, name);
}
std::optional<Liveness> ParseLiveness(std::string_view name) { return ParseIn(kLiveness, name); }
std::optional<Readiness> ParseReadiness(std::string_view name) { return ParseIn(kReadiness, name); }
std::optional<VolumeState> ParseVolumeState(std::string_view name) {
  return ParseIn(kVolumeStates, name);
}
std::optional<OpKind> ParseOpKind(std::string_view name) { return ParseIn(kOpKinds, name); }
std::optional<OpState> ParseOpState(std::string_view name) { return ParseIn(kOpStates, name); }
std::optional<DomainState> ParseDomainState(std::string_view name) {
  return ParseIn(kDomainStates, name);
}

std::string InstanceStateNames() { return NamesIn(kInstanceStates); }
std::string LivenessNames() { return NamesIn(kLiveness); }
std::string ReadinessNames() { return NamesIn(kReadiness); }
std::string VolumeStateNames() { return NamesIn(kVolumeStates); }
std::string OpKindNames() { return NamesIn(kOpKinds); }
std::string OpStateNames() { return NamesIn(kOpStates); }
std::string DomainStateNames() { return NamesIn(kDomainStates); }

}  // namespace hafab::wire
