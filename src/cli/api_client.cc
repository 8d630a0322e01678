#include "cli/api_client.h"

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/command.h"
#include "cli/tls_flags.h"
#include "http/leader_hint.h"

namespace hafab::cli {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return Trim(ss.str());
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

void AddApiFlags(CLI::App* cmd, ApiOptions* opts) {
  cmd->add_option("--api", opts->api, "Controller API URL (default: HAFAB_API, or the state dir)");
  cmd->add_option("--state-dir", opts->state_dir, "State directory of an embedded cluster")
      ->capture_default_str();
}

Result<ApiClient> ApiClient::Connect(ApiOptions opts) {
  ApiClient c;
  // https:// controllers: the operator's certificate (docs/deploy.md, "TLS").
  HAFAB_RETURN_IF_ERROR(UseClientTlsFromEnv());
  c.url_ = !opts.api.empty() ? opts.api : Env("HAFAB_API");
  c.token_ = !opts.token.empty() ? opts.token : Env("HAFAB_TOKEN");
  if (c.url_.empty()) {
    auto url = ReadFile(opts.state_dir + "/api.url");
    if (!url.ok()) {
      return Status::InvalidArgument("no controller address: " + url.status().message() +
                                     " (start one with `hafab up FILE`, or pass --api URL / set "
                                     "HAFAB_API and HAFAB_TOKEN)");
    }
    c.url_ = *url;
  }
  if (c.token_.empty()) {
    auto token = ReadFile(opts.state_dir + "/admin.token");
    if (!token.ok()) {
      return Status::InvalidArgument("no API token: " + token.status().message() +
                                     " (set HAFAB_TOKEN)");
    }
    c.token_ = *token;
  }
  while (!c.url_.empty() && c.url_.back() == '/') c.url_.pop_back();
  // --api may name several controller replicas, comma-separated.
  std::stringstream list(c.url_);
  for (std::string url; std::getline(list, url, ',');) {
    while (!url.empty() && url.back() == '/') url.pop_back();
    if (!url.empty()) c.urls_.push_back(url);
  }
  return c;
}

Result<http::Response> ApiClient::Raw(const std::string& method, const std::string& path,
                                      const std::string& body, Duration timeout) const {
  // The replica that answered last is asked first, then the others in order; the first
  // that answers is used, and a follower's 503 "not leader" is followed to the leader it
  // names, once.
  const http::Headers auth = {{"Authorization", "Bearer " + token_}};
  std::vector<std::string> order;
  if (!answered_.empty()) order.push_back(answered_);
  for (const auto& u : urls_) {
    if (u != answered_) order.push_back(u);
  }
  Result<http::Response> r = Status::Unavailable("no controller URL");
  for (const auto& url : order) {
    r = http::Fetch(method, url + path, body, auth, timeout);
    if (!r.ok() && r.status().code() == StatusCode::kUnavailable) continue;
    std::string leader = r.ok() ? http::LeaderHint(*r) : "";
    if (!leader.empty() && leader != url) {
      auto at_leader = http::Fetch(method, leader + path, body, auth, timeout);
      if (at_leader.ok()) {
        answered_ = leader;
        return at_leader;
      }
    }
    answered_ = url;
    break;
  }
  if (!r.ok() && r.status().code() == StatusCode::kUnavailable) {
    return Status::Unavailable("controller not reachable at " + url_ +
                               ": is `hafab up` running? (" + r.status().message() + ")");
  }
  return r;
}

Result<nlohmann::json> ApiClient::GetFrom(const std::string& url, const std::string& path,
                                          Duration timeout) const {
  HAFAB_ASSIGN_OR_RETURN(
      http::Response resp,
      http::Fetch("GET", url + path, "", {{"Authorization", "Bearer " + token_}}, timeout));
  nlohmann::json j = nlohmann::json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
  if (resp.status != 200 || !j.is_object()) {
    return Status::Unavailable(url + path + ": HTTP " + std::to_string(resp.status) + " " +
                               resp.body);
  }
  return j;
}

Result<nlohmann::json> ApiClient::Call(const std::string& method, const std::string& path,
                                       const std::string& body, Duration timeout) const {
  HAFAB_ASSIGN_OR_RETURN(http::Response resp, Raw(method, path, body, timeout));
  nlohmann::json j = nlohmann::json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
  if (resp.status / 100 != 2) {
    std::string msg =
        j.is_object() && j.contains("error") ? j["error"].get<std::string>() : resp.body;
    StatusCode code = resp.status == 404                         ? StatusCode::kNotFound
                      : resp.status == 409                       ? StatusCode::kConflict
                      : resp.status == 401 || resp.status == 403 ? StatusCode::kPermissionDenied
                      : resp.status == 503                       ? StatusCode::kUnavailable
                                                                 : StatusCode::kInvalidArgument;
    return Status(code, msg);
  }
  if (j.is_discarded()) return Status::Internal("controller answered invalid JSON: " + resp.body);
  return j;
}

Status PollOperation(const ApiClient& c, const std::string& id, Duration limit, Duration every,
                     const std::function<std::optional<Status>(const nlohmann::json& op)>& seen) {
  const auto deadline = RealClock().Now() + limit;
  while (RealClock().Now() < deadline) {
    HAFAB_ASSIGN_OR_RETURN(nlohmann::json op, c.Call("GET", "/v1/ops/" + id));
    if (std::optional<Status> ended = seen(op)) return *ended;
    std::this_thread::sleep_for(every);  // polling the operation, with a deadline
  }
  return Status::DeadlineExceeded(
      "operation " + id + " still running after " +
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(limit).count()) +
      "s; follow it with `hafab ops`");
}

void Fail(const Status& st) {
  std::cerr << "error: " << st.message() << "\n";
  SetExitCode(st.code() == StatusCode::kUnavailable ? kExitUnreachable : kExitError);
}

void WithClient(const ApiOptions& opts, const std::function<Status(const ApiClient&)>& fn) {
  auto c = ApiClient::Connect(opts);
  if (!c.ok()) return Fail(c.status());
  Status st = fn(*c);
  if (!st.ok()) Fail(st);
}

}  // namespace hafab::cli
