// How the CLI reaches a controller: the API URL and token come from --api/HAFAB_API and
// HAFAB_TOKEN, or from an embedded cluster's state directory (api.url, admin.token).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "http/http.h"

namespace hafab::cli {

struct ApiOptions {
  std::string api;    // --api / HAFAB_API; empty = from state dir
  std::string token;  // HAFAB_TOKEN; empty = from state dir
  std::string state_dir = ".hafab";
};

// Adds --api and --state-dir to a subcommand.
void AddApiFlags(CLI::App* cmd, ApiOptions* opts);

class ApiClient {
 public:
  // Resolves URL and token. InvalidArgument with advice when neither flags nor a state
  // directory say where the controller is.
  static Result<ApiClient> Connect(ApiOptions opts);

  // A call whose non-2xx answer becomes an error carrying the controller's message.
  // Unavailable: "controller not reachable at URL: is `hafab up` running?".
  Result<nlohmann::json> Call(const std::string& method, const std::string& path,
                              const std::string& body = "",
                              Duration timeout = std::chrono::seconds(10)) const;
  // The same, for a raw (non-JSON) body in the answer.
  Result<http::Response> Raw(const std::string& method, const std::string& path,
                             const std::string& body, Duration timeout) const;

  // GET `path` from the replica at `url` only (one of urls()), following no leader hint.
  // Errors: Unavailable (unreachable, or no 200 with a JSON object; the message names the
  // URL and the answer), DeadlineExceeded.
  Result<nlohmann::json> GetFrom(const std::string& url, const std::string& path,
                                 Duration timeout) const;

  const std::string& url() const { return url_; }
  const std::vector<std::string>& urls() const { return urls_; }  // every replica

 private:
  std::string url_;                // as given (named in errors)
  std::vector<std::string> urls_;  // its comma-separated replicas
  mutable std::string answered_;   // the URL that answered last: asked first next time
  std::string token_;
};

// Polls GET /v1/ops/<id> every `every`, handing each answer to `seen`, until `seen` returns
// a Status (the operation ended) or `limit` passes (DeadlineExceeded, with advice).
Status PollOperation(const ApiClient& c, const std::string& id, Duration limit, Duration every,
                     const std::function<std::optional<Status>(const nlohmann::json& op)>& seen);

// Prints the error for `st` on stderr and sets the exit code that fits it
// (kExitUnreachable for Unavailable, else kExitError).
void Fail(const Status& st);

// Runs `fn` with a client connected per `opts`, turning failures into exit codes.
void WithClient(const ApiOptions& opts, const std::function<Status(const ApiClient&)>& fn);

}  // namespace hafab::cli
