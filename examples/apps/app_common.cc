#include "app_common.h"

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace hafab::apps {
namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

Result<uint16_t> ParsePort(std::string_view from, std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
    return Status::InvalidArgument(std::string(from) + " must be a port from 1 to 65535, got \"" +
                                   std::string(text) + "\"");
  }
  return static_cast<uint16_t>(value);
}

}  // namespace

Result<AppConfig> LoadAppConfig(int argc, char** argv) {
  AppConfig config;
  config.instance = Env("HAFAB_INSTANCE");
  config.epoch = Env("HAFAB_EPOCH");
  config.host = Env("HAFAB_HOST");
  if (config.host.empty()) config.host = "0.0.0.0";
  config.data_dir = Env("HAFAB_VOLUME_DIR");
  config.busy_file = Env("HAFAB_BUSY_FILE");
  std::string port_text = Env("HAFAB_PORT");
  std::string port_from = "HAFAB_PORT";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (arg == "--port" || arg == "--host" || arg == "--data-dir") {
      if (i + 1 >= argc) return Status::InvalidArgument(arg + " needs a value");
      value = argv[++i];
    }
    if (arg == "--port") {
      port_text = value;
      port_from = "--port";
    } else if (arg == "--host") {
      config.host = value;
    } else if (arg == "--data-dir") {
      config.data_dir = value;
    } else {
      return Status::InvalidArgument("unknown flag " + arg +
                                     " (allowed: --port N, --host H, --data-dir D)");
    }
  }
  if (port_text.empty()) {
    return Status::InvalidArgument("no port: set HAFAB_PORT or pass --port N");
  }
  HAFAB_ASSIGN_OR_RETURN(config.port, ParsePort(port_from, port_text));
  return config;
}

http::Handler WithIdentity(const AppConfig& config, http::Handler handler,
                           std::function<std::string()> epoch) {
  if (!epoch) epoch = [started = config.epoch] { return started; };
  return [instance = config.instance, epoch = std::move(epoch), handler = std::move(handler)](
             http::Request&& request, http::Responder respond) {
    handler(std::move(request), [instance, epoch, respond](http::Response response) {
      response.headers.emplace_back("X-Hafab-Instance", instance);
      response.headers.emplace_back("X-Hafab-Epoch", epoch());
      respond(std::move(response));
    });
  };
}

int ServeUntilSignal(const char* app, const AppConfig& config, boost::asio::io_context& io,
                     http::Server& server) {
  auto port = server.Listen(config.host, config.port);
  if (!port.ok()) {
    std::fprintf(stderr, "%s: %s\n", app, port.status().message().c_str());
    return 1;
  }
  std::fprintf(stderr, "%s: listening on %s:%u (instance \"%s\", epoch \"%s\")\n", app,
               config.host.c_str(), static_cast<unsigned>(*port), config.instance.c_str(),
               config.epoch.c_str());
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  boost::asio::steady_timer give_up(io);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    std::fprintf(stderr,
                 "%s: signal %d, draining: answering requests in flight, closing each "
                 "connection after its next response\n",
                 app, signal);
    server.Drain([&] { io.stop(); }, std::chrono::seconds(1));
    give_up.expires_after(std::chrono::seconds(5));
    give_up.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      std::fprintf(stderr, "%s: connections still open after 5s, exiting anyway\n", app);
      io.stop();
    });
  });
  io.run();
  server.Stop();
  std::fprintf(stderr, "%s: stopped\n", app);
  return 0;
}

}  // namespace hafab::apps
