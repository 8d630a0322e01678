#include "gateway/metrics_server.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/json.h"
#include "http/http.h"

namespace hafab::gateway {

MetricsServer::MetricsServer(boost::asio::io_context& io, Proxy& proxy, const ControlPlane* control)
    : proxy_(proxy), control_(control) {
  server_ = std::make_unique<http::Server>(io, [this](http::Request&& req,
                                                      http::Responder respond) {
    if (req.method != "GET") {
      respond(http::Response::Json(405, R"({"error": "only GET is served here"})"));
    } else if (req.path == "/metrics") {
      http::Response r = http::Response::Text(200, Prometheus());
      r.content_type = "text/plain; version=0.0.4";
      respond(std::move(r));
    } else if (req.path == "/stats") {
      respond(http::Response::Json(200, Json()));
    } else if (req.path == "/healthz") {
      respond(http::Response::Text(200, "ok\n"));
    } else {
      respond(http::Response::Json(404, R"({"error": "unknown path; try /metrics or /stats"})"));
    }
  });
  // Only GETs are served: no body is read. The default ServerLimits shed an idle flood, so
  // that it cannot take the descriptors the data path and the control plane need.
  server_->SetHeaderCheck([](const http::Request&) {
    http::Admission admission;
    admission.body_limit = 0;
    return admission;
  });
}

MetricsServer::~MetricsServer() = default;

Result<uint16_t> MetricsServer::Listen(const std::string& host, uint16_t port) {
  return server_->Listen(host, port);
}

void MetricsServer::Stop() { server_->Stop(); }

std::string MetricsServer::Prometheus() const {
  const bool lease = proxy_.LeaseValid();
  std::string extra = fmt::format(
      "# HELP hafab_gateway_routes_version Version of the routing table every thread uses\n"
      "# TYPE hafab_gateway_routes_version gauge\nhafab_gateway_routes_version {}\n"
      "# HELP hafab_gateway_lease_valid 1 while active-passive endpoints may be routed\n"
      "# TYPE hafab_gateway_lease_valid gauge\nhafab_gateway_lease_valid {}\n"
      "# HELP hafab_gateway_threads Data-path threads\n"
      "# TYPE hafab_gateway_threads gauge\nhafab_gateway_threads {}\n",
      proxy_.RoutesVersion(), lease ? 1 : 0, proxy_.threads());
  if (control_) {
    ControlPlaneStatus s = control_->status();
    extra += fmt::format(
        "# HELP hafab_gateway_route_poll_failures_total Route polls of the controller that "
        "failed\n"
        "# TYPE hafab_gateway_route_poll_failures_total counter\n"
        "hafab_gateway_route_poll_failures_total {}\n"
        "# HELP hafab_gateway_heartbeat_failures_total Heartbeats to the controller that "
        "failed\n"
        "# TYPE hafab_gateway_heartbeat_failures_total counter\n"
        "hafab_gateway_heartbeat_failures_total {}\n",
        s.poll_failures, s.heartbeat_failures);
  }
  return proxy_.stats().RenderPrometheus(extra);
}

std::string MetricsServer::Json() const {
  nlohmann::json j = nlohmann::json::parse(proxy_.stats().RenderJson());
  j["routes_version"] = proxy_.RoutesVersion();
  j["lease_valid"] = proxy_.LeaseValid();
  j["threads"] = proxy_.threads();
  j["active"] = proxy_.ActiveConnections();
  if (control_) {
    ControlPlaneStatus s = control_->status();
    j["control"] = {{"controller", s.controller},
                    {"installed_version", s.installed_version},
                    {"acked_version", s.acked_version},
                    {"poll_failures", s.poll_failures},
                    {"heartbeat_failures", s.heartbeat_failures},
                    {"heartbeats_ok", s.heartbeats_ok},
                    {"last_error", s.last_error}};
  }
  return Dump(j);
}

}  // namespace hafab::gateway
