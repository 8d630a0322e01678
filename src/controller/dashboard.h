// Dashboard: the controller's read-only web UI at /ui (docs/architecture.md, "Dashboard").
//
// The page, its script and its style sheet are embedded in the binary (src/controller/ui/,
// dashboard_assets.h); the script reads the same GET API as the CLI (/v1/status, /v1/events
// long-polled, /v1/leader, /v1/roles/R/sla) and redraws without reloading.
//
// A browser carries no bearer token, so it logs in once:
//   1. `hafab dashboard` asks `GET /v1/dashboard/login` with the read or admin token for a
//      login token: "<expiry ms>.<nonce>.<mac>", valid kLoginTtl, mac = HMAC-SHA256 under
//      the read token of "dashboard-login.<expiry>.<nonce>".
//   2. It prints URL/ui/login?token=...; opening it consumes the token (single use: this
//      replica remembers the nonces it took until they expire) and sets the cookie
//      `hafab_session` (HttpOnly, SameSite=Strict, Path=/), a token of the same shape under
//      "dashboard-session.", valid kSessionTtl, then redirects to /ui (the token leaves the
//      address bar).
//   3. A GET that carries that cookie and no Authorization is served as the read token
//      (Authorize): every GET, env values redacted, nothing else. The cookie is never sent
//      from another site (SameSite=Strict) and grants no write, so there is nothing to forge.
// Nothing is stored: every replica that has the same read token accepts the same tokens
// (single use is per replica), and replacing read.token ends every session.
#pragma once

#include <map>
#include <string>

#include "controller/tokens.h"
#include "core/clock.h"
#include "core/result.h"
#include "http/http.h"

namespace hafab::controller {

inline constexpr Duration kLoginTtl = std::chrono::seconds(60);
inline constexpr Duration kSessionTtl = std::chrono::hours(12);
inline constexpr char kSessionCookie[] = "hafab_session";

// Not thread-safe: the controller's event-loop thread calls everything.
class Dashboard {
 public:
  // `clock` outlives the Dashboard; its wall time dates the tokens. `https`: the page is served
  // over TLS, and the session cookie is marked Secure (never sent over plain HTTP).
  Dashboard(Tokens tokens, Clock& clock, bool https = false);

  // Whether `path` is the dashboard's (/ui and below); those requests need no Authorization.
  static bool Serves(const std::string& path);

  // Answers a request for /ui..., authenticating it by its session cookie: the page and its
  // files with a valid session, a page saying how to log in (401) without, /ui/login as above.
  http::Response Handle(const http::Request& req);

  // GET /v1/dashboard/login: a new login token for a request with the read or admin token
  // (401 without a credential, 403 for any other, a session cookie included).
  http::Response NewLogin(const http::Request& req);

  // Gives a GET that has no Authorization header but a valid session cookie the read token's
  // `Authorization`, so the API treats it as the read token does. Other requests unchanged.
  void Authorize(http::Request& req) const;

 private:
  // "<expiry>.<nonce>.<mac>" under `purpose`, expiring `ttl` from now.
  Result<std::string> Issue(const std::string& purpose, Duration ttl) const;
  // The token's nonce if its mac matches `purpose` and it has not expired; "" otherwise.
  std::string Verify(const std::string& purpose, const std::string& token) const;
  bool HasSession(const http::Request& req) const;

  Tokens tokens_;
  Clock& clock_;
  bool https_;
  std::map<std::string, WallTime> used_logins_;  // nonce -> its expiry
};

}  // namespace hafab::controller
