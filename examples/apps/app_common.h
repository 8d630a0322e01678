// What the example apps share: their identity and listen address from the environment
// the agent sets (HAFAB_INSTANCE, HAFAB_EPOCH, HAFAB_PORT, HAFAB_HOST), the identity
// headers on every response, and the serve-until-SIGTERM loop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/result.h"
#include "http/http.h"

namespace hafab::apps {

struct AppConfig {
  std::string instance;   // HAFAB_INSTANCE, "" when unset
  std::string epoch;      // HAFAB_EPOCH, "" when unset
  std::string host;       // --host, else HAFAB_HOST, else 0.0.0.0
  uint16_t port = 0;      // --port, else HAFAB_PORT (required)
  std::string data_dir;   // --data-dir, else HAFAB_VOLUME_DIR ("" when neither)
  std::string busy_file;  // HAFAB_BUSY_FILE, "" when unset
};

// Reads the environment and the flags --port N, --host H, --data-dir D (and --flag=value).
// Errors: InvalidArgument naming the bad flag or value, or saying HAFAB_PORT is missing.
Result<AppConfig> LoadAppConfig(int argc, char** argv);

// Wraps `handler` so that every response carries X-Hafab-Instance and X-Hafab-Epoch (the
// epoch it started with, or what `epoch` says at each answer: a replica's moves without a
// restart).
http::Handler WithIdentity(const AppConfig& config, http::Handler handler,
                           std::function<std::string()> epoch = nullptr);

// Listens on config.host:config.port and runs `io` until SIGTERM or SIGINT, then drains
// (the drain contract, README.md): stops accepting, answers every request already received,
// answers the next request on each open keep-alive connection with `Connection: close` and
// closes it, closes connections idle for 1 s; returns 0 once no connection is left (or
// after 5 s at most).
// Returns 1 (after logging why) if the address cannot be bound.
int ServeUntilSignal(const char* app, const AppConfig& config, boost::asio::io_context& io,
                     http::Server& server);

}  // namespace hafab::apps
