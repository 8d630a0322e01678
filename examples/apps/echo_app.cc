// echo-app: the stateless example app for load-balanced roles.
//
//   GET /           -> 200, body "<instance id>\n"
//   GET /ready      -> 200, or 503 while busy
//   POST /busy      -> turns busy on;  POST /unbusy -> turns it off
//                      (also busy while the file named by HAFAB_BUSY_FILE exists)
//   GET /slow?ms=N  -> answers after N ms (at most 10 minutes) without blocking others
//   GET /health     -> 200
//   GET /stats      -> 200 {"requests": N, "slow_pending": M} (requests counts all served)
// Every response carries X-Hafab-Instance and X-Hafab-Epoch.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "app_common.h"
#include "http/http.h"

namespace hafab::apps {
namespace {

constexpr long kMaxSlowMillis = 600'000;

int Main(int argc, char** argv) {
  auto config = LoadAppConfig(argc, argv);
  if (!config.ok()) {
    std::fprintf(stderr, "echo-app: %s\n", config.status().message().c_str());
    return 2;
  }
  boost::asio::io_context io;
  bool busy_switch = false;
  uint64_t requests = 0;
  int slow_pending = 0;
  auto busy = [&] {
    if (busy_switch) return true;
    std::error_code ec;
    return !config->busy_file.empty() && std::filesystem::exists(config->busy_file, ec);
  };

  auto handler = [&](http::Request&& request, http::Responder respond) {
    const std::string& path = request.path;
    bool get = request.method == "GET" || request.method == "HEAD";
    ++requests;
    if (path == "/stats" && get) {
      return respond(http::Response::Json(
          200, "{\"requests\": " + std::to_string(requests) +
                   ", \"slow_pending\": " + std::to_string(slow_pending) + "}"));
    }
    if (path == "/" && get) return respond(http::Response::Text(200, config->instance + "\n"));
    if (path == "/health" && get) return respond(http::Response::Text(200, "ok\n"));
    if (path == "/ready" && get) {
      return respond(busy() ? http::Response::Text(503, "busy\n")
                            : http::Response::Text(200, "ready\n"));
    }
    if ((path == "/busy" || path == "/unbusy") && request.method == "POST") {
      busy_switch = path == "/busy";
      return respond(http::Response::Text(200, busy_switch ? "busy\n" : "not busy\n"));
    }
    if (path == "/slow" && get) {
      std::string text = request.Query("ms");
      long ms = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
      if (text.empty() || ec != std::errc() || end != text.data() + text.size() || ms < 0 ||
          ms > kMaxSlowMillis) {
        return respond(http::Response::Text(400, "ms must be a number of milliseconds from 0 to " +
                                                     std::to_string(kMaxSlowMillis) + "\n"));
      }
      auto timer = std::make_shared<boost::asio::steady_timer>(io, std::chrono::milliseconds(ms));
      ++slow_pending;
      timer->async_wait([timer, respond, ms, &slow_pending](const boost::system::error_code&) {
        --slow_pending;
        respond(http::Response::Text(200, "slept " + std::to_string(ms) + "ms\n"));
      });
      return;
    }
    respond(http::Response::Text(404,
                                 "not found: use /, /ready, /busy, /unbusy, /slow?ms=N, "
                                 "/health, /stats\n"));
  };

  http::Server server(io, WithIdentity(*config, handler));
  return ServeUntilSignal("echo-app", *config, io, server);
}

}  // namespace
}  // namespace hafab::apps

int main(int argc, char** argv) { return hafab::apps::Main(argc, argv); }
