// MetricsServer: the gateway's own small HTTP endpoint (never on the data path):
//   GET /metrics  Prometheus text: per endpoint and backend counters, routes version, lease
//   GET /stats    the same as JSON, plus the control plane's status
//   GET /healthz  "ok"
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>

#include "core/result.h"
#include "gateway/control_plane.h"
#include "gateway/proxy.h"

namespace hafab::http {
class Server;
}

namespace hafab::gateway {

class MetricsServer {
 public:
  // `control` may be null (static routes). Both outlive this object.
  MetricsServer(boost::asio::io_context& io, Proxy& proxy, const ControlPlane* control);
  ~MetricsServer();

  // Binds host:port (0: a free port). Errors: Unavailable naming the address.
  Result<uint16_t> Listen(const std::string& host, uint16_t port);
  // Call on the io_context thread.
  void Stop();

  // The bodies, for tests and the API.
  std::string Prometheus() const;
  std::string Json() const;

 private:
  Proxy& proxy_;
  const ControlPlane* control_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace hafab::gateway
