#include "controller/replica.h"

#include <spdlog/spdlog.h>

#include "controller/records.h"
#include "core/json.h"

namespace hafab::controller {

using nlohmann::json;

namespace {

// Requests a follower cannot answer: writes, and what depends on the leader's memory.
bool LeaderOnly(const http::Request& req) {
  if (req.method != "GET") return true;
  const std::string& p = req.path;
  if (p == "/v1/routes" || p.rfind("/v1/routes?", 0) == 0) return true;
  return p.rfind("/v1/agents/", 0) == 0;  // assignments
}

}  // namespace

Replica::Replica(store::Store& store, Clock& clock, provider::Provider* provider, Tokens tokens,
                 ReplicaOptions opts)
    : store_(store),
      clock_(clock),
      provider_(provider),
      tokens_(std::move(tokens)),
      opts_(std::move(opts)),
      election_(store, clock, opts_.leader),
      probe_(clock, opts_.probe),
      dashboard_(tokens_, clock, opts_.https) {}

Replica::~Replica() {
  if (api_) api_->FlushAll();
  if (view_api_) view_api_->FlushAll();
}

void Replica::Tick() {
  LeaderElection::Change change = election_.Tick();
  if (controller_ && !election_.Leading()) EndTerm(election_.stats().last_step_down);
  if (opts_.probe_leader && !controller_ && change == LeaderElection::Change::kNone) {
    const LeaderInfo& l = election_.leader();
    if (probe_.Poll(l.id == opts_.leader.id ? "" : l.url)) {
      change = election_.TakeOver(probe_.evidence());
    }
  }
  if (change == LeaderElection::Change::kElected) BeginTerm();
  if (controller_) {
    controller_->Tick();
    if (controller_->deposed()) {
      election_.Resign("a write's leadership guard failed: another replica was elected");
      EndTerm("deposed");
    } else {
      api_->ExpireWaits();
    }
  }
  if (view_api_) view_api_->ExpireWaits();
}

void Replica::BeginTerm() {
  ControllerOptions co = opts_.controller;
  co.write_guard = election_.Guard();
  co.takeover_grace = election_.takeover_grace();
  const LeaderInfo& me = election_.leader();
  co.started_as = "as leader " + me.id + " (" + me.url + ", elected at store revision " +
                  std::to_string(me.revision) + ")";
  auto c = std::make_unique<Controller>(store_, clock_, provider_, co);
  Status st = c->Start();
  if (st.ok() && on_elected_) st = on_elected_(*c);
  if (!st.ok() || c->deposed()) {
    spdlog::error("replica: elected, but the controller could not start: {}", st.ToString());
    election_.Resign("controller start failed: " + st.message());
    return;
  }
  controller_ = std::move(c);
  api_ = std::make_unique<Api>(*controller_, clock_, tokens_);
  ++terms_;
  // The follower's view is stale from now on; drop it (long-polls on it get their answer).
  if (view_api_) view_api_->FlushAll();
  view_api_.reset();
  view_.reset();
  spdlog::info("replica: leading (term {} of this process); controller {}", terms_,
               controller_->id());
}

void Replica::EndTerm(const std::string& why) {
  spdlog::warn("replica: no longer leader ({}); following", why);
  // Waiting long-polls get what was published while leading (all of it committed), and
  // come back to a follower that answers "not leader".
  if (api_) api_->FlushAll();
  api_.reset();
  controller_.reset();
}

void Replica::Shutdown() {
  if (api_) api_->FlushAll();
  if (view_api_) view_api_->FlushAll();
  election_.Resign("shutting down");
  api_.reset();
  controller_.reset();
}

http::Response Replica::NotLeader() const {
  const LeaderInfo& l = election_.leader();
  return http::Response::Json(
      503, Dump(json{{"error", "not leader"}, {"leader", l.url}, {"leader_id", l.id}}));
}

json Replica::LeaderJson() const {
  const LeaderInfo& l = election_.leader();
  const LeaderStats& s = election_.stats();
  const LeaderOptions& o = election_.options();
  TimePoint now = clock_.Now();
  json j = {{"self", {{"id", o.id}, {"url", o.url}}},
            {"role", leading() ? "leader" : "follower"},
            {"leader", {{"id", l.id}, {"url", l.url}, {"revision", l.revision}}},
            {"leader_for_ms", l.id.empty() ? json(nullptr) : json(ToMs(now - s.term_started))},
            {"terms", s.elected},
            {"step_downs", s.stepped_down},
            {"last_step_down", s.last_step_down},
            {"campaigns", s.campaigns},
            {"renew_failures", s.renew_failures},
            {"takeovers", s.takeovers},
            {"last_takeover", s.last_takeover},
            {"leader_changes_seen", s.leader_changes},
            {"ttl_ms", ToMs(o.ttl)},
            {"margin_ms", ToMs(o.margin)}};
  if (leading()) j["lease_left_ms"] = ToMs(election_.lease_deadline() - o.margin - now);
  return j;
}

void Replica::Handle(http::Request&& req, http::Responder respond) {
  // Every answer names the leader, so a client can switch without another round trip.
  http::Responder tagged = [respond = std::move(respond),
                            leader = election_.leader().url](http::Response r) {
    r.headers.emplace_back("X-Hafab-Leader", leader);
    respond(std::move(r));
  };
  if (Dashboard::Serves(req.path)) return tagged(dashboard_.Handle(req));
  dashboard_.Authorize(req);
  if (req.method == "GET" && req.path == "/v1/dashboard/login") {
    return tagged(dashboard_.NewLogin(req));
  }
  if (req.method == "GET" && req.path == "/v1/leader") {
    if (Authenticate(tokens_, req.Header("authorization")).access == Access::kNone) {
      return tagged(http::Response::Json(
          401, Dump(json{{"error", "Authorization: missing or unknown bearer token"}})));
    }
    return tagged(http::Response::Json(200, Dump(LeaderJson())));
  }
  // Leading() is asked now, not at the last tick: a heartbeat answered after the lease's
  // margin would renew a node's lease on behalf of a leader that may have been replaced.
  if (leading()) return api_->Handle(std::move(req), std::move(tagged));
  HandleFollower(std::move(req), std::move(tagged));
}

http::Admission Replica::Admit(const http::Request& head) const {
  if (Dashboard::Serves(head.path)) return http::Admission{.refuse = std::nullopt, .body_limit = 0};
  http::Request authorized = head;
  dashboard_.Authorize(authorized);
  return AdmitRequest(tokens_, authorized);
}

void Replica::HandleFollower(http::Request&& req, http::Responder respond) {
  const Principal who = Authenticate(tokens_, req.Header("authorization"));
  const bool permitted = who.access != Access::kNone && Permit(who, req.method, req.path).ok();
  const bool leader_only = LeaderOnly(req);
  // Only a request the leader would take is sent there; the others get the Api's own
  // answer (401 or 403 with advice), which reads no state: no refresh for them.
  if (leader_only && permitted) return respond(NotLeader());
  if (!view_) {
    ControllerOptions co = opts_.controller;
    // A follower never writes: a compare that never holds makes sure of it.
    co.write_guard = {store::Compare{kLeaderKey, store::Compare::Target::kCreateRevision,
                                     store::Compare::Op::kLess, "", 0}};
    view_ = std::make_unique<Controller>(store_, clock_, provider_, co);
    view_api_ = std::make_unique<Api>(*view_, clock_, tokens_);
  }
  const TimePoint now = clock_.Now();
  const bool refused = leader_only || !permitted;
  if (!refused && (!view_loaded_ || now - *view_loaded_ >= opts_.follower_refresh)) {
    Status st = view_->Reload();
    if (!st.ok()) {
      return respond(ErrorResponse(st.WithContext("follower: cannot read the store")));
    }
    view_loaded_ = now;
  }
  view_api_->Handle(std::move(req), std::move(respond));
}

}  // namespace hafab::controller
