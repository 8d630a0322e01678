#include "controller/dashboard.h"

#include <charconv>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "controller/api.h"
#include "controller/dashboard_assets.h"
#include "core/json.h"

namespace hafab::controller {

using nlohmann::json;

namespace {

constexpr char kLoginPurpose[] = "dashboard-login";
constexpr char kSessionPurpose[] = "dashboard-session";
constexpr size_t kNonceBytes = 16;

// The page a browser without a session sees. Says how to get one and nothing about the cluster.
constexpr char kLoginPage[] = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hafab: log in</title></head>
<body>
<h1>hafab dashboard</h1>
<p>%s</p>
<p>Run <code>hafab dashboard</code> (with the state directory or <code>--api</code> and
<code>HAFAB_TOKEN</code> of this cluster) and open the link it prints. The link logs this
browser in once, within a minute.</p>
</body></html>
)";

// Headers of every dashboard answer: no caching of cluster state, no framing, no script or
// style from anywhere but this origin, no Referer carrying a path onwards.
void AddPageHeaders(http::Response& r) {
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                         "form-action 'none'");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
}

http::Response Page(int status, const std::string& why) {
  std::string body = kLoginPage;
  body.replace(body.find("%s"), 2, why);
  http::Response r;
  r.status = status;
  r.content_type = "text/html; charset=utf-8";
  r.body = std::move(body);
  AddPageHeaders(r);
  return r;
}

int64_t WallMs(WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// The value of cookie `name` in a Cookie header ("a=1; b=2"); "" when absent.
std::string CookieValue(const std::string& header, std::string_view name) {
  size_t i = 0;
  while (i < header.size()) {
    size_t end = header.find(';', i);
    if (end == std::string::npos) end = header.size();
    std::string_view part(header.data() + i, end - i);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.size() > name.size() && part.substr(0, name.size()) == name &&
        part[name.size()] == '=') {
      return std::string(part.substr(name.size() + 1));
    }
    i = end + 1;
  }
  return "";
}

}  // namespace

Dashboard::Dashboard(Tokens tokens, Clock& clock, bool https)
    : tokens_(std::move(tokens)), clock_(clock), https_(https) {}

bool Dashboard::Serves(const std::string& path) {
  return path == "/ui" || path.rfind("/ui/", 0) == 0;
}

Result<std::string> Dashboard::Issue(const std::string& purpose, Duration ttl) const {
  HAFAB_ASSIGN_OR_RETURN(std::string nonce, RandomSecretHex(kNonceBytes));
  const std::string claim = std::to_string(WallMs(clock_.WallNow() + ttl)) + "." + nonce;
  return claim + "." + HmacSha256Hex(tokens_.read, purpose + "." + claim);
}

std::string Dashboard::Verify(const std::string& purpose, const std::string& token) const {
  const size_t first = token.find('.');
  const size_t last = token.rfind('.');
  if (tokens_.read.empty() || first == std::string::npos || last == first) return "";
  const std::string claim = token.substr(0, last);
  if (!TokenEquals(token.substr(last + 1), HmacSha256Hex(tokens_.read, purpose + "." + claim))) {
    return "";
  }
  int64_t expiry = 0;
  auto [p, ec] = std::from_chars(token.data(), token.data() + first, expiry);
  if (ec != std::errc() || p != token.data() + first) return "";
  if (WallMs(clock_.WallNow()) >= expiry) return "";
  return token.substr(first + 1, last - first - 1);
}

bool Dashboard::HasSession(const http::Request& req) const {
  const std::string cookie = CookieValue(req.Header("cookie"), kSessionCookie);
  return !cookie.empty() && !Verify(kSessionPurpose, cookie).empty();
}

void Dashboard::Authorize(http::Request& req) const {
  if (req.method != "GET" || !req.Header("authorization").empty()) return;
  // A session does not mint logins: it ends when it expires, whatever the browser does.
  if (req.path == "/v1/dashboard/login" || !HasSession(req)) return;
  req.headers["authorization"] = "Bearer " + tokens_.read;
}

http::Response Dashboard::NewLogin(const http::Request& req) {
  const Principal who = Authenticate(tokens_, req.Header("authorization"));
  if (who.access == Access::kNone) {
    return http::Response::Json(
        401,
        Dump(json{{"error", "Authorization: send 'Bearer TOKEN' (read.token or admin.token)"}}));
  }
  if (who.access != Access::kRead && who.access != Access::kAdmin) {
    return ErrorResponse(
        Status::PermissionDenied("Authorization: only the read or admin token logs in a browser"));
  }
  auto token = Issue(kLoginPurpose, kLoginTtl);
  if (!token.ok()) return ErrorResponse(token.status());
  http::Response r = http::Response::Json(200, Dump(json{{"token", *token},
                                                         {"path", "/ui/login?token=" + *token},
                                                         {"expires_in_ms", ToMs(kLoginTtl)}}));
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

http::Response Dashboard::Handle(const http::Request& req) {
  if (req.method != "GET") {
    http::Response r = Page(405, "The dashboard only reads: GET only.");
    r.headers.emplace_back("Allow", "GET");
    return r;
  }
  if (req.path == "/ui/login") {
    const WallTime now = clock_.WallNow();
    std::erase_if(used_logins_, [now](const auto& used) { return used.second <= now; });
    const std::string nonce = Verify(kLoginPurpose, req.Query("token"));
    if (nonce.empty() || used_logins_.contains(nonce)) {
      return Page(401, "This login link is unknown, expired or already used.");
    }
    auto session = Issue(kSessionPurpose, kSessionTtl);
    if (!session.ok()) return ErrorResponse(session.status());
    // The nonce's expiry bounds how long it must be remembered.
    used_logins_.emplace(nonce, now + kLoginTtl);
    http::Response r;
    r.status = 303;
    r.content_type = "";
    r.headers.emplace_back("Location", "/ui/");
    r.headers.emplace_back("Set-Cookie", std::string(kSessionCookie) + "=" + *session +
                                             "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                                             std::to_string(ToMs(kSessionTtl) / 1000) +
                                             (https_ ? "; Secure" : ""));
    AddPageHeaders(r);
    return r;
  }
  if (!HasSession(req)) return Page(401, "This browser is not logged in, or its session ended.");
  std::string_view name = req.path == "/ui" || req.path == "/ui/"
                              ? std::string_view("index.html")
                              : std::string_view(req.path).substr(4);
  const DashboardAsset* asset = FindDashboardAsset(name);
  if (asset == nullptr) return Page(404, "No such page.");
  http::Response r;
  r.status = 200;
  r.content_type = std::string(asset->content_type);
  r.body = std::string(asset->body);
  AddPageHeaders(r);
  return r;
}

}  // namespace hafab::controller
