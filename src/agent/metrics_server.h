// MetricsServer: the agent's GET /metrics (`hafab agent --metrics-listen HOST:PORT`), on its
// own thread and io_context: a scrape (or a flood of connections, shed by the http::Server's
// limits) never runs on the agent's io thread, where heartbeats and probes go.
//   GET /metrics  Prometheus text (AgentMetrics::Render)
//   GET /healthz  "ok"
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <thread>

#include "agent/agent_metrics.h"
#include "core/result.h"

namespace hafab::http {
class Server;
}

namespace hafab::agent {

class MetricsServer {
 public:
  // `metrics` outlives this object.
  explicit MetricsServer(const AgentMetrics& metrics);
  // Stops serving and joins the thread.
  ~MetricsServer();

  // Binds host:port (0: a free port) and starts the thread. Call once.
  // Errors: Unavailable naming the address (in use, not local).
  Result<uint16_t> Listen(const std::string& host, uint16_t port);

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<http::Server> server_;
  std::thread thread_;
};

}  // namespace hafab::agent
