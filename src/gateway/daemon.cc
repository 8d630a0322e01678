#include "gateway/daemon.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "core/duration.h"
#include "core/rlimit.h"
#include "gateway/control_plane.h"
#include "gateway/http_control_link.h"
#include "gateway/metrics_server.h"
#include "gateway/proxy.h"

namespace hafab::gateway {
namespace {

Result<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument(std::string("cannot read ") + what + " " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::shared_ptr<const RouteTable>> LoadRoutes(const std::string& path) {
  HAFAB_ASSIGN_OR_RETURN(std::string text, ReadFile(path, "routes file"));
  auto t = RouteTable::Parse(text);
  if (!t.ok()) return t.status().WithContext(path);
  return t;
}

Status WriteAtomically(const std::filesystem::path& path, const std::string& content) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    if (!out) return Status::Internal("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::Internal("cannot rename " + tmp + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

// Descriptors kept out of the proxy's connection limit: the control plane's connections,
// the metrics listener, logs, pipes for splice(2).
constexpr uint64_t kReservedFiles = 512;

int RunGateway(const GatewayOptions& o) {
  const uint64_t open_files = RaiseOpenFileLimit();
  // Every thread started from here on inherits the mask; this thread takes the signals.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const bool static_mode = !o.routes_file.empty();
  std::shared_ptr<const RouteTable> initial;
  std::string token;
  if (static_mode) {
    auto t = LoadRoutes(o.routes_file);
    if (!t.ok()) {
      spdlog::error("gateway: {}", t.status().message());
      return 1;
    }
    initial = *t;
  } else {
    auto t = ReadFile(o.token_file, "token file");
    if (!t.ok()) {
      spdlog::error("gateway: {}", t.status().message());
      return 1;
    }
    token = *t;
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
      token.pop_back();
  }
  auto metrics_addr = SocketAddress::Parse(o.metrics_listen);
  if (!metrics_addr.ok()) {
    spdlog::error("gateway: --metrics-listen: {}", metrics_addr.status().message());
    return 1;
  }

  ProxyOptions po;
  po.threads = o.threads;
  po.primary_wait = o.primary_wait;
  po.idle_timeout = o.idle_timeout;
  po.max_connections = o.max_connections;
  if (po.max_connections == 0 && open_files > 2 * kReservedFiles) {
    // A proxied connection holds two descriptors (client, backend). Beyond the limit clients
    // wait in the kernel's queue; the control plane keeps descriptors for its connections.
    po.max_connections = static_cast<size_t>((open_files - kReservedFiles) / 2);
  }
  spdlog::info("gateway: at most {} client connections (open-file limit {})", po.max_connections,
               open_files);
  po.data_path = o.data_path;
  po.splice = o.splice;
  auto started = Proxy::Start(po);
  if (!started.ok()) {
    spdlog::error("gateway: {}", started.status().message());
    return 1;
  }
  std::unique_ptr<Proxy> proxy = std::move(started).value();
  if (static_mode) {
    Status s = proxy->Install(initial);
    if (!s.ok()) spdlog::error("gateway: {}", s.message());
  } else {
    proxy->SetLeaseDeadline(TimePoint::min());  // no active-passive routing before a lease
  }

  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::unique_ptr<ControlPlane> control;
  if (!static_mode) {
    ControlPlaneOptions co;
    co.gateway_id = o.id;
    co.seed = static_cast<uint64_t>(RealClock().WallNow().time_since_epoch().count());
    control = std::make_unique<ControlPlane>(
        io, *proxy, co, std::make_unique<HttpControlLink>(io, o.controllers, token));
  }
  MetricsServer metrics(io, *proxy, control.get());
  std::string host = metrics_addr->ToString();
  host = host.substr(0, host.rfind(':'));
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  auto port = metrics.Listen(host, metrics_addr->port());
  if (!port.ok()) {
    spdlog::error("gateway: metrics: {}", port.status().message());
    return 1;
  }
  const std::string bound =
      (metrics_addr->storage.ss_family == AF_INET6 ? "[" + host + "]" : host) + ":" +
      std::to_string(*port);
  spdlog::info(
      "gateway {}: {} threads, metrics on http://{}/metrics, {}", o.id, proxy->threads(), bound,
      static_mode ? "static routes from " + o.routes_file : "routes from " + o.controllers.front());
  if (!o.state_dir.empty()) {
    Status s = WriteAtomically(std::filesystem::path(o.state_dir) / "gateway.addr", bound + "\n");
    if (!s.ok()) spdlog::warn("gateway: {}", s.message());
  }
  if (control) control->Start();
  std::thread io_thread([&io] { io.run(); });

  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      if (!static_mode) continue;
      auto t = LoadRoutes(o.routes_file);
      if (!t.ok()) {
        spdlog::error("gateway: reload kept the current routes: {}", t.status().message());
        continue;
      }
      Status s = proxy->Install(*t);
      spdlog::info("gateway: reloaded {} (version {}){}", o.routes_file, (*t)->version(),
                   s.ok() ? "" : ": " + s.message());
      continue;
    }
    spdlog::info("gateway: signal {}, draining (up to {})", sig, FormatDuration(o.drain_timeout));
    break;
  }
  proxy->Drain(o.drain_timeout);
  std::promise<void> stopped;
  boost::asio::post(io, [&] {
    if (control) control->Stop();
    metrics.Stop();
    stopped.set_value();
  });
  stopped.get_future().wait();
  work.reset();
  io.stop();
  io_thread.join();
  spdlog::info("gateway: drained, exiting");
  return 0;
}

}  // namespace hafab::gateway
