#include "agent/controller_client.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "core/json.h"
#include "http/http.h"
#include "http/leader_hint.h"

namespace hafab::agent {

ControllerClient::ControllerClient(boost::asio::io_context& io, std::vector<std::string> base_urls,
                                   std::string token)
    : io_(io), urls_(std::move(base_urls)), token_(std::move(token)), pool_(io) {
  HAFAB_CHECK(!urls_.empty(), "ControllerClient needs at least one controller URL");
  for (auto& u : urls_) {
    while (!u.empty() && u.back() == '/') u.pop_back();
  }
}

std::string ControllerClient::Describe() const {
  std::string out = current_url();
  for (size_t i = 0; i < urls_.size(); ++i) {
    if (i != current_) out += "," + urls_[i];
  }
  return out;
}

void ControllerClient::Call(const std::string& method, const std::string& path, std::string body,
                            Duration timeout, std::function<void(Result<std::string>)> done) {
  const size_t index = current_;
  const std::string url = urls_[index] + path;
  http::Headers headers{{"Authorization", "Bearer " + token_}};
  if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
  pool_.Fetch(method, url, std::move(body), std::move(headers), timeout,
              [this, index, url, done = std::move(done)](Result<http::Response> r) {
                auto fail_over = [&] {
                  if (urls_.size() > 1 && current_ == index) {
                    current_ = (index + 1) % urls_.size();
                    spdlog::info("controller {} failed; trying {}", urls_[index], urls_[current_]);
                  }
                };
                if (!r.ok()) {
                  fail_over();
                  done(r.status());
                  return;
                }
                const http::Response& resp = *r;
                if (resp.status == 200) {
                  done(resp.body);
                  return;
                }
                std::string error = resp.body;
                try {
                  auto j = nlohmann::json::parse(resp.body);
                  if (j.contains("error")) error = j["error"].get<std::string>();
                } catch (const std::exception&) {
                }
                std::string msg = url + ": HTTP " + std::to_string(resp.status) + ": " + error;
                if (resp.status == 401 || resp.status == 403) {
                  done(Status::PermissionDenied(msg));
                } else if (resp.status == 409) {
                  done(Status::Conflict(msg));
                } else if (resp.status == 503) {
                  // A follower replica answers "not leader" and names the leader: go
                  // there next when it is one of ours, else try the next URL.
                  auto leader = http::LeaderIndex(resp, urls_);
                  if (leader && current_ == index && *leader != index) {
                    current_ = *leader;
                    spdlog::info("controller {} is not leader; following the leader {}",
                                 urls_[index], urls_[*leader]);
                  } else {
                    fail_over();
                  }
                  done(Status::Unavailable(msg));
                } else {
                  done(Status::Internal(msg));
                }
              });
}

void ControllerClient::Heartbeat(const wire::AgentHeartbeat& heartbeat, Duration timeout,
                                 std::function<void(Result<wire::HeartbeatAnswer>)> done) {
  Call("POST", "/v1/agents/" + heartbeat.node + "/heartbeat", Dump(wire::ToJson(heartbeat)),
       timeout, [done = std::move(done)](Result<std::string> r) {
         if (!r.ok()) {
           done(r.status());
           return;
         }
         done(wire::ParseHeartbeatAnswer(*r));
       });
}

void ControllerClient::FetchAssignments(const std::string& node, uint64_t after, uint64_t digest,
                                        Duration wait,
                                        std::function<void(Result<wire::AssignmentList>)> done) {
  auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(wait).count();
  Call("GET",
       "/v1/agents/" + node + "/assignments?after=" + std::to_string(after) +
           (digest != 0 ? "&digest=" + std::to_string(digest) : "") +
           "&wait_ms=" + std::to_string(wait_ms) + (after > 0 && wait_ms > 0 ? "&brief=true" : ""),
       "", wait + std::chrono::seconds(3), [done = std::move(done)](Result<std::string> r) {
         if (!r.ok()) {
           done(r.status());
           return;
         }
         done(wire::ParseAssignments(*r));
       });
}

}  // namespace hafab::agent
