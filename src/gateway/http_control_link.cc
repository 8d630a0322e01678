#include "gateway/http_control_link.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "core/json.h"
#include "http/leader_hint.h"

namespace hafab::gateway {

HttpControlLink::HttpControlLink(boost::asio::io_context& io, std::vector<std::string> controllers,
                                 std::string token)
    : urls_(std::move(controllers)), token_(std::move(token)), pool_(io) {
  HAFAB_CHECK(!urls_.empty(), "HttpControlLink needs a controller URL");
  for (auto& url : urls_) {
    while (!url.empty() && url.back() == '/') url.pop_back();
  }
}

void HttpControlLink::Failed(size_t index, const http::Response* r, const std::string& what) {
  if (r != nullptr && r->status == 503) {
    auto leader = http::LeaderIndex(*r, urls_);
    if (leader && index == current_ && *leader != index) {
      current_ = *leader;
      spdlog::info("gateway: controller {} is not leader; following the leader {}", urls_[index],
                   urls_[*leader]);
      if (leader_found_) leader_found_();
      return;
    }
  }
  if (index == current_ && urls_.size() > 1) {
    current_ = (current_ + 1) % urls_.size();
    spdlog::warn("gateway: {}; trying controller {}", what, Current());
  }
}

void HttpControlLink::Call(const std::string& method, const std::string& path, std::string body,
                           Duration timeout, std::function<void(Result<std::string>)> done) {
  const size_t index = current_;
  std::string url = urls_[index] + path;
  http::Headers headers{{"Authorization", "Bearer " + token_}};
  pool_.Fetch(method, url, std::move(body), std::move(headers), timeout,
              [this, index, url, done = std::move(done)](Result<http::Response> r) {
                if (r.ok() && r->status == 200) {
                  done(std::move(r->body));
                  return;
                }
                if (!r.ok()) {
                  Status st(r.status().code(), url + ": " + r.status().message());
                  Failed(index, nullptr, st.message());
                  done(st);
                  return;
                }
                std::string msg = url + ": HTTP " + std::to_string(r->status) + " " + r->body;
                Failed(index, &*r, msg);
                if (r->status == 401 || r->status == 403) {
                  done(Status::PermissionDenied(msg));
                } else if (r->status == 503) {
                  done(Status::Unavailable(msg));
                } else {
                  done(Status::Internal(msg));
                }
              });
}

void HttpControlLink::FetchRoutes(uint64_t after, Duration wait,
                                  std::function<void(Result<wire::Routes>)> done) {
  const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(wait).count();
  const std::string path =
      "/v1/routes?after=" + std::to_string(after) + "&wait_ms=" + std::to_string(wait_ms);
  const size_t index = current_;
  const std::string url = urls_[index] + path;
  Call("GET", path, "", wait + std::chrono::seconds(2),
       [this, index, url, done = std::move(done)](Result<std::string> body) {
         if (!body.ok()) {
           done(body.status());
           return;
         }
         auto j = nlohmann::json::parse(*body, nullptr, /*allow_exceptions=*/false);
         Result<wire::Routes> routes =
             j.is_discarded()
                 ? Result<wire::Routes>(Status::InvalidArgument("routes: not valid JSON"))
                 : wire::ParseRoutes(j);
         if (!routes.ok()) {
           Status st = routes.status().WithContext(url);
           Failed(index, nullptr, st.message());
           done(st);
           return;
         }
         done(std::move(routes));
       });
}

void HttpControlLink::Heartbeat(const std::string& gateway_id,
                                const wire::GatewayHeartbeat& heartbeat, Duration timeout,
                                std::function<void(Result<wire::HeartbeatAnswer>)> done) {
  const std::string path = "/v1/gateways/" + gateway_id + "/heartbeat";
  const std::string url = urls_[current_] + path;
  Call("POST", path, Dump(wire::ToJson(heartbeat)), timeout,
       [url, done = std::move(done)](Result<std::string> body) {
         if (!body.ok()) {
           done(body.status());
           return;
         }
         auto answer = wire::ParseHeartbeatAnswer(*body);
         if (!answer.ok()) {
           done(answer.status().WithContext(url));
           return;
         }
         done(std::move(answer));
       });
}

}  // namespace hafab::gateway
