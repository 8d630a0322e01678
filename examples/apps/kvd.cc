// kvd: the stateful example app. A key-value store over HTTP that appends every write
// to an fsynced log in its data directory (the role's volume) before acknowledging it,
// and replays the log at start.
//
//   PUT /kv/KEY  (body = value)  -> 200 once durable; 500 if the write failed
//                                   (concurrent PUTs share one fsync: group commit)
//   GET /kv/KEY                  -> 200 value, or 404
//   GET /health                  -> 200
// Every response carries X-Hafab-Instance and X-Hafab-Epoch.
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "app_common.h"
#include "group_commit.h"
#include "http/http.h"
#include "kv_log.h"

namespace hafab::apps {
namespace {

constexpr std::string_view kKeyPrefix = "/kv/";

int Main(int argc, char** argv) {
  auto config = LoadAppConfig(argc, argv);
  if (!config.ok()) {
    std::fprintf(stderr, "kvd: %s\n", config.status().message().c_str());
    return 2;
  }
  if (config->data_dir.empty()) {
    std::fprintf(stderr, "kvd: no data directory: set HAFAB_VOLUME_DIR or pass --data-dir D\n");
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(config->data_dir, ec);
  if (ec) {
    std::fprintf(stderr, "kvd: cannot create data directory %s: %s\n", config->data_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  std::string log_path = (std::filesystem::path(config->data_dir) / "kvd.log").string();
  KvLog::Replay replay;
  auto log = KvLog::Open(log_path, &replay);
  if (!log.ok()) {
    std::fprintf(stderr, "kvd: %s\n", log.status().message().c_str());
    return 1;
  }
  std::map<std::string, std::string> entries = std::move(replay.entries);
  std::fprintf(stderr, "kvd: data dir %s: replayed %zu records, %zu keys%s\n",
               config->data_dir.c_str(), replay.records, entries.size(),
               replay.torn_bytes > 0 ? (", truncated a torn last record of " +
                                        std::to_string(replay.torn_bytes) + " bytes")
                                           .c_str()
                                     : "");
  // Overwritten values are dropped at start, so the log holds what the next replay needs
  // rather than every write since the first (a role failed over many times replays it each
  // time).
  if (replay.records > 2 * entries.size() + 1000) {
    Status compacted = KvLog::Compact(log_path, entries);
    if (compacted.ok()) {
      std::fprintf(stderr, "kvd: compacted the log from %zu records to %zu\n", replay.records,
                   entries.size());
      log = KvLog::Open(log_path, nullptr);  // the new file; the old one is closed
      if (!log.ok()) {
        std::fprintf(stderr, "kvd: %s\n", log.status().message().c_str());
        return 1;
      }
    } else {
      std::fprintf(stderr, "kvd: log not compacted (kept as it was): %s\n",
                   compacted.message().c_str());
    }
  }

  boost::asio::io_context io;
  // Destroyed before `io` and `log`: its destructor flushes and joins the writer thread.
  auto committer = std::make_unique<GroupCommitter>(io, **log);

  auto handler = [&](http::Request&& request, http::Responder respond) {
    if (request.path == "/health") {
      return respond(request.method == "GET" || request.method == "HEAD"
                         ? http::Response::Text(200, "ok\n")
                         : http::Response::Text(405, "use GET\n"));
    }
    if (!request.path.starts_with(kKeyPrefix) || request.path.size() == kKeyPrefix.size()) {
      return respond(http::Response::Text(404, "not found: use /kv/KEY or /health\n"));
    }
    std::string key = request.path.substr(kKeyPrefix.size());
    if (request.method == "PUT") {
      std::string value = request.body;
      committer->Append(key, std::move(request.body),
                        [&entries, key, value = std::move(value), respond](Status written) mutable {
                          if (!written.ok()) {
                            std::fprintf(stderr, "kvd: PUT %s failed: %s\n", key.c_str(),
                                         written.message().c_str());
                            return respond(http::Response::Text(500, written.message() + "\n"));
                          }
                          // Visible to readers only once durable.
                          entries.insert_or_assign(std::move(key), std::move(value));
                          respond(http::Response::Text(200, "stored\n"));
                        });
      return;
    }
    if (request.method == "GET" || request.method == "HEAD") {
      auto it = entries.find(key);
      if (it == entries.end()) return respond(http::Response::Text(404, "no such key\n"));
      http::Response response;
      response.content_type = "application/octet-stream";
      response.body = it->second;
      return respond(std::move(response));
    }
    http::Response response = http::Response::Text(405, "use GET or PUT\n");
    response.headers.emplace_back("Allow", "GET, PUT");
    respond(std::move(response));
  };

  http::Server server(io, WithIdentity(*config, handler));
  return ServeUntilSignal("kvd", *config, io, server);
}

}  // namespace
}  // namespace hafab::apps

int main(int argc, char** argv) { return hafab::apps::Main(argc, argv); }
