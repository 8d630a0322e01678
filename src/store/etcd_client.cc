#include "store/etcd_client.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <optional>
#include <thread>
#include <utility>

#include "core/json.h"
#include "http/tls_context.h"

namespace hafab::store {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using nlohmann::json;

namespace {

constexpr uint64_t kResponseBodyLimit = 256u << 20;

// gRPC status codes, as the gateway reports them in {"code": N}.
constexpr int kGrpcInvalidArgument = 3;
constexpr int kGrpcDeadlineExceeded = 4;
constexpr int kGrpcNotFound = 5;
constexpr int kGrpcResourceExhausted = 8;
constexpr int kGrpcFailedPrecondition = 9;
constexpr int kGrpcOutOfRange = 11;
constexpr int kGrpcUnavailable = 14;

std::string Explain(const error_code& ec) {
  if (ec == bhttp::error::end_of_stream || ec == asio::error::eof) return "connection closed";
  if (ec == asio::error::operation_aborted) return "timed out";
  return ec.message();
}

long long Millis(Duration d) { return static_cast<long long>(ToMillis(d)); }

}  // namespace

namespace etcd_internal {

// One TCP connection with its own io_context, driven synchronously with deadlines by the
// thread that owns it. Interrupt() is the only method other threads may call.
class Connection {
 public:
  // `tls` null: plain TCP.
  explicit Connection(asio::ssl::context* tls)
      : stream_(tls ? http::internal::Stream(tcp::socket(io_), *tls)
                    : http::internal::Stream(tcp::socket(io_))) {}
  ~Connection() {
    error_code ignored;
    stream_.socket().close(ignored);
  }

  Status Connect(const EtcdEndpoint& ep, TimePoint deadline) {
    bool done = false;
    error_code result;
    tcp::resolver resolver(io_);
    tcp::resolver::results_type addresses;
    resolver.async_resolve(ep.host, std::to_string(ep.port),
                           [&](error_code ec, tcp::resolver::results_type r) {
                             result = ec;
                             addresses = std::move(r);
                             done = true;
                           });
    if (!RunUntil(done, deadline, [&] { resolver.cancel(); })) {
      return Status::Unavailable("cannot resolve " + ep.host + ": timed out");
    }
    if (result) return Status::Unavailable("cannot resolve " + ep.host + ": " + Explain(result));
    done = false;
    asio::async_connect(stream_.socket(), addresses, [&](error_code ec, const tcp::endpoint&) {
      result = ec;
      done = true;
    });
    if (!RunUntil(done, deadline, [&] { CloseSocket(); })) {
      return Status::Unavailable("connect timed out");
    }
    if (result) return Status::Unavailable(Explain(result));
    error_code ignored;
    stream_.socket().set_option(tcp::no_delay(true), ignored);
    if (auto* tls = stream_.tls()) {
      asio::ip::make_address(ep.host, ignored);
      if (ignored) SSL_set_tlsext_host_name(tls->native_handle(), ep.host.c_str());
      tls->set_verify_callback(asio::ssl::host_name_verification(ep.host));
      done = false;
      tls->async_handshake(asio::ssl::stream_base::client, [&](error_code ec) {
        result = ec;
        done = true;
      });
      if (!RunUntil(done, deadline, [&] { CloseSocket(); })) {
        return Status::Unavailable("TLS handshake timed out");
      }
      if (result) return Status::Unavailable("TLS handshake: " + Explain(result));
    }
    return Status::Ok();
  }

  // Whether an idle pooled connection is still open: the peer has not closed it and has
  // sent nothing unasked.
  bool LooksAlive() {
    char byte;
    ssize_t n = ::recv(stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  // Writes `request`. Errors: Unavailable (write failed or timed out).
  Status Write(bhttp::request<bhttp::string_body>& request, TimePoint deadline) {
    bool done = false;
    error_code result;
    bhttp::async_write(stream_, request, [&](error_code ec, size_t) {
      result = ec;
      done = true;
    });
    if (!RunUntil(done, deadline, [&] { CloseSocket(); })) {
      return Status::Unavailable("request not sent: timed out");
    }
    if (result) return Status::Unavailable("request not sent: " + Explain(result));
    return Status::Ok();
  }

  // Reads one whole response.
  Status Read(bhttp::response_parser<bhttp::string_body>& parser, TimePoint deadline) {
    bool done = false;
    error_code result;
    bhttp::async_read(stream_, buffer_, parser, [&](error_code ec, size_t) {
      result = ec;
      done = true;
    });
    if (!RunUntil(done, deadline, [&] { CloseSocket(); })) {
      return Status::DeadlineExceeded("no answer in time");
    }
    if (result) return Status::Unavailable(Explain(result));
    return Status::Ok();
  }

  // Starts a streaming response: reads its header into stream_parser_.
  Status ReadStreamHeader(TimePoint deadline) {
    stream_parser_.emplace();
    stream_parser_->body_limit(boost::none);
    bool done = false;
    error_code result;
    bhttp::async_read_header(stream_, buffer_, *stream_parser_, [&](error_code ec, size_t) {
      result = ec;
      done = true;
    });
    if (!RunUntil(done, deadline, [&] { CloseSocket(); })) {
      return Status::DeadlineExceeded("no answer in time");
    }
    if (result) return Status::Unavailable(Explain(result));
    return Status::Ok();
  }

  int StreamStatus() const { return static_cast<int>(stream_parser_->get().result_int()); }

  // Appends whatever body bytes of the streaming response arrive before `deadline` to
  // `out`. OK with nothing appended on timeout (the read stays pending for the next call).
  // Errors: Unavailable when the stream ended, broke, or was interrupted.
  Status ReadStream(std::string* out, TimePoint deadline) {
    if (stream_parser_->is_done()) return Status::Unavailable("ended by the server");
    if (!read_pending_) {
      read_pending_ = true;
      read_done_ = false;
      bhttp::async_read_some(stream_, buffer_, *stream_parser_, [this](error_code ec, size_t) {
        read_ec_ = ec;
        read_done_ = true;
      });
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (interrupted_) return Status::Unavailable("interrupted");
      io_.restart();
    }
    while (!read_done_) {
      if (io_.run_one_until(deadline) == 0) break;  // timed out, or stopped by Interrupt
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (interrupted_) return Status::Unavailable("interrupted");
    }
    if (!read_done_) return Status::Ok();
    read_pending_ = false;
    std::string& body = stream_parser_->get().body();
    out->append(body);
    body.clear();
    if (read_ec_) return Status::Unavailable(Explain(read_ec_));
    return Status::Ok();
  }

  void Interrupt() {
    std::lock_guard<std::mutex> lock(mu_);
    interrupted_ = true;
    io_.stop();
  }

  // Whether the read buffer holds bytes of a response nobody asked for (then the
  // connection must not be reused).
  bool HasLeftovers() const { return buffer_.size() > 0; }

 private:
  // Runs the io_context until `done` or `deadline`; at the deadline calls `abort` (which
  // must make the operation complete) and waits for the handler. Returns whether it
  // finished in time.
  template <typename Abort>
  bool RunUntil(bool& done, TimePoint deadline, Abort abort) {
    io_.restart();
    while (!done) {
      if (io_.run_one_until(deadline) == 0 && !done) {
        abort();
        io_.restart();
        while (!done && io_.run_one() > 0) {
        }
        return false;
      }
    }
    return true;
  }

  void CloseSocket() {
    error_code ignored;
    stream_.socket().close(ignored);
  }

  asio::io_context io_;
  http::internal::Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::response_parser<bhttp::string_body>> stream_parser_;
  bool read_pending_ = false;
  bool read_done_ = false;
  error_code read_ec_;
  std::mutex mu_;
  bool interrupted_ = false;  // guarded by mu_
};

}  // namespace etcd_internal

using etcd_internal::Connection;

namespace {

bhttp::request<bhttp::string_body> MakeRequest(const EtcdEndpoint& ep, const std::string& path,
                                               std::string body) {
  bhttp::request<bhttp::string_body> request;
  request.method(bhttp::verb::post);
  request.target(path);
  request.version(11);
  request.set(bhttp::field::host, ep.Name());
  request.set(bhttp::field::user_agent, "hafab");
  request.set(bhttp::field::content_type, "application/json");
  // Makes a member that has lost its leader refuse at once ("etcdserver: no leader") before
  // doing anything, so the call can safely move on to another member, and makes it cancel
  // watches it can no longer serve.
  request.set("Grpc-Metadata-hasleader", "true");
  request.keep_alive(true);
  request.body() = std::move(body);
  request.prepare_payload();
  return request;
}

// Maps a gateway error answer {"error": "...", "code": N} (or a non-JSON one) to a Status.
Status ErrorFromAnswer(int http_status, const std::string& body, bool* no_leader) {
  json parsed = json::parse(body, nullptr, false);
  std::string message;
  int code = -1;
  if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object()) {
    // A streaming endpoint's error: {"error": {"grpc_code": 14, "message": ...}}.
    json inner = parsed["error"];
    parsed = {{"message", inner.value("message", std::string())},
              {"code", inner.value("grpc_code", -1)}};
  }
  if (parsed.is_object()) {
    if (parsed.contains("message") && parsed["message"].is_string()) {
      message = parsed["message"].get<std::string>();
    } else if (parsed.contains("error") && parsed["error"].is_string()) {
      message = parsed["error"].get<std::string>();
    }
    if (parsed.contains("code") && parsed["code"].is_number_integer())
      code = parsed["code"].get<int>();
  }
  if (message.empty()) message = "HTTP " + std::to_string(http_status) + " " + body.substr(0, 200);
  *no_leader = message.find("no leader") != std::string::npos ||
               code == kGrpcResourceExhausted;  // "too many requests": refused, not applied
  switch (code) {
    case kGrpcInvalidArgument:
      return Status::InvalidArgument(message);
    case kGrpcNotFound:
      return Status::NotFound(message);
    case kGrpcOutOfRange:
    case kGrpcFailedPrecondition:
      return Status::Conflict(message);
    case kGrpcDeadlineExceeded:
    case kGrpcUnavailable:
    case kGrpcResourceExhausted:
      return Status::Unavailable(message);
    default:
      if (http_status >= 500 || code < 0) return Status::Unavailable(message);
      return Status::Internal(message);
  }
}

}  // namespace

std::string EtcdEndpoint::Name() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<std::vector<EtcdEndpoint>> ParseEtcdUrl(std::string_view url) {
  constexpr std::string_view kScheme = "etcd://";
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("store URL \"" + std::string(url) + "\": " + why +
                                   " (expected etcd://host[:port][,host[:port]...])");
  };
  if (url.substr(0, kScheme.size()) != kScheme) return bad("does not start with etcd://");
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty()) return bad("no endpoint");
  std::vector<EtcdEndpoint> endpoints;
  while (true) {
    size_t comma = rest.find(',');
    std::string_view part = rest.substr(0, comma);
    if (part.empty()) return bad("empty endpoint");
    EtcdEndpoint ep;
    std::string_view port_text;
    if (part.front() == '[') {
      size_t close = part.find(']');
      if (close == std::string_view::npos)
        return bad("unclosed '[' in \"" + std::string(part) + "\"");
      ep.host = std::string(part.substr(1, close - 1));
      std::string_view after = part.substr(close + 1);
      if (!after.empty()) {
        if (after.front() != ':') return bad("junk after ']' in \"" + std::string(part) + "\"");
        port_text = after.substr(1);
        if (port_text.empty()) return bad("empty port in \"" + std::string(part) + "\"");
      }
    } else {
      size_t colon = part.find(':');
      ep.host = std::string(part.substr(0, colon));
      if (colon != std::string_view::npos) {
        port_text = part.substr(colon + 1);
        if (port_text.empty()) return bad("empty port in \"" + std::string(part) + "\"");
      }
    }
    if (ep.host.empty()) return bad("empty host in \"" + std::string(part) + "\"");
    for (char c : ep.host) {
      if (c == '/' || c == '?' || c == '@' || c == '#' || c == ' ') {
        return bad("bad character '" + std::string(1, c) + "' in host \"" + ep.host + "\"");
      }
    }
    if (!port_text.empty()) {
      int port = 0;
      for (char c : port_text) {
        if (c < '0' || c > '9' || port > 65535) {
          return bad("port \"" + std::string(port_text) + "\" is not a number from 1 to 65535");
        }
        port = port * 10 + (c - '0');
      }
      if (port < 1 || port > 65535) {
        return bad("port \"" + std::string(port_text) + "\" is not a number from 1 to 65535");
      }
      ep.port = static_cast<uint16_t>(port);
    }
    for (const EtcdEndpoint& seen : endpoints) {
      if (seen == ep) return bad("endpoint " + ep.Name() + " listed twice");
    }
    endpoints.push_back(std::move(ep));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return endpoints;
}

// --- EtcdStream ----------------------------------------------------------------------------

EtcdStream::EtcdStream(std::unique_ptr<Connection> conn, EtcdEndpoint endpoint)
    : conn_(std::move(conn)), endpoint_(std::move(endpoint)) {}

EtcdStream::~EtcdStream() = default;

void EtcdStream::Interrupt() { conn_->Interrupt(); }

Result<json> EtcdStream::Next(TimePoint deadline) {
  while (true) {
    size_t newline;
    while ((newline = pending_.find('\n')) != std::string::npos) {
      std::string line = pending_.substr(0, newline);
      pending_.erase(0, newline + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      json message = json::parse(line, nullptr, false);
      if (message.is_discarded()) {
        broken_ = true;
        return Status::Unavailable("etcd " + endpoint_.Name() +
                                   ": unreadable stream message: " + line.substr(0, 200));
      }
      return message;
    }
    if (broken_) return Status::Unavailable("etcd " + endpoint_.Name() + ": stream broken");
    if (RealClock().Now() >= deadline) return Status::DeadlineExceeded("no message in time");
    size_t before = pending_.size();
    Status read = conn_->ReadStream(&pending_, deadline);
    if (!read.ok()) {
      broken_ = true;
      // Messages that arrived complete before the break are still delivered.
      if (pending_.find('\n') != std::string::npos) continue;
      return Status::Unavailable("etcd " + endpoint_.Name() + ": stream broke: " + read.message());
    }
    if (pending_.size() == before && RealClock().Now() >= deadline) {
      return Status::DeadlineExceeded("no message in time");
    }
  }
}

// --- EtcdClient ------------------------------------------------------------------------------

EtcdClient::EtcdClient(std::vector<EtcdEndpoint> endpoints, EtcdClientOptions options)
    : endpoints_(std::move(endpoints)), options_(options) {
  HAFAB_CHECK(!endpoints_.empty(), "EtcdClient needs at least one endpoint");
  idle_.resize(endpoints_.size());
}

EtcdClient::~EtcdClient() = default;

EtcdClientStats EtcdClient::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void EtcdClient::NoteWatchResume() {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.watch_resumes;
}

std::string EtcdClient::EndpointList() const {
  std::string out;
  for (const EtcdEndpoint& ep : endpoints_) {
    if (!out.empty()) out += ",";
    out += ep.Name();
  }
  return out;
}

std::unique_ptr<Connection> EtcdClient::TakeConnection(size_t index, TimePoint deadline,
                                                       Status* error) {
  while (true) {
    std::unique_ptr<Connection> conn;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& idle = idle_[index];
      if (idle.empty()) break;
      conn = std::move(idle.back());
      idle.pop_back();
    }
    if (conn->LooksAlive()) return conn;
  }
  auto conn = std::make_unique<Connection>(options_.tls.get());
  TimePoint connect_deadline = std::min(deadline, RealClock().Now() + options_.dial_timeout);
  Status connected = conn->Connect(endpoints_[index], connect_deadline);
  if (!connected.ok()) {
    *error = connected;
    return nullptr;
  }
  return conn;
}

void EtcdClient::ReturnConnection(size_t index, std::unique_ptr<Connection> conn) {
  constexpr size_t kMaxIdlePerEndpoint = 16;
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_[index].size() < kMaxIdlePerEndpoint) idle_[index].push_back(std::move(conn));
}

void EtcdClient::NoteSuccess(size_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  if (preferred_ != index) {
    spdlog::warn("etcd: now using {} (was {})", endpoints_[index].Name(),
                 endpoints_[preferred_].Name());
    preferred_ = index;
  }
  stats_.endpoint = endpoints_[index].Name();
}

Result<json> EtcdClient::CallOnce(size_t index, const std::string& path, const std::string& body,
                                  TimePoint deadline, Retry retry, bool* may_retry) {
  const EtcdEndpoint& ep = endpoints_[index];
  Status error;
  std::unique_ptr<Connection> conn = TakeConnection(index, deadline, &error);
  if (conn == nullptr) {
    *may_retry = true;  // nothing was sent
    return error;
  }
  auto request = MakeRequest(ep, path, body);
  Status written = conn->Write(request, deadline);
  if (!written.ok()) {
    *may_retry = true;  // an incomplete request is never applied
    return written;
  }
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(kResponseBodyLimit);
  Status read = conn->Read(parser, deadline);
  if (!read.ok()) {
    *may_retry = retry == Retry::kIdempotent;
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.answers_lost;
    std::string why = read.code() == StatusCode::kDeadlineExceeded
                          ? "no answer within the " +
                                std::to_string(Millis(options_.request_timeout)) + "ms budget"
                          : read.message();
    return Status::Unavailable(
        "answer lost (" + why + ")" +
        (retry == Retry::kOnlyUnapplied ? "; the request may or may not have been applied" : ""));
  }
  auto& response = parser.get();
  if (response.keep_alive() && !conn->HasLeftovers()) ReturnConnection(index, std::move(conn));
  int status = static_cast<int>(response.result_int());
  if (status != 200) {
    bool no_leader = false;
    Status failed = ErrorFromAnswer(status, response.body(), &no_leader);
    *may_retry =
        no_leader || (retry == Retry::kIdempotent && failed.code() == StatusCode::kUnavailable);
    return failed;
  }
  json parsed = json::parse(response.body(), nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    *may_retry = false;
    return Status::Internal("unreadable answer: " + response.body().substr(0, 200));
  }
  // Streaming endpoints (lease keep-alive) wrap their one answer as {"result": ...} or
  // report {"error": {...}}.
  if (parsed.contains("error") && parsed["error"].is_object()) {
    bool no_leader = false;
    Status failed =
        ErrorFromAnswer(parsed["error"].value("http_code", 500), response.body(), &no_leader);
    *may_retry = no_leader;
    return failed;
  }
  return parsed;
}

Result<json> EtcdClient::Call(const std::string& path, const json& body, Retry retry) {
  Clock& clock = RealClock();
  const TimePoint deadline = clock.Now() + options_.request_timeout;
  const std::string payload = Dump(body);
  size_t start;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.calls;
    start = preferred_;
  }
  const size_t n = endpoints_.size();
  std::vector<std::string> last_error(n);
  while (true) {
    for (size_t k = 0; k < n; ++k) {
      size_t index = (start + k) % n;
      bool may_retry = false;
      auto result = CallOnce(index, path, payload, deadline, retry, &may_retry);
      if (result.ok()) {
        NoteSuccess(index);
        return result;
      }
      const Status& failed = result.status();
      if (!may_retry) {
        std::string message =
            "etcd " + endpoints_[index].Name() + " " + path + ": " + failed.message();
        if (failed.code() == StatusCode::kUnavailable) {
          message += " [etcd endpoints: " + EndpointList() + "]";
          std::lock_guard<std::mutex> lock(mu_);
          ++stats_.unavailable;
        }
        return Status(failed.code(), message);
      }
      spdlog::debug("etcd {} {}: {}; trying the next endpoint", endpoints_[index].Name(), path,
                    failed.message());
      last_error[index] = failed.message();
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.failovers;
      }
      if (clock.Now() >= deadline) break;
    }
    if (clock.Now() >= deadline) break;
    std::this_thread::sleep_for(std::min<Duration>(options_.retry_backoff, deadline - clock.Now()));
    if (clock.Now() >= deadline) break;
  }
  std::string tried;
  for (size_t i = 0; i < n; ++i) {
    if (!tried.empty()) tried += "; ";
    tried +=
        endpoints_[i].Name() + " (" + (last_error[i].empty() ? "not tried" : last_error[i]) + ")";
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.unavailable;
  }
  return Status::Unavailable("etcd: no endpoint answered " + path + " within " +
                             std::to_string(Millis(options_.request_timeout)) + "ms: " + tried);
}

Result<std::unique_ptr<EtcdStream>> EtcdClient::OpenStream(const std::string& path,
                                                           const json& body,
                                                           const EtcdEndpoint* avoid,
                                                           TimePoint deadline) {
  Clock& clock = RealClock();
  deadline = std::min(deadline, clock.Now() + options_.request_timeout);
  const std::string payload = Dump(body);
  const size_t n = endpoints_.size();
  size_t start;
  {
    std::lock_guard<std::mutex> lock(mu_);
    start = preferred_;
  }
  if (avoid != nullptr) {
    for (size_t i = 0; i < n; ++i) {
      if (endpoints_[i] == *avoid) start = (i + 1) % n;
    }
  }
  std::vector<std::string> last_error(n);
  while (true) {
    for (size_t k = 0; k < n; ++k) {
      size_t index = (start + k) % n;
      const EtcdEndpoint& ep = endpoints_[index];
      auto conn = std::make_unique<Connection>(options_.tls.get());
      Status st = conn->Connect(ep, std::min(deadline, clock.Now() + options_.dial_timeout));
      if (st.ok()) {
        auto request = MakeRequest(ep, path, payload);
        st = conn->Write(request, deadline);
      }
      if (st.ok()) st = conn->ReadStreamHeader(deadline);
      if (st.ok() && conn->StreamStatus() != 200) {
        // An error answer: read it through for its message.
        std::string text;
        TimePoint until = std::min(deadline, clock.Now() + std::chrono::milliseconds(200));
        while (conn->ReadStream(&text, until).ok() && clock.Now() < until &&
               text.find('}') == std::string::npos) {
        }
        bool no_leader = false;
        st = ErrorFromAnswer(conn->StreamStatus(), text, &no_leader);
        if (!no_leader && st.code() != StatusCode::kUnavailable) {
          return Status(st.code(), "etcd " + ep.Name() + " " + path + ": " + st.message());
        }
      }
      if (st.ok()) {
        NoteSuccess(index);
        return std::unique_ptr<EtcdStream>(new EtcdStream(std::move(conn), ep));
      }
      last_error[index] = st.message();
      if (clock.Now() >= deadline) break;
    }
    if (clock.Now() >= deadline) break;
    std::this_thread::sleep_for(std::min<Duration>(options_.retry_backoff, deadline - clock.Now()));
    if (clock.Now() >= deadline) break;
  }
  std::string tried;
  for (size_t i = 0; i < n; ++i) {
    if (!tried.empty()) tried += "; ";
    tried +=
        endpoints_[i].Name() + " (" + (last_error[i].empty() ? "not tried" : last_error[i]) + ")";
  }
  return Status::Unavailable("etcd: no endpoint opened " + path + " in time: " + tried);
}

// --- base64, prefixes --------------------------------------------------------------------------

namespace {
constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}
}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += kBase64Alphabet[v >> 18 & 63];
    out += kBase64Alphabet[v >> 12 & 63];
    out += kBase64Alphabet[v >> 6 & 63];
    out += kBase64Alphabet[v & 63];
  }
  size_t left = bytes.size() - i;
  if (left == 1) {
    uint32_t v = byte(i) << 16;
    out += kBase64Alphabet[v >> 18 & 63];
    out += kBase64Alphabet[v >> 12 & 63];
    out += "==";
  } else if (left == 2) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8;
    out += kBase64Alphabet[v >> 18 & 63];
    out += kBase64Alphabet[v >> 12 & 63];
    out += kBase64Alphabet[v >> 6 & 63];
    out += '=';
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) {
    return Status::InvalidArgument("base64 text of " + std::to_string(text.size()) +
                                   " characters is truncated");
  }
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = Base64Value(c);
    if (v < 0) return Status::InvalidArgument(std::string("bad base64 character '") + c + "'");
    acc = acc << 6 | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>(acc >> bits & 0xff);
    }
  }
  return out;
}

std::string PrefixRangeEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

}  // namespace hafab::store
