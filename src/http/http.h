// A small HTTP/1.1 server and client on Boost.Asio (Beast inside the .cc files only, so
// that including this header stays cheap). Used by the controller API, the agent's
// heartbeats and probes, the gateway's route watch and /metrics, the CLI, and the
// example apps. Not for the gateway's data path.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "http/tls.h"

namespace hafab::http {

struct Request {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // as sent: path and query
  std::string path;                            // decoded path without the query
  std::map<std::string, std::string> query;    // decoded query parameters
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string peer;  // remote address, "127.0.0.1"

  // "" when absent.
  std::string Header(const std::string& lower_name) const;
  std::string Query(const std::string& name) const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers

  static Response Json(int status, std::string body);
  static Response Text(int status, std::string body);

  // Case-insensitive lookup in `headers` (a fetched response lists every header it
  // received there, names lower-cased, except content-type); "" when absent.
  std::string Header(const std::string& name) const;
};

// Sends the response for one request. Call it once; later calls, and calls after the
// connection closed or the server stopped, are no-ops. It may be kept for later
// (long-poll) and called from any thread (it dispatches to the server's io_context);
// it holds its connection, so the last copy is dropped on that io_context's thread and
// before the io_context is destroyed. A handler that throws gets a 500.
using Responder = std::function<void(Response)>;
using Handler = std::function<void(Request&& request, Responder respond)>;

// What the server does with a request once its header has arrived, before its body is read.
struct Admission {
  std::optional<Response> refuse;   // set: answer this without reading the body, then close
  uint64_t body_limit = 16u << 20;  // bytes; a longer body is answered 413 without reading it
};
// Decides on a request from its header alone (`head.body` is empty): authentication and the
// body size an endpoint takes, so that nobody without a credential makes the server read a
// body. Runs on the server's io_context.
using HeaderCheck = std::function<Admission(const Request& head)>;

// Bounds on what anonymous peers can hold. A listener keeps at most `max_connections` (and at
// most `max_per_peer` from one address); when one more arrives, the oldest connection that has
// not yet sent a complete request header is closed to make room (an idle flood evicts itself,
// while a peer that sends its request at once, like an agent's heartbeat, is served), and only
// when every connection is past its header is the new one refused. Accept errors such as
// EMFILE back off (10 ms doubling to 1 s) instead of spinning.
struct ServerLimits {
  size_t max_connections = 4096;
  size_t max_per_peer = 1024;
  Duration header_timeout = std::chrono::seconds(10);  // accept to a complete first header
  Duration body_timeout = std::chrono::seconds(30);    // header to a complete body
};

// Counters for an operator (logged by the server when it starts shedding).
struct ServerStats {
  size_t open = 0;       // connections now
  uint64_t evicted = 0;  // closed before their first request to make room
  uint64_t refused = 0;  // closed at accept (every connection was busy)
  uint64_t accept_errors = 0;
};

// Keep-alive HTTP/1.1 server. Runs on the given io_context; not thread-safe otherwise.
class Server {
 public:
  Server(boost::asio::io_context& io, Handler handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port (0 = a free port), starts accepting, returns the bound port.
  // Errors: Unavailable if the address is in use or cannot be bound (message names it).
  Result<uint16_t> Listen(const std::string& host, uint16_t port);
  // Stops accepting and closes every connection; pending responders become no-ops.
  // Idempotent; the destructor calls it.
  void Stop();
  // Graceful shutdown that hands clients over without failing a request (the drain
  // contract, examples/apps/README.md): stops accepting; every request already received is
  // answered; the next response on each open connection carries `Connection: close` and the
  // connection is closed after it. A keep-alive connection that sends no request within
  // `idle_close` of the drain is closed then (the usual race of closing an idle HTTP/1.1
  // connection, which clients retry, is kept to connections idle that long). `done` runs on
  // the io_context once no connection is left (at once if none). Stop() may still be called
  // to cut it short (then `done` does not run).
  void Drain(std::function<void()> done, Duration idle_close = std::chrono::seconds(1));
  // Closes a connection that has not sent a complete request within `timeout` of being
  // accepted or of its last response (default 120 s). Never limits how long a handler
  // takes to respond. Applies to reads started after the call.
  void SetIdleTimeout(Duration timeout);
  // Applies to connections accepted after the call.
  void SetLimits(const ServerLimits& limits);
  // From now on every accepted connection must complete a TLS handshake presenting a client
  // certificate signed by `files.ca` (http/tls.h); the server presents `files.cert`.
  // Errors: InvalidArgument naming the file that could not be loaded.
  Status UseTls(const TlsFiles& files);
  // Installs the check run on each request header (default: admit, 16 MiB bodies).
  void SetHeaderCheck(HeaderCheck check);
  ServerStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

struct Url {
  std::string host;
  uint16_t port = 80;        // 443 for https when not given
  std::string target = "/";  // path and query
  bool tls = false;          // https:// (the client's certificate: SetClientTls)
};
// Parses "http://host:port/path?q" or "https://...". InvalidArgument naming the URL otherwise.
Result<Url> ParseUrl(const std::string& url);
// "host:port", an IPv6 host in brackets ("[::1]:7070"): the Host header, and in messages.
std::string Authority(const Url& url);

// Decodes %XX escapes (and '+' as a space when `plus_is_space`, as in a query).
// Malformed escapes are kept as written.
std::string PercentDecode(std::string_view text, bool plus_is_space);
// Sets request.path and request.query from a request target "/a%20b?x=1&y" (decoded; a
// '#' fragment ignored; a repeated parameter keeps its last value), as the Server does.
void ParseTarget(std::string_view target, Request& request);
// Escapes every byte except unreserved ones (A-Z a-z 0-9 - . _ ~), for building URLs.
std::string PercentEncode(std::string_view text);

using Headers = std::vector<std::pair<std::string, std::string>>;

// Blocking request with a deadline, for the CLI, tests and tools. A connection not
// established within 250 ms is tried again from a fresh socket (the wait doubling up to 2 s):
// a server's full listen queue drops a SYN silently, and the kernel resends it only after 1 s.
// Errors: Unavailable (connect refused/reset, a failed TLS handshake; the message names
// host:port), DeadlineExceeded (no full response within `timeout`), InvalidArgument (an
// https:// URL in a process without SetClientTls). Any HTTP status is a Response.
Result<Response> Fetch(const std::string& method, const std::string& url,
                       const std::string& body = "", const Headers& headers = {},
                       Duration timeout = std::chrono::seconds(5));

// Asynchronous requests on an io_context, one connection per request.
// `done` runs on the io_context thread with the same errors as Fetch.
void AsyncFetch(boost::asio::io_context& io, const std::string& method, const std::string& url,
                std::string body, Headers headers, Duration timeout,
                std::function<void(Result<Response>)> done);

}  // namespace hafab::http
