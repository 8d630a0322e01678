// Replica: one `hafab controller` process among several on one store. It runs the leader
// election (leader.h) and, while it leads, a Controller and its Api; when it does not, it
// answers as a follower:
//
// - GETs of the operator views (status, roles, nodes, volumes, ops, gateways, events) from
//   a read-only Controller re-read from the store (at most every `follower_refresh`).
//   Observed state (heartbeats) lives only in the leader's memory, so a follower shows
//   every node as "waiting" and instance states as unknown.
// - Everything else — writes, agent and gateway heartbeats, assignments and routes (which
//   depend on the leader's observed state) — with
//     503 {"error": "not leader", "leader": "<leader's URL, or \"\" during an election>"}
//   Agents, gateways and the CLI follow the hint (or rotate to their next URL). A 503
//   rather than a 307: a client must re-send the request to the leader itself anyway
//   (a redirected POST would be re-sent blindly, and during an election there is no one
//   to redirect to), and heartbeats must count as failures, not be retried in a loop.
// - `GET /v1/leader` (either role): who leads, this replica's role, terms, step-downs.
// - The dashboard (/ui, `GET /v1/dashboard/login`; dashboard.h), either role: a follower's
//   page shows its store view and names the leader.
// Every answer carries `X-Hafab-Leader: <url>`.
//
// Each term gets a fresh Controller: Start() loads the store, gives every known node and
// gateway one full lease before judging it, and resumes every running operation — the
// same path as a restart. A follower whose connections to the leader's URL are refused
// (its process died) takes over at once instead of waiting out the leader key's lease; that
// term's leases are longer by the old leader's possible remainder (leader.h, TakeOver). Its
// transactions carry the election's guard, so a deposed leader writes nothing; a term ends at once
// when the election steps down or a write's guard fails, and long-polls of that term are answered
// then.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "controller/api.h"
#include "controller/controller.h"
#include "controller/dashboard.h"
#include "controller/leader.h"
#include "controller/leader_probe.h"
#include "controller/tokens.h"
#include "core/clock.h"
#include "http/http.h"
#include "provider/provider.h"
#include "store/store.h"

namespace hafab::controller {

struct ReplicaOptions {
  LeaderOptions leader;
  ControllerOptions controller;  // for each term's Controller (write_guard is set per term)
  Duration follower_refresh = std::chrono::milliseconds(250);
  // A follower probes the leader's URL and takes over when its process is gone
  // (LeaderProbe, LeaderElection::TakeOver). Off: only the leader key's lease decides.
  bool probe_leader = true;
  LeaderProbeOptions probe;
  bool https = false;  // the API is served over TLS: the dashboard's cookie is marked Secure
};

// Not thread-safe: the daemon's event-loop thread calls everything.
class Replica {
 public:
  // `store`, `clock` and `provider` (may be null, as for Controller) outlive the replica.
  Replica(store::Store& store, Clock& clock, provider::Provider* provider, Tokens tokens,
          ReplicaOptions opts);
  ~Replica();

  // Runs after each term's controller started, before it serves (e.g. apply --manifest).
  // An error ends the term (and resigns).
  void SetOnElected(std::function<Status(Controller&)> f) { on_elected_ = std::move(f); }

  // Election; the leader's controller tick and long-poll expiry. Call every ~20 ms.
  void Tick();
  void Handle(http::Request&& req, http::Responder respond);
  // The listener's http::HeaderCheck: AdmitRequest, after a dashboard session cookie stands
  // for the read token (Dashboard::Authorize); the dashboard's own pages need no credential.
  http::Admission Admit(const http::Request& head) const;
  // Answers every long-poll and resigns, so a follower takes over without waiting for the
  // leader lease to expire. For SIGTERM.
  void Shutdown();

  bool leading() const { return controller_ != nullptr && election_.Leading(); }
  // The current term's controller; null when following.
  Controller* controller() { return leading() ? controller_.get() : nullptr; }
  // The body of GET /v1/leader.
  nlohmann::json LeaderJson() const;

 private:
  void BeginTerm();
  void EndTerm(const std::string& why);
  void HandleFollower(http::Request&& req, http::Responder respond);
  http::Response NotLeader() const;

  store::Store& store_;
  Clock& clock_;
  provider::Provider* provider_;
  Tokens tokens_;
  ReplicaOptions opts_;
  LeaderElection election_;
  LeaderProbe probe_;
  std::function<Status(Controller&)> on_elected_;
  Dashboard dashboard_;

  // The current term (leader only).
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<Api> api_;
  int64_t terms_ = 0;

  // The follower's read-only view.
  std::unique_ptr<Controller> view_;
  std::unique_ptr<Api> view_api_;
  std::optional<TimePoint> view_loaded_;  // when view_ last read the store
};

}  // namespace hafab::controller
