// ControllerClient: the agent's ControlLink over HTTP (http::ConnectionPool), with failover
// across several controller URLs: a failure (unreachable, timeout, 503 not-leader) moves the
// next call to the next URL.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <string>
#include <vector>

#include "agent/control_link.h"
#include "core/result.h"
#include "http/pool.h"
#include "wire/agent_heartbeat.h"
#include "wire/assignments.h"

namespace hafab::agent {

// Not thread-safe: the io_context thread only.
class ControllerClient final : public ControlLink {
 public:
  // `base_urls` like "http://127.0.0.1:7070". REQUIRES: not empty.
  ControllerClient(boost::asio::io_context& io, std::vector<std::string> base_urls,
                   std::string token);

  // POST /v1/agents/{heartbeat.node}/heartbeat. Errors: Unavailable / DeadlineExceeded (try again,
  // the next URL is used), PermissionDenied (401/403), Internal (other statuses).
  void Heartbeat(const wire::AgentHeartbeat& heartbeat, Duration timeout,
                 std::function<void(Result<wire::HeartbeatAnswer>)> done) override;

  // GET /v1/agents/{node}/assignments?after=G&wait_ms=W. Errors as Heartbeat, and
  // InvalidArgument when the answer does not parse.
  void FetchAssignments(const std::string& node, uint64_t after, uint64_t digest, Duration wait,
                        std::function<void(Result<wire::AssignmentList>)> done) override;

  std::string Describe() const override;
  // The URL the next call goes to.
  const std::string& current_url() const { return urls_[current_]; }

 private:
  void Call(const std::string& method, const std::string& path, std::string body, Duration timeout,
            std::function<void(Result<std::string>)> done);

  boost::asio::io_context& io_;
  std::vector<std::string> urls_;
  std::string token_;
  size_t current_ = 0;
  // Kept-alive connections: a flood of new connections to the controller cannot delay the
  // heartbeats (http/pool.h).
  http::ConnectionPool pool_;
};

}  // namespace hafab::agent
