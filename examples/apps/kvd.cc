// kvd: the stateful example app. A key-value store over HTTP that appends every write
// to an fsynced log in its data directory (the role's volume) before acknowledging it,
// and replays the log at start.
//
//   PUT /kv/KEY  (body = value)  -> 200 once durable; 500 if the write failed
//                                   (concurrent PUTs share one fsync: group commit)
//   GET /kv/KEY                  -> 200 value, or 404
//   GET /health                  -> 200
// Every response carries X-Hafab-Instance and X-Hafab-Epoch.
// With HAFAB_REPLICA_CONFIG set it is one replica of a replicated role (kv_replica.h).
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "app_common.h"
#include "group_commit.h"
#include "http/http.h"
#include "kv_log.h"
#include "kv_replica.h"

namespace hafab::apps {
namespace {

constexpr std::string_view kKeyPrefix = "/kv/";

// KVD_ACK_TIMEOUT_MS: how long a replicated write waits for its quorum (default 5000).
Result<KvReplica::Options> ReplicaOptions() {
  KvReplica::Options options;
  const char* text = std::getenv("KVD_ACK_TIMEOUT_MS");
  if (text == nullptr || *text == '\0') return options;
  std::string_view view(text);
  unsigned ms = 0;
  auto [end, ec] = std::from_chars(view.data(), view.data() + view.size(), ms);
  if (ec != std::errc() || end != view.data() + view.size() || ms == 0) {
    return Status::InvalidArgument("KVD_ACK_TIMEOUT_MS must be a positive number of ms, got \"" +
                                   std::string(view) + "\"");
  }
  options.ack_timeout = std::chrono::milliseconds(ms);
  return options;
}

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
  std::optional<wire::ReplicaConfig> replica_config;
  if (const char* json = std::getenv("HAFAB_REPLICA_CONFIG"); json != nullptr) {
    auto parsed = ReadReplicaConfig(json);
    if (!parsed.ok()) {
      std::fprintf(stderr, "kvd: HAFAB_REPLICA_CONFIG: %s\n", parsed.status().message().c_str());
      return 2;
    }
    replica_config = *std::move(parsed);
  }
  auto replica_options = ReplicaOptions();
  if (!replica_options.ok()) {
    std::fprintf(stderr, "kvd: %s\n", replica_options.status().message().c_str());
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
  std::string notes;
  if (replay.legacy_records > 0) {
    notes += ", " + std::to_string(replay.legacy_records) +
             " of them in the format without positions (epoch 0)";
  }
  if (replay.torn_bytes > 0) {
    notes += ", truncated a torn last record of " + std::to_string(replay.torn_bytes) + " bytes";
  }
  if (replay.stale_records > 0) {
    notes += ", moved " + std::to_string(replay.stale_records) +
             " records a primary of an older epoch appended after a newer one's (never "
             "acknowledged) to " +
             replay.stale_file;
  }
  std::fprintf(stderr,
               "kvd: data dir %s: replayed %zu records, %zu keys, last position %llu/%llu%s\n",
               config->data_dir.c_str(), replay.records, entries.size(),
               static_cast<unsigned long long>(replay.last.epoch),
               static_cast<unsigned long long>(replay.last.index), notes.c_str());
  // Overwritten values are dropped at start, so the log holds what the next replay needs
  // rather than every write since the first (a role failed over many times replays it each
  // time). Not a replica's: its records are compared by position with its peers', and
  // the tail it holds may not be committed (it could have to move it aside).
  if (!replica_config && replay.records > 2 * entries.size() + 1000) {
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

  if (replica_config) {
    KvReplica replica(io, **log, *committer, std::move(entries), std::move(replay.markers),
                      *replica_options);
    replica.Start(*std::move(replica_config));
    http::Server server(io, WithIdentity(
                                *config,
                                [&](http::Request&& request, http::Responder respond) {
                                  if (request.path == "/health")
                                    return respond(http::Response::Text(200, "ok\n"));
                                  replica.Handle(std::move(request), std::move(respond));
                                },
                                [&replica] { return std::to_string(replica.epoch()); }));
    return ServeUntilSignal("kvd", *config, io, server);
  }

  // The records carry the instance's epoch (HAFAB_EPOCH, raised by each failover), never
  // below the log's: a primary stopped and resumed after the next one took the volume
  // appends at an older epoch, which the next replay sets aside (KvLog::Open).
  std::optional<uint64_t> epoch;
  if (!config->epoch.empty() &&
      config->epoch.find_first_not_of("0123456789") == std::string::npos &&
      config->epoch.size() < 19) {
    epoch = std::max<uint64_t>(std::stoull(config->epoch), (*log)->last().epoch);
  }
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
      committer->Append(
          key, std::move(request.body), epoch,
          [&entries, key, value = std::move(value), respond](Status written, KvPosition) mutable {
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
