// EtcdClient: the transport under EtcdStore — etcd's v3 JSON gateway (grpc-gateway) over
// HTTP/1.1 with Boost.Beast, to a list of endpoints, failing over between them.
//
// Why the JSON gateway and not gRPC: Debian 12 ships etcd 3.4's gateway on the client port
// of every member, so the store needs no protobuf/gRPC C++ toolchain (generated code, a
// second event loop, a large dependency) — only the Beast and nlohmann-json we already use.
// The price is base64 keys and values and int64s as JSON strings; the latency is a few
// tens of microseconds per call on loopback (bench/RESULTS.md).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "core/thread_annotations.h"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace hafab::store {

struct EtcdEndpoint {
  std::string host;  // a name, an IPv4 address, or an IPv6 address without brackets
  uint16_t port = 2379;
  // "h1:2379", "[::1]:2379".
  std::string Name() const;
  bool operator==(const EtcdEndpoint&) const = default;
};

// Parses "etcd://h1:2379,h2:2379,h3" (port 2379 when omitted; IPv6 as "[::1]:2379"; a
// trailing "/" is allowed). Errors: InvalidArgument naming the URL and the bad part.
Result<std::vector<EtcdEndpoint>> ParseEtcdUrl(std::string_view url);

struct EtcdClientOptions {
  // The whole budget of one call, over every endpoint and retry it takes.
  Duration request_timeout = std::chrono::seconds(5);
  // The longest one TCP connect may take before the next endpoint is tried.
  Duration dial_timeout = std::chrono::milliseconds(500);
  // Pause after a round in which every endpoint failed before trying them again (an
  // election takes a moment).
  Duration retry_backoff = std::chrono::milliseconds(50);
  // Set: every connection speaks TLS with this context (its client certificate, the CA of
  // etcd's), checking that the member's certificate names the endpoint's host.
  std::shared_ptr<boost::asio::ssl::context> tls;
};

// Counters for operators and tests; totals since the client was made.
struct EtcdClientStats {
  int64_t calls = 0;          // calls made (each may try several endpoints)
  int64_t failovers = 0;      // times a call moved on to another endpoint
  int64_t unavailable = 0;    // calls that ended Unavailable
  int64_t answers_lost = 0;   // calls whose request was sent but whose answer never came
  int64_t watch_resumes = 0;  // broken watch streams reopened (on another endpoint)
  std::string endpoint;       // the endpoint the last successful call used
};

namespace etcd_internal {
class Connection;
}  // namespace etcd_internal

// A long-lived streaming response (the watch): newline-delimited JSON messages.
// Not thread-safe, except Interrupt(), which may be called from any thread.
class EtcdStream {
 public:
  ~EtcdStream();
  // The next message, waiting until `deadline` (real time). Errors: DeadlineExceeded when
  // nothing complete arrived in time (the stream stays usable); Unavailable when the
  // stream broke or was interrupted (it stays broken).
  Result<nlohmann::json> Next(TimePoint deadline);
  // Makes a waiting (or the next) Next return Unavailable promptly.
  void Interrupt();
  const EtcdEndpoint& endpoint() const { return endpoint_; }

 private:
  friend class EtcdClient;
  EtcdStream(std::unique_ptr<etcd_internal::Connection> conn, EtcdEndpoint endpoint);
  std::unique_ptr<etcd_internal::Connection> conn_;
  EtcdEndpoint endpoint_;
  std::string pending_;  // bytes after the last complete line
  bool broken_ = false;
};

// Thread-safe. Keeps a pool of idle keep-alive connections per endpoint.
class EtcdClient {
 public:
  // Whether a call may be sent again to another endpoint after its request went out.
  enum class Retry {
    kIdempotent,     // reads, keep-alives: any failure moves on to the next endpoint
    kOnlyUnapplied,  // writes: only failures that prove nothing was applied (no connect,
                     // "etcdserver: no leader" from the member) move on; an answer lost
                     // after the request was sent ends the call with Unavailable
  };

  // REQUIRES: !endpoints.empty().
  EtcdClient(std::vector<EtcdEndpoint> endpoints, EtcdClientOptions options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // POSTs `body` to `path` ("/v3/kv/range") and returns the parsed JSON answer.
  // Errors: etcd's own errors by their gRPC code (NotFound, InvalidArgument, Conflict for
  // a compacted revision / failed precondition, Unavailable for timeouts and no leader);
  // Unavailable naming every endpoint tried when none answered within request_timeout;
  // Unavailable ("answer lost") for a write whose answer did not come back.
  Result<nlohmann::json> Call(const std::string& path, const nlohmann::json& body, Retry retry);

  // Opens a streaming POST (the watch) on the first endpoint that answers 200, starting
  // with the one after `avoid` (the endpoint of a stream that just broke; null = the
  // preferred one). Gives up at `deadline`, or after request_timeout, whichever is first.
  Result<std::unique_ptr<EtcdStream>> OpenStream(const std::string& path,
                                                 const nlohmann::json& body,
                                                 const EtcdEndpoint* avoid, TimePoint deadline);

  const std::vector<EtcdEndpoint>& endpoints() const { return endpoints_; }
  const EtcdClientOptions& options() const { return options_; }
  EtcdClientStats Stats() const;
  // Counts a watch stream reopened after it broke (EtcdStore's watchers call it).
  void NoteWatchResume();
  // "h1:2379,h2:2379".
  std::string EndpointList() const;

 private:
  Result<nlohmann::json> CallOnce(size_t index, const std::string& path, const std::string& body,
                                  TimePoint deadline, Retry retry, bool* may_retry);
  std::unique_ptr<etcd_internal::Connection> TakeConnection(size_t index, TimePoint deadline,
                                                            Status* error);
  void ReturnConnection(size_t index, std::unique_ptr<etcd_internal::Connection> conn);
  void NoteSuccess(size_t index);

  const std::vector<EtcdEndpoint> endpoints_;
  const EtcdClientOptions options_;
  mutable std::mutex mu_;
  size_t preferred_ GUARDED_BY(mu_) = 0;
  std::vector<std::vector<std::unique_ptr<etcd_internal::Connection>>> idle_ GUARDED_BY(mu_);
  EtcdClientStats stats_ GUARDED_BY(mu_);
};

// base64 (RFC 4648, with padding), as the gateway encodes bytes fields.
std::string Base64Encode(std::string_view bytes);
// InvalidArgument on a character outside the alphabet or a bad length.
Result<std::string> Base64Decode(std::string_view text);

// The end of the key range that holds exactly the keys starting with `prefix`: the prefix
// with its last byte below 0xff incremented and what follows dropped; "\0" (every key
// from the start) when there is no such byte, as etcd's clientv3.GetPrefixRangeEnd.
std::string PrefixRangeEnd(std::string_view prefix);

}  // namespace hafab::store
