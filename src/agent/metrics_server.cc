#include "agent/metrics_server.h"

#include <boost/asio/post.hpp>

#include "core/prometheus.h"
#include "http/http.h"

namespace hafab::agent {

MetricsServer::MetricsServer(const AgentMetrics& metrics) : work_(io_.get_executor()) {
  server_ =
      std::make_unique<http::Server>(io_, [&metrics](http::Request&& req, http::Responder respond) {
        if (req.method != "GET") {
          respond(http::Response::Json(405, R"({"error": "only GET is served here"})"));
        } else if (req.path == "/metrics") {
          http::Response r = http::Response::Text(200, metrics.Render());
          r.content_type = kMetricsContentType;
          respond(std::move(r));
        } else if (req.path == "/healthz") {
          respond(http::Response::Text(200, "ok\n"));
        } else {
          respond(http::Response::Json(404, R"({"error": "unknown path; try /metrics"})"));
        }
      });
  // Only GETs: no body is read. The default ServerLimits shed an idle flood.
  server_->SetHeaderCheck([](const http::Request&) {
    http::Admission admission;
    admission.body_limit = 0;
    return admission;
  });
  server_->SetIdleTimeout(std::chrono::seconds(30));
}

MetricsServer::~MetricsServer() {
  if (thread_.joinable()) {
    boost::asio::post(io_, [this] {
      server_->Stop();
      work_.reset();
      io_.stop();
    });
    thread_.join();
  } else {
    server_->Stop();
  }
  server_.reset();
}

Result<uint16_t> MetricsServer::Listen(const std::string& host, uint16_t port) {
  auto bound = server_->Listen(host, port);
  if (bound.ok() && !thread_.joinable()) thread_ = std::thread([this] { io_.run(); });
  return bound;
}

}  // namespace hafab::agent
