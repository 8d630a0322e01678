// HttpControlLink: the gateway's ControlLink over HTTP (http::ConnectionPool):
// `GET /v1/routes?after=V&wait_ms=W` and `POST /v1/gateways/{id}/heartbeat`
// (docs/architecture.md), with failover across several controller URLs: a failure moves the
// next call to the next URL, and a follower's 503 "not leader" naming one of them to the leader.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <string>
#include <vector>

#include "gateway/control_link.h"
#include "http/http.h"
#include "http/pool.h"

namespace hafab::gateway {

// Not thread-safe: the io_context thread only.
class HttpControlLink final : public ControlLink {
 public:
  // `controllers`: base URLs like "http://127.0.0.1:7400", tried in turn; `token` is sent as
  // "Authorization: Bearer TOKEN". REQUIRES: `controllers` not empty.
  HttpControlLink(boost::asio::io_context& io, std::vector<std::string> controllers,
                  std::string token);

  // Errors: those of the connection (Unavailable, DeadlineExceeded), PermissionDenied for 401
  // and 403, Unavailable for 503, Internal for other statuses, InvalidArgument when a 200's
  // body does not parse.
  void FetchRoutes(uint64_t after, Duration wait,
                   std::function<void(Result<wire::Routes>)> done) override;
  void Heartbeat(const std::string& gateway_id, const wire::GatewayHeartbeat& heartbeat,
                 Duration timeout,
                 std::function<void(Result<wire::HeartbeatAnswer>)> done) override;
  void OnLeaderFound(std::function<void()> fn) override { leader_found_ = std::move(fn); }
  std::string Current() const override { return urls_[current_]; }

 private:
  // Sends to the URL in use; `done` gets a 200's body, or the error naming the URL.
  void Call(const std::string& method, const std::string& path, std::string body, Duration timeout,
            std::function<void(Result<std::string>)> done);
  // The answer of urls_[index] was not a 200 (`r` when one came): follows a named leader, else
  // moves on to the next URL (once per failure of the URL in use, so that two calls failing
  // together do not skip one).
  void Failed(size_t index, const http::Response* r, const std::string& what);

  std::vector<std::string> urls_;
  std::string token_;
  size_t current_ = 0;
  std::function<void()> leader_found_;
  // Kept-alive connections: a flood of new connections to the controller cannot delay the
  // heartbeats and the routes' long poll (http/pool.h).
  http::ConnectionPool pool_;
};

}  // namespace hafab::gateway
