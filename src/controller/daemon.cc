#include "controller/daemon.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>

#include "controller/api.h"
#include "controller/controller.h"
#include "controller/replica.h"
#include "controller/tokens.h"
#include "core/backoff.h"
#include "core/rlimit.h"
#include "http/http.h"
#include "manifest/parser.h"
#include "provider/background_provider.h"
#include "provider/exec_provider.h"
#include "provider/local_provider.h"
#include "store/open.h"

namespace hafab::controller {

namespace fs = std::filesystem;

namespace {

Status WriteFileAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out) return Status::Unavailable(tmp + ": cannot write");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::Unavailable(path + ": " + ec.message());
  return Status::Ok();
}

// Opens the store; while a shared store (etcd) does not answer, says so and tries again
// with backoff (1s doubling to 10s) until it answers or one of `stop` arrives (then nullptr).
// Errors: what store::Open says when retrying cannot help (a bad URL, an SQLite file).
// REQUIRES: the signals of `stop` blocked in this thread.
Result<std::unique_ptr<store::Store>> OpenStoreWaiting(const std::string& url, Duration budget,
                                                       const http::TlsFiles& etcd_tls,
                                                       const sigset_t& stop) {
  Backoff backoff(std::chrono::seconds(1), std::chrono::seconds(10));
  const TimePoint since = RealClock().Now();
  for (int attempt = 1;; ++attempt) {
    auto opened = store::Open(url, RealClock(), budget, etcd_tls);
    const bool retry =
        url.rfind("etcd://", 0) == 0 && (opened.status().code() == StatusCode::kUnavailable ||
                                         opened.status().code() == StatusCode::kDeadlineExceeded);
    if (!retry) {
      if (opened.ok() && attempt > 1) {
        spdlog::info("controller: the store {} answered after {}ms", url,
                     ToMs(RealClock().Now() - since));
      }
      return opened;
    }
    const Duration wait = backoff.Next();
    spdlog::warn("controller: waiting for the store {} (attempt {}): {}; retrying in {}ms", url,
                 attempt, opened.status().message(), ToMs(wait));
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    int sig = sigtimedwait(&stop, nullptr, &ts);
    if (sig > 0) {
      spdlog::info("controller: signal {} while waiting for the store, stopping", sig);
      return std::unique_ptr<store::Store>();
    }
  }
}

}  // namespace

Status RunDaemon(const DaemonOptions& opts) {
  signal(SIGPIPE, SIG_IGN);
  RaiseOpenFileLimit();
  if (opts.state_dir.empty()) return Status::InvalidArgument("--state-dir: required");
  std::error_code ec;
  fs::create_directories(opts.state_dir, ec);
  if (ec) return Status::Unavailable("--state-dir " + opts.state_dir + ": " + ec.message());
  std::string state = fs::canonical(opts.state_dir).string();

  auto colon = opts.listen.rfind(':');
  if (colon == std::string::npos) {
    return Status::InvalidArgument("--listen: want HOST:PORT, got '" + opts.listen + "'");
  }
  std::string host = opts.listen.substr(0, colon);
  int port = 0;
  try {
    port = std::stoi(opts.listen.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  if (port < 0 || port > 65535) {
    return Status::InvalidArgument("--listen: bad port in '" + opts.listen + "'");
  }

  const std::string db = opts.store.empty() ? "sqlite:" + state + "/controller.db" : opts.store;
  // SQLite is opened with an exclusive lock: this process is the only replica. On etcd,
  // several replicas elect their leader (replica.h).
  const bool shared_store = db.rfind("etcd://", 0) == 0;
  if (opts.leader_ttl < std::chrono::milliseconds(200)) {
    return Status::InvalidArgument("--leader-ttl: must be at least 200ms");
  }
  std::optional<manifest::Manifest> initial;
  if (!opts.manifest.empty()) {
    auto outcome = manifest::LoadManifestFile(opts.manifest);
    for (const auto& d : outcome.diagnostics) spdlog::warn("{}", d.ToString());
    if (!outcome.ok() || !outcome.manifest) {
      return Status::InvalidArgument("--manifest " + opts.manifest + ": invalid (see above)");
    }
    initial = *outcome.manifest;
  }

  HAFAB_ASSIGN_OR_RETURN(Tokens tokens, LoadOrCreateTokens(state));
  // One store call blocks the controller's loop (heartbeats wait): on etcd it gives up
  // after half the leader ttl (1-5 s), when the write guard would stop it anyway.
  const Duration store_budget =
      std::clamp<Duration>(opts.leader_ttl / 2, std::chrono::seconds(1), std::chrono::seconds(5));
  // SIGINT/SIGTERM wait in the kernel until the handlers below exist: one that arrives while
  // the store is awaited ends the wait; later ones reach the signal_set.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  if (!opts.etcd_tls.empty() && db.rfind("etcd://", 0) != 0) {
    return Status::InvalidArgument(
        "--etcd-ca, --etcd-cert, --etcd-key: only with an etcd:// "
        "--store");
  }
  auto opened = OpenStoreWaiting(db, store_budget, opts.etcd_tls, stop_signals);
  if (!opened.ok()) return opened.status().WithContext("--store " + db);
  if (*opened == nullptr) return Status::Ok();  // stopped by a signal while waiting
  std::unique_ptr<store::Store> st = std::move(opened).value();

  std::unique_ptr<provider::Provider> prov;
  if (opts.provider == "exec") {
    auto config = provider::LoadExecProviderConfig(opts.provider_config);
    if (!config.ok()) return config.status().WithContext("--provider-config");
    prov = std::make_unique<provider::ExecProvider>(*config);
  } else if (opts.provider != "local") {
    return Status::InvalidArgument("--provider: want local or exec, got '" + opts.provider + "'");
  } else if (!opts.volume_root.empty()) {
    fs::create_directories(opts.volume_root, ec);
    prov = std::make_unique<provider::LocalProvider>(fs::absolute(opts.volume_root).string());
  }
  // The controller decides on one thread: a provider call that takes seconds must not stop
  // it from answering heartbeats (other nodes would fence themselves) or renewing leadership.
  if (prov) prov = std::make_unique<provider::BackgroundProvider>(std::move(prov), RealClock());

  ControllerOptions co;
  co.lease_ttl = opts.lease_ttl;
  co.fence_margin = opts.fence_margin;
  co.crash_at_step = opts.crash_at_step;
  co.crash_exits = true;
  co.heartbeat_interval = opts.heartbeat_interval;
  std::string detector = opts.failure_detector;
  if (detector.empty()) {
    detector = initial
                   ? std::string(manifest::FailureDetectorName(initial->settings.failure_detector))
                   : "star";
  }
  if (detector != "star" && detector != "ring") {
    return Status::InvalidArgument("--failure-detector: want star or ring, got '" + detector + "'");
  }
  co.ring_detector = detector == "ring";
  co.ring_key = RingKey(tokens.key);

  boost::asio::io_context io;
  std::unique_ptr<Replica> replica;  // made once the bound address is known; io runs later
  http::Server server(io, [&replica](http::Request&& req, http::Responder respond) {
    replica->Handle(std::move(req), std::move(respond));
  });
  // Tokens and body sizes are checked from the header, before any body is read; the listener's
  // connection limits keep an anonymous flood from starving heartbeats (http.h ServerLimits).
  server.SetHeaderCheck([&replica](const http::Request& head) { return replica->Admit(head); });
  if (opts.max_connections > 0 || opts.max_connections_per_peer > 0) {
    http::ServerLimits limits;
    if (opts.max_connections > 0) limits.max_connections = opts.max_connections;
    if (opts.max_connections_per_peer > 0) limits.max_per_peer = opts.max_connections_per_peer;
    server.SetLimits(limits);
    spdlog::info("controller: at most {} connections, {} from one address", limits.max_connections,
                 limits.max_per_peer);
  }
  if (!opts.tls.empty()) {
    HAFAB_RETURN_IF_ERROR(http::CheckTlsFiles(opts.tls));
    HAFAB_RETURN_IF_ERROR(server.UseTls(opts.tls));
    // A follower asks the other replicas who leads (leader_probe.h) as their client.
    HAFAB_RETURN_IF_ERROR(http::SetClientTls(opts.tls));
  }
  // With port 0, a restarted controller takes the port it had before when it is free:
  // agents and gateways know only that address (the `hafab up` children keep their argv).
  std::string remembered = state + "/api.listen";
  Result<uint16_t> listened = Status::Unavailable("not tried");
  if (port == 0) {
    std::ifstream in(remembered);
    int before = 0;
    std::string h;
    if (in >> h >> before && h == host && before > 0 && before < 65536) {
      listened = server.Listen(host, static_cast<uint16_t>(before));
      if (!listened.ok()) spdlog::info("port {} of the last run is taken; picking another", before);
    }
  }
  if (!listened.ok()) listened = server.Listen(host, static_cast<uint16_t>(port));
  if (!listened.ok()) return listened.status();
  uint16_t bound = *listened;
  HAFAB_RETURN_IF_ERROR(WriteFileAtomically(remembered, host + " " + std::to_string(bound) + "\n"));
  std::string url_host = host == "0.0.0.0" || host.empty() ? "127.0.0.1" : host;
  std::string url =
      (opts.tls.empty() ? "http://" : "https://") + url_host + ":" + std::to_string(bound);

  ReplicaOptions ro;
  ro.controller = co;
  ro.leader.id = NewReplicaId();
  ro.leader.url = opts.advertise.empty() ? url : opts.advertise;
  ro.leader.ttl = opts.leader_ttl;
  ro.leader.margin = opts.leader_ttl / 4;
  ro.leader.renew_interval = opts.leader_ttl / 4;
  ro.leader.recheck_interval = opts.leader_ttl / 2;
  ro.leader.sole_owner = !shared_store;
  ro.https = !opts.tls.empty();
  replica = std::make_unique<Replica>(*st, RealClock(), prov.get(), tokens, ro);
  // --manifest is applied once per process, at its first term as leader.
  replica->SetOnElected([&initial, path = opts.manifest](Controller& c) -> Status {
    if (!initial) return Status::Ok();
    auto applied = c.Apply(*initial);
    if (!applied.ok()) return applied.status().WithContext("--manifest " + path);
    initial.reset();
    return Status::Ok();
  });
  replica->Tick();  // a sole owner (SQLite) leads from here on, before api.url says it is up
  HAFAB_RETURN_IF_ERROR(WriteFileAtomically(state + "/api.url", url + "\n"));
  spdlog::info(
      "controller {} listening on {}, advertised as {} ({}; store {}, lease {}ms, fence margin "
      "{}ms, leader ttl {}ms, store call budget {}ms, failure detector {})",
      ro.leader.id, url, ro.leader.url, replica->leading() ? "leader" : "follower", db,
      ToMs(opts.lease_ttl), ToMs(opts.fence_margin), ToMs(opts.leader_ttl), ToMs(store_budget),
      detector);

  boost::asio::steady_timer timer(io);
  std::function<void()> tick = [&] {
    timer.expires_after(std::chrono::milliseconds(20));
    timer.async_wait([&](const boost::system::error_code& e) {
      if (e) return;
      replica->Tick();
      tick();
    });
  };
  tick();

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& e, int sig) {
    if (e) return;
    spdlog::info("controller: signal {}, stopping", sig);
    replica->Shutdown();  // answers long-polls; resigns so a follower takes over at once
    timer.cancel();
    server.Stop();
    io.stop();
  });
  sigprocmask(SIG_UNBLOCK, &stop_signals, nullptr);
  io.run();
  fs::remove(state + "/api.url", ec);
  spdlog::info("controller stopped");
  return Status::Ok();
}

}  // namespace hafab::controller
