// Api: the controller's HTTP/JSON API (docs/architecture.md, "Wire protocol") on top of a
// Controller. It only moves bytes: it authenticates, parses, calls the Controller, and
// answers long-polls (assignments, routes, events) when the Controller says something
// changed or their wait ends. Handle() takes a request and a responder, so tests call it
// directly without a socket; the daemon plugs it into an http::Server.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "controller/controller.h"
#include "controller/tokens.h"
#include "core/clock.h"
#include "http/http.h"

namespace hafab::controller {

// Not thread-safe: the controller's event-loop thread calls everything.
class Api {
 public:
  // `controller` and `clock` must outlive the Api. Installs itself as the controller's
  // listener.
  Api(Controller& controller, Clock& clock, Tokens tokens);

  // Answers one request now, or later for a long-poll (at most `wait_ms`, capped at 60s).
  void Handle(http::Request&& req, http::Responder respond);

  // Answers the long-polls whose wait has ended (with what there is). Call on a timer.
  void ExpireWaits();
  // Answers every waiting long-poll now (shutdown).
  void FlushAll();

  size_t waiting() const { return waiters_.size(); }

 private:
  enum class Kind { kAssignments, kRoutes, kEvents };
  struct Waiter {
    Kind kind;
    std::string node;  // kAssignments
    int64_t after = 0;
    TimePoint deadline;
    bool redact = false;  // for the read token (RedactEnv)
    // kAssignments: a wait that ends with the generation still `after` is answered
    // "unchanged" (wire::AssignmentList::unchanged), not with the whole list again.
    bool brief = false;
    http::Responder respond;
  };

  // `redact`: the answer goes to the read token (env values hidden).
  void Route(const http::Request& req, bool redact, http::Responder& respond);
  void Wait(Kind kind, const std::string& node, int64_t after, int64_t wait_ms, bool redact,
            bool brief, http::Responder respond);
  // `expired`: its wait has passed (a brief assignments poll may be answered "unchanged").
  http::Response Answer(const Waiter& w, bool expired = false);
  bool Ready(const Waiter& w);
  void Wake(Kind kind, const std::string& node);
  void Answered(uint64_t id, bool expired = false);

  Controller& c_;
  Clock& clock_;
  Tokens tokens_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Waiter> waiters_;
  std::multimap<TimePoint, uint64_t> by_deadline_;
  std::multimap<std::string, uint64_t> by_node_;
  bool events_pending_ = false;
};

// Request body limits of the controller's endpoints (413 beyond, before the body is read).
inline constexpr uint64_t kMaxHeartbeatBytes = 2u << 20;  // a node listing 5000 instances
inline constexpr uint64_t kMaxOtherBodyBytes = 64u << 10;

// The controller listener's http::HeaderCheck: a request without a valid credential is answered
// 401, one its credential does not allow (Permit) 403, before its body is read; a body may be
// at most manifest::kMaxManifestBytes for POST /v1/apply, kMaxHeartbeatBytes for a heartbeat,
// kMaxOtherBodyBytes otherwise.
http::Admission AdmitRequest(const Tokens& tokens, const http::Request& head);

// What the read token sees in place of each env value.
inline constexpr char kRedacted[] = "<redacted>";

// The HTTP status for a Status code: 400, 401/403, 404, 409, 503 or 500.
int HttpStatus(const Status& st);
// {"error": message} with the status's HTTP code.
http::Response ErrorResponse(const Status& st);

}  // namespace hafab::controller
