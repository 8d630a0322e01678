#include "controller/api.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <optional>
#include <vector>

#include "core/json.h"
#include "manifest/limits.h"
#include "manifest/parser.h"
#include "manifest/units.h"
#include "wire/routes.h"

namespace hafab::controller {

using nlohmann::json;

namespace {

constexpr int64_t kMaxWaitMs = 60000;
using manifest::kMaxInstancesPerRole;

// Reads an integer query parameter; `fallback` when absent.
Result<int64_t> QueryInt(const http::Request& req, const std::string& name, int64_t fallback) {
  std::string v = req.Query(name);
  if (v.empty()) return fallback;
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size() || out < 0) {
    return Status::InvalidArgument(name + ": must be a non-negative integer, got '" + v + "'");
  }
  return out;
}

Result<json> BodyJson(const http::Request& req, bool allow_empty) {
  if (req.body.empty() && allow_empty) return json::object();
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded()) return Status::InvalidArgument("body: not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument("body: must be a JSON object");
  return j;
}

// What the read token sees: every value of an `env` object anywhere in the answer replaced
// (today the assignments carry env; a view that grows one is covered without more code).
void RedactEnv(json& j) {
  if (j.is_array()) {
    for (auto& item : j) RedactEnv(item);
    return;
  }
  if (!j.is_object()) return;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "env" && it->is_object()) {
      for (auto& value : *it) value = kRedacted;
    } else {
      RedactEnv(*it);
    }
  }
}

http::Response Ok(json j, bool redact = false) {
  if (redact) RedactEnv(j);
  return http::Response::Json(200, Dump(j));
}

}  // namespace

int HttpStatus(const Status& st) {
  switch (st.code()) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kConflict:
      return 409;
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
      return 503;
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

http::Response ErrorResponse(const Status& st) {
  return http::Response::Json(HttpStatus(st), Dump(json{{"error", st.message()}}));
}

Api::Api(Controller& controller, Clock& clock, Tokens tokens)
    : c_(controller), clock_(clock), tokens_(std::move(tokens)) {
  ControllerListener l;
  l.assignments_changed = [this](const std::string& node) { Wake(Kind::kAssignments, node); };
  l.routes_changed = [this] { Wake(Kind::kRoutes, ""); };
  // The ring arbiter's check: the node's long poll is answered now (the list it has), and its
  // agent heartbeats at once when a poll ends before its wait (agent.cc, Poll).
  l.check_node = [this](const std::string& node) {
    std::vector<uint64_t> ids;
    auto range = by_node_.equal_range(node);
    for (auto n = range.first; n != range.second; ++n) ids.push_back(n->second);
    for (uint64_t id : ids) Answered(id);
  };
  // Events are announced before they are committed: answer after the call that made them.
  l.event_added = [this] { events_pending_ = true; };
  c_.SetListener(std::move(l));
}

namespace {

// 401 when the request names no valid credential, 403 when its credential does not allow it.
std::optional<http::Response> AuthError(const Principal& who, const http::Request& req) {
  if (who.access == Access::kNone) {
    return http::Response::Json(
        401, Dump(json{{"error", req.Header("authorization").empty()
                                     ? "Authorization: missing; send 'Bearer TOKEN' (admin.token "
                                       "or read.token in the state directory, or an agent or "
                                       "gateway credential: hafab token create)"
                                     : "Authorization: unknown bearer token"}}));
  }
  Status permitted = Permit(who, req.method, req.path);
  if (permitted.ok()) return std::nullopt;
  // A component acting outside its scope is misconfigured or compromised: say so.
  if (who.access == Access::kAgent || who.access == Access::kGateway) {
    spdlog::warn("auth: refused {} {} from {} with the credential of {} {} (403)", req.method,
                 req.path, req.peer, who.access == Access::kAgent ? "node" : "gateway", who.name);
  }
  return ErrorResponse(permitted);
}

}  // namespace

http::Admission AdmitRequest(const Tokens& tokens, const http::Request& head) {
  http::Admission admission;
  admission.refuse = AuthError(Authenticate(tokens, head.Header("authorization")), head);
  const std::string& path = head.path;
  auto ends_with = [&](std::string_view tail) {
    return path.size() >= tail.size() &&
           path.compare(path.size() - tail.size(), tail.size(), tail) == 0;
  };
  if (path == "/v1/apply") {
    admission.body_limit = manifest::kMaxManifestBytes;
  } else if (ends_with("/heartbeat")) {
    admission.body_limit = kMaxHeartbeatBytes;
  } else {
    admission.body_limit = kMaxOtherBodyBytes;
  }
  return admission;
}

void Api::Handle(http::Request&& req, http::Responder respond) {
  const Principal who = Authenticate(tokens_, req.Header("authorization"));
  if (auto error = AuthError(who, req)) {
    respond(std::move(*error));
  } else {
    Route(req, who.access == Access::kRead, respond);
  }
  if (events_pending_) Wake(Kind::kEvents, "");
}

void Api::Route(const http::Request& req, bool redact, http::Responder& respond) {
  auto p = SplitPath(req.path);
  const std::string& m = req.method;
  auto ok = [redact](json j) { return Ok(std::move(j), redact); };
  auto reply = [&](const Result<json>& r) { respond(r.ok() ? ok(*r) : ErrorResponse(r.status())); };
  if (m == "GET" && req.path == "/metrics") {
    http::Response metrics;
    metrics.status = 200;
    metrics.content_type = kMetricsContentType;
    metrics.body = c_.MetricsText();
    return respond(std::move(metrics));
  }
  if (p.size() < 2 || p[0] != "v1") {
    respond(ErrorResponse(Status::NotFound("path: no such API: " + req.path)));
    return;
  }
  const std::string& what = p[1];
  // Names from the URL are checked before anything looks them up, stores or prints them.
  static const std::map<std::string, std::string> kNamed = {
      {"agents", "node"}, {"nodes", "node"}, {"gateways", "gateway"}, {"roles", "role"}};
  if (auto named = kNamed.find(what);
      named != kNamed.end() && p.size() >= 3 && !manifest::IsValidName(p[2])) {
    return respond(ErrorResponse(Status::InvalidArgument(named->second + ": not a valid name (" +
                                                         std::string(manifest::kNameRule) + ")")));
  }
  if (m == "GET" && p.size() == 2) {
    if (what == "status") return respond(ok(c_.StatusJson()));
    if (what == "roles") return respond(ok({{"roles", c_.RolesJson()}}));
    if (what == "nodes") return respond(ok({{"nodes", c_.NodesJson()}}));
    if (what == "volumes") return respond(ok({{"volumes", c_.VolumesJson()}}));
    if (what == "ops") return respond(ok({{"operations", c_.OpsJson()}}));
    if (what == "gateways") return respond(ok({{"gateways", c_.GatewaysJson()}}));
    if (what == "events" || what == "routes") {
      auto after = QueryInt(req, "after", 0);
      auto wait = QueryInt(req, "wait_ms", 0);
      if (!after.ok()) return respond(ErrorResponse(after.status()));
      if (!wait.ok()) return respond(ErrorResponse(wait.status()));
      return Wait(what == "events" ? Kind::kEvents : Kind::kRoutes, "", *after, *wait, redact,
                  false, std::move(respond));
    }
  }
  if (m == "GET" && p.size() == 4 && what == "roles" && p[3] == "sla") {
    auto window = QueryInt(req, "window_ms", 3600 * 1000);
    if (!window.ok()) return respond(ErrorResponse(window.status()));
    return reply(c_.Sla(p[2], std::chrono::milliseconds(*window)));
  }
  if (m == "GET" && p.size() == 3 && what == "ops") {
    for (const auto& op : c_.OpsJson()) {
      if (op["id"] == p[2]) return respond(ok(op));
    }
    return respond(ErrorResponse(Status::NotFound("operation " + p[2] + " does not exist")));
  }
  if (m == "POST" && p.size() == 2 && what == "apply") {
    std::string file = req.Query("file").empty() ? "manifest" : req.Query("file");
    manifest::ParseOutcome outcome = manifest::ParseManifest(req.body, file);
    json diags = json::array();
    std::string first_error;
    for (const auto& d : outcome.diagnostics) {
      diags.push_back(d.ToString());
      if (!d.warning && first_error.empty()) first_error = d.ToString();
    }
    if (!outcome.ok() || !outcome.manifest) {
      return respond(http::Response::Json(
          400, Dump(json{{"error", first_error.empty() ? file + ": invalid manifest" : first_error},
                         {"diagnostics", diags}})));
    }
    if (outcome.manifest->roles.empty() && !c_.roles().empty() &&
        req.Query("remove_all") != "true") {
      return respond(ErrorResponse(Status::InvalidArgument(
          "roles: " + file + " has no roles; applying it would remove all " +
          std::to_string(c_.roles().size()) +
          " running roles (pass remove_all=true, hafab apply --remove-all, to do that)")));
    }
    auto r = c_.Apply(*outcome.manifest);
    if (!r.ok()) return respond(ErrorResponse(r.status()));
    json out = *r;
    out["warnings"] = diags;
    return respond(ok(out));
  }
  if (p.size() == 4 && what == "agents") {
    const std::string& node = p[2];
    if (m == "POST" && p[3] == "heartbeat") {
      auto body = BodyJson(req, false);
      if (!body.ok()) return respond(ErrorResponse(body.status()));
      auto hb = wire::ParseAgentHeartbeat(*body);
      if (!hb.ok()) return respond(ErrorResponse(hb.status()));
      if (!hb->node.empty() && hb->node != node) {
        return respond(ErrorResponse(Status::InvalidArgument("node: the body's '" + hb->node +
                                                             "' is not the URL's '" + node + "'")));
      }
      auto answer = c_.AgentHeartbeat(node, *hb);
      if (!answer.ok()) return respond(ErrorResponse(answer.status()));
      return respond(Ok(wire::ToJson(*answer)));
    }
    if (m == "GET" && p[3] == "assignments") {
      auto after = QueryInt(req, "after", 0);
      auto digest = QueryInt(req, "digest", 0);
      auto wait = QueryInt(req, "wait_ms", 0);
      if (!after.ok()) return respond(ErrorResponse(after.status()));
      if (!digest.ok()) return respond(ErrorResponse(digest.status()));
      if (!wait.ok()) return respond(ErrorResponse(wait.status()));
      const std::string brief = req.Query("brief");
      if (!brief.empty() && brief != "true" && brief != "false") {
        return respond(ErrorResponse(
            Status::InvalidArgument("brief: '" + brief + "' is not one of true, false")));
      }
      // The list the agent runs, from the controller before this one: kept when this one
      // would send the same, so that the poll waits for a change instead of answering it again.
      // Only a digest names it: a poll without one (an operator's) changes nothing.
      if (*digest != 0) {
        if (redact) {
          return respond(ErrorResponse(Status::PermissionDenied(
              "digest: only the node's agent names the list it runs (this is a read token)")));
        }
        c_.AdoptGeneration(node, static_cast<uint64_t>(*after), static_cast<uint64_t>(*digest));
      }
      return Wait(Kind::kAssignments, node, *after, *wait, redact, brief == "true",
                  std::move(respond));
    }
  }
  if (m == "POST" && p.size() == 4 && what == "gateways" && p[3] == "heartbeat") {
    auto body = BodyJson(req, false);
    if (!body.ok()) return respond(ErrorResponse(body.status()));
    auto hb = wire::ParseGatewayHeartbeat(*body);
    if (!hb.ok()) return respond(ErrorResponse(hb.status()));
    auto answer = c_.GatewayHeartbeat(p[2], *hb);
    if (!answer.ok()) return respond(ErrorResponse(answer.status()));
    return respond(Ok(wire::ToJson(*answer)));
  }
  if (m == "POST" && p.size() == 4 && what == "roles") {
    auto body = BodyJson(req, true);
    if (!body.ok()) return respond(ErrorResponse(body.status()));
    if (p[3] == "failover") {
      std::string to;
      if (body->contains("to")) {
        if (!(*body)["to"].is_string()) {
          return respond(ErrorResponse(
              Status::InvalidArgument("to: must be a node name (a replica's, for a replicated "
                                      "role)")));
        }
        to = (*body)["to"].get<std::string>();
      }
      bool accept_data_loss = false;
      if (body->contains("accept_data_loss")) {
        if (!(*body)["accept_data_loss"].is_boolean()) {
          return respond(
              ErrorResponse(Status::InvalidArgument("accept_data_loss: must be true or false")));
        }
        accept_data_loss = (*body)["accept_data_loss"].get<bool>();
      }
      return reply(c_.RequestFailover(p[2], to, accept_data_loss));
    }
    if (p[3] == "scale") {
      // Checked as a 64-bit number: 4294967298 is out of range, not 2.
      const json n = body->value("instances", json());
      int64_t count = 0;  // 0: absent, not an integer, or beyond int64_t
      if (n.is_number_unsigned()) {
        if (n.get<uint64_t>() <= uint64_t{INT64_MAX}) count = n.get<int64_t>();
      } else if (n.is_number_integer()) {
        count = n.get<int64_t>();
      }
      if (count < 1 || count > kMaxInstancesPerRole) {
        return respond(ErrorResponse(Status::InvalidArgument(
            "instances: required, an integer from 1 to " + std::to_string(kMaxInstancesPerRole))));
      }
      return reply(c_.Scale(p[2], static_cast<int>(count)));
    }
    if (p[3] == "upgrade") {  // {"set": {...}} or {"rollback": true} (rollout.h)
      bool rollback = false;
      if (body->contains("rollback")) {
        if (!(*body)["rollback"].is_boolean()) {
          return respond(ErrorResponse(Status::InvalidArgument("rollback: must be true or false")));
        }
        rollback = (*body)["rollback"].get<bool>();
      }
      json set = body->contains("set") ? (*body)["set"] : json();
      if (!rollback && set.is_null()) {
        return respond(ErrorResponse(Status::InvalidArgument(
            "set: required (command, args, env, version), or rollback: true")));
      }
      return reply(c_.Upgrade(p[2], set, rollback));
    }
  }
  if (m == "POST" && p.size() == 4 && what == "nodes" && (p[3] == "drain" || p[3] == "undrain")) {
    return reply(c_.Drain(p[2], p[3] == "drain"));
  }
  respond(ErrorResponse(Status::NotFound("path: no such API: " + m + " " + req.path)));
}

void Api::Wait(Kind kind, const std::string& node, int64_t after, int64_t wait_ms, bool redact,
               bool brief, http::Responder respond) {
  Waiter w{kind,
           node,
           after,
           clock_.Now() + std::chrono::milliseconds(std::min(wait_ms, kMaxWaitMs)),
           redact,
           brief,
           std::move(respond)};
  if (wait_ms == 0 || Ready(w)) {
    w.respond(Answer(w));
    return;
  }
  uint64_t id = next_id_++;
  by_deadline_.emplace(w.deadline, id);
  if (kind == Kind::kAssignments) by_node_.emplace(node, id);
  waiters_.emplace(id, std::move(w));
}

bool Api::Ready(const Waiter& w) {
  switch (w.kind) {
    case Kind::kAssignments:
      return c_.AssignmentsGeneration(w.node) > w.after;
    case Kind::kRoutes:
      return c_.RoutesVersion() > w.after;
    case Kind::kEvents:
      return c_.LastEventId() > w.after;
  }
  return true;
}

http::Response Api::Answer(const Waiter& w, bool expired) {
  switch (w.kind) {
    case Kind::kAssignments: {
      auto r = c_.Assignments(w.node, expired && w.brief ? std::optional(w.after) : std::nullopt);
      return r.ok() ? Ok(*r, w.redact) : ErrorResponse(r.status());
    }
    case Kind::kRoutes:
      return Ok(wire::ToJson(c_.Routes()), w.redact);
    case Kind::kEvents: {
      json events = json::array();
      for (const auto& e : c_.EventsAfter(w.after)) events.push_back(ToJson(e));
      return Ok({{"events", events}, {"last", c_.LastEventId()}}, w.redact);
    }
  }
  return Ok(json::object());
}

void Api::Answered(uint64_t id, bool expired) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return;
  for (auto d = by_deadline_.lower_bound(it->second.deadline);
       d != by_deadline_.end() && d->first == it->second.deadline; ++d) {
    if (d->second == id) {
      by_deadline_.erase(d);
      break;
    }
  }
  if (it->second.kind == Kind::kAssignments) {
    auto range = by_node_.equal_range(it->second.node);
    for (auto n = range.first; n != range.second; ++n) {
      if (n->second == id) {
        by_node_.erase(n);
        break;
      }
    }
  }
  Waiter w = std::move(it->second);
  waiters_.erase(it);
  w.respond(Answer(w, expired));
}

void Api::Wake(Kind kind, const std::string& node) {
  if (kind == Kind::kEvents) events_pending_ = false;
  std::vector<uint64_t> due;
  if (kind == Kind::kAssignments) {
    auto range = by_node_.equal_range(node);
    for (auto n = range.first; n != range.second; ++n) {
      if (Ready(waiters_.at(n->second))) due.push_back(n->second);
    }
  } else {
    for (const auto& [id, w] : waiters_) {
      if (w.kind == kind && Ready(w)) due.push_back(id);
    }
  }
  for (uint64_t id : due) Answered(id);
}

void Api::ExpireWaits() {
  if (events_pending_) Wake(Kind::kEvents, "");
  TimePoint now = clock_.Now();
  std::vector<uint64_t> due;
  for (auto it = by_deadline_.begin(); it != by_deadline_.end() && it->first <= now; ++it) {
    due.push_back(it->second);
  }
  for (uint64_t id : due) Answered(id, /*expired=*/true);
}

void Api::FlushAll() {
  std::vector<uint64_t> all;
  for (const auto& [id, w] : waiters_) all.push_back(id);
  for (uint64_t id : all) Answered(id);
}

}  // namespace hafab::controller
