#include "controller/daemon.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <fstream>
#include <functional>

#include "controller/api.h"
#include "controller/controller.h"
#include "controller/tokens.h"
#include "http/http.h"
#include "manifest/parser.h"
#include "provider/exec_provider.h"
#include "provider/local_provider.h"
#include "store/sqlite_store.h"

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

}  // namespace

Status RunDaemon(const DaemonOptions& opts) {
  signal(SIGPIPE, SIG_IGN);
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

  std::string db = state + "/controller.db";
  if (!opts.store.empty()) {
    if (opts.store.rfind("sqlite:", 0) != 0) {
      return Status::InvalidArgument("--store: only sqlite:PATH is supported, got '" + opts.store +
                                     "'");
    }
    db = opts.store.substr(7);
  }

  HAFAB_ASSIGN_OR_RETURN(Tokens tokens, LoadOrCreateTokens(state));
  auto opened = store::SqliteStore::Open(db, RealClock());
  if (!opened.ok()) return opened.status().WithContext("--store " + db);
  std::unique_ptr<store::SqliteStore> st = std::move(opened).value();

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

  ControllerOptions co;
  co.lease_ttl = opts.lease_ttl;
  co.fence_margin = opts.fence_margin;
  co.crash_at_step = opts.crash_at_step;
  co.crash_exits = true;
  Controller c(*st, RealClock(), prov.get(), co);
  HAFAB_RETURN_IF_ERROR(c.Start());

  if (!opts.manifest.empty()) {
    auto outcome = manifest::LoadManifestFile(opts.manifest);
    for (const auto& d : outcome.diagnostics) spdlog::warn("{}", d.ToString());
    if (!outcome.ok() || !outcome.manifest) {
      return Status::InvalidArgument("--manifest " + opts.manifest + ": invalid (see above)");
    }
    auto applied = c.Apply(*outcome.manifest);
    if (!applied.ok()) return applied.status().WithContext("--manifest " + opts.manifest);
  }

  boost::asio::io_context io;
  Api api(c, RealClock(), tokens);
  http::Server server(io, [&api](http::Request&& req, http::Responder respond) {
    api.Handle(std::move(req), std::move(respond));
  });
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
  std::string url = "http://" + url_host + ":" + std::to_string(bound);
  HAFAB_RETURN_IF_ERROR(WriteFileAtomically(state + "/api.url", url + "\n"));
  spdlog::info("controller {} listening on {} (store {}, lease {}ms, fence margin {}ms)", c.id(),
               url, db, ToMs(opts.lease_ttl), ToMs(opts.fence_margin));

  boost::asio::steady_timer timer(io);
  std::function<void()> tick = [&] {
    timer.expires_after(std::chrono::milliseconds(20));
    timer.async_wait([&](const boost::system::error_code& e) {
      if (e) return;
      c.Tick();
      api.ExpireWaits();
      tick();
    });
  };
  tick();

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& e, int sig) {
    if (e) return;
    spdlog::info("controller: signal {}, stopping", sig);
    api.FlushAll();
    timer.cancel();
    server.Stop();
    io.stop();
  });
  io.run();
  fs::remove(state + "/api.url", ec);
  spdlog::info("controller stopped");
  return Status::Ok();
}

}  // namespace hafab::controller
