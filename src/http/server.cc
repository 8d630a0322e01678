// http::Server on Boost.Beast: one Connection object per accepted socket, reading one
// request at a time and writing the handler's response whenever its Responder is called.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <list>
#include <optional>
#include <unordered_map>

#include "http/http.h"
#include "http/tls_context.h"

namespace hafab::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using internal::Stream;

constexpr uint64_t kRequestBodyLimit = 16u << 20;  // before the HeaderCheck; 413 beyond
constexpr uint32_t kRequestHeaderLimit = 64u << 10;
constexpr Duration kAcceptBackoffMin = std::chrono::milliseconds(10);
constexpr Duration kAcceptBackoffMax = std::chrono::seconds(1);
constexpr Duration kShedLogInterval = std::chrono::seconds(10);
constexpr int kAcceptBatch = 256;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

class Connection;

// The server's state, shared by the Server and its connections (which may outlive it
// until their pending operations complete).
struct ServerCore {
  ServerCore(asio::io_context& io, Handler handler) : io(io), handler(std::move(handler)) {}

  asio::io_context& io;
  Handler handler;
  HeaderCheck check;
  std::shared_ptr<asio::ssl::context> tls;  // set: every connection speaks TLS (UseTls)
  ServerLimits limits;
  ServerStats stats;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::unordered_map<tcp::acceptor*, Duration> accept_backoff;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;
  // Connections that have not sent a complete request header yet, oldest first.
  std::list<Connection*> fresh;
  std::unordered_map<std::string, size_t> per_peer;
  Duration idle_timeout = std::chrono::seconds(120);
  std::chrono::steady_clock::time_point last_shed_log;
  bool stopped = false;
  bool draining = false;
  // While draining: connections waiting for a request are closed at this time.
  std::chrono::steady_clock::time_point idle_close_at;
  std::function<void()> drained;

  void Accept(tcp::acceptor* acceptor, std::shared_ptr<ServerCore> self);
  void OnAccepted(tcp::socket socket, std::shared_ptr<ServerCore> self);
  // Closes the oldest fresh connection (from `peer` when not empty); false if there is none.
  bool EvictFresh(const std::string& peer);
  void Forget(Connection* connection);
  void MaybeDrained();
  void LogShedding();
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<ServerCore> server, Stream stream, std::string peer)
      : server_(std::move(server)),
        stream_(std::move(stream)),
        idle_timer_(stream_.get_executor()),
        peer_(std::move(peer)) {}

  const std::string& peer() const { return peer_; }
  // The connection's place in ServerCore::fresh while it has not sent a request header.
  std::optional<std::list<Connection*>::iterator> fresh;

  ~Connection() {
    // A handler that dropped its Responder unanswered lets the connection go.
    if (state_ != State::kClosed) server_->Forget(this);
  }

  void Start() {
    if (!stream_.tls()) return ReadHeader();
    // The handshake counts against the time the request header may take.
    StartReadDeadline(std::min(server_->limits.header_timeout, server_->idle_timeout));
    stream_.tls()->async_handshake(asio::ssl::stream_base::server, [self = shared_from_this()](
                                                                       error_code ec) {
      if (self->state_ == State::kClosed) return;
      if (ec) {
        // No certificate, one of another CA, a plain HTTP client: nothing is read.
        spdlog::info("http server: TLS handshake with {} failed: {}", self->peer_, ec.message());
        return self->Close();
      }
      self->ReadHeader();
    });
  }

  // True while a request has been handed to the handler and not yet fully answered.
  bool busy() const { return state_ != State::kReading; }

  // Draining: a connection waiting for its next request waits until idle_close_at at most.
  void ShortenIdle() {
    if (state_ != State::kReading) return;
    StartReadDeadline(UntilIdleClose(idle_timer_.expiry()));
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    idle_timer_.cancel();
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
    server_->Forget(this);
  }

 private:
  enum class State { kReading, kHandling, kWriting, kClosed };

  void ReadHeader() {
    state_ = State::kReading;
    parser_.emplace();
    parser_->body_limit(kRequestBodyLimit);
    parser_->header_limit(kRequestHeaderLimit);
    // The first request's header must come within the header timeout of the accept; a
    // kept-alive connection may wait the idle timeout for its next one. Neither limits the
    // handler's time to answer (a long-poll may take minutes).
    Duration timeout = fresh ? std::min(server_->limits.header_timeout, server_->idle_timeout)
                             : server_->idle_timeout;
    if (server_->draining) {
      timeout = UntilIdleClose(std::chrono::steady_clock::now() + timeout);
    }
    StartReadDeadline(timeout);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, size_t) { self->OnHeader(ec); });
  }

  // From now to `deadline` or the drain's idle_close_at, whichever is first.
  Duration UntilIdleClose(std::chrono::steady_clock::time_point deadline) const {
    return std::chrono::duration_cast<Duration>(std::min(deadline, server_->idle_close_at) -
                                                std::chrono::steady_clock::now());
  }

  // Closes the connection unless a complete request has been read within `timeout`.
  void StartReadDeadline(Duration timeout) {
    idle_timer_.expires_after(timeout);
    idle_timer_.async_wait([weak = weak_from_this()](error_code ec) {
      auto self = weak.lock();
      if (!ec && self && self->state_ == State::kReading) self->Close();
    });
  }

  // The request as far as its header: what the HeaderCheck and the handler see.
  Request Head() const {
    const auto& message = parser_->get();
    Request request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    ParseTarget(request.target, request);
    for (const auto& field : message) {
      std::string name = Lower(std::string(field.name_string()));
      auto [it, inserted] = request.headers.emplace(name, std::string(field.value()));
      if (!inserted) it->second += ", " + std::string(field.value());
    }
    request.peer = peer_;
    return request;
  }

  void OnHeader(error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec) return OnReadError(ec);
    if (fresh) {
      server_->fresh.erase(*fresh);
      fresh.reset();
    }
    head_ = Head();
    if (server_->check) {
      Admission admission = server_->check(head_);
      if (admission.refuse) return SendFinal(std::move(*admission.refuse));
      auto length = parser_->content_length();
      if (length && *length > admission.body_limit) return SendBodyTooLarge(admission.body_limit);
      parser_->body_limit(admission.body_limit);
      body_limit_ = admission.body_limit;
    }
    StartReadDeadline(server_->limits.body_timeout);
    auto& message = parser_->get();
    if (bhttp::token_list(message[bhttp::field::expect]).exists("100-continue") &&
        !parser_->is_done()) {
      // curl waits for this before sending a body over 1 KiB.
      auto interim = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_,
                                                                          message.version());
      bhttp::async_write(stream_, *interim,
                         [self = shared_from_this(), interim](error_code ec, size_t) {
                           if (self->state_ == State::kClosed) return;
                           if (ec) return self->Close();
                           self->ReadBody();
                         });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnReadError(error_code ec) {
    if (ec == bhttp::error::body_limit) return SendBodyTooLarge(body_limit_);
    if (ec == bhttp::error::header_limit) {
      return SendFinal(Response::Text(431, "request header too large\n"));
    }
    static const auto& kParseErrors = make_error_code(bhttp::error::end_of_stream).category();
    if (&ec.category() == &kParseErrors && ec != bhttp::error::end_of_stream &&
        ec != bhttp::error::partial_message) {
      return SendFinal(Response::Text(400, "bad request: " + ec.message() + "\n"));
    }
    Close();  // peer closed, reset, or we are stopping
  }

  void SendBodyTooLarge(uint64_t limit) {
    SendFinal(Response::Text(413, "request body larger than " + std::to_string(limit) +
                                      " bytes, the most this endpoint takes\n"));
  }

  // Answers a request we could not parse or refused, then closes.
  void SendFinal(Response response) {
    idle_timer_.cancel();
    keep_alive_ = false;
    version_ = 11;
    state_ = State::kHandling;
    Write(std::move(response));
  }

  void OnBody(error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec) return OnReadError(ec);
    idle_timer_.cancel();
    auto message = parser_->release();
    parser_.reset();
    keep_alive_ = message.keep_alive();
    version_ = message.version();
    Request request = std::move(head_);
    request.body = std::move(message.body());
    state_ = State::kHandling;
    uint64_t sequence = ++sequence_;
    Responder respond = [self = shared_from_this(), sequence](Response response) {
      asio::dispatch(self->stream_.get_executor(),
                     [self, sequence, response = std::move(response)]() mutable {
                       if (self->state_ != State::kHandling || self->sequence_ != sequence) {
                         return;  // closed, stopped, or already answered
                       }
                       self->Write(std::move(response));
                     });
    };
    if (server_->stopped) return Close();
    try {
      server_->handler(std::move(request), respond);
    } catch (const std::exception& e) {
      respond(Response::Text(500, std::string("internal error: ") + e.what() + "\n"));
    }
  }

  void Write(Response response) {
    state_ = State::kWriting;
    if (server_->draining) keep_alive_ = false;
    auto message = std::make_shared<bhttp::response<bhttp::string_body>>();
    message->version(version_);
    message->result(static_cast<unsigned>(response.status));
    if (!response.content_type.empty()) {
      message->set(bhttp::field::content_type, response.content_type);
    }
    for (auto& [name, value] : response.headers) message->set(name, value);
    message->body() = std::move(response.body);
    message->keep_alive(keep_alive_);
    message->prepare_payload();
    bhttp::async_write(stream_, *message,
                       [self = shared_from_this(), message](error_code ec, size_t) {
                         if (self->state_ == State::kClosed) return;
                         // A keep-alive answer written when a drain began: the client
                         // may send again; that request is answered with Connection: close.
                         if (ec || !self->keep_alive_) return self->Close();
                         self->ReadHeader();
                       });
  }

  std::shared_ptr<ServerCore> server_;
  Stream stream_;
  asio::steady_timer idle_timer_;
  std::string peer_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  Request head_;  // the request being read, from its header on
  uint64_t body_limit_ = kRequestBodyLimit;
  State state_ = State::kReading;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  uint64_t sequence_ = 0;
};

struct Server::Impl : ServerCore {
  using ServerCore::ServerCore;
};

void ServerCore::Accept(tcp::acceptor* acceptor, std::shared_ptr<ServerCore> self) {
  acceptor->async_accept([this, acceptor, self](error_code ec, tcp::socket socket) {
    if (stopped || draining || !acceptor->is_open()) return;
    if (!ec) {
      accept_backoff.erase(acceptor);
      OnAccepted(std::move(socket), self);
      // Drain what else the kernel has queued now, without a trip through the reactor per
      // connection: under a flood the listen queue must not stay full, or a peer's new
      // connection (an agent's heartbeat) waits for its SYN to be retransmitted (1 s).
      for (int i = 0; i < kAcceptBatch; ++i) {
        tcp::socket next(io);
        error_code again;
        acceptor->accept(next, again);
        if (again) break;  // would_block, or an error the next async_accept reports
        OnAccepted(std::move(next), self);
      }
      return Accept(acceptor, self);
    }
    ++stats.accept_errors;
    if (ec != asio::error::no_descriptors && ec != asio::error::no_buffer_space &&
        ec != asio::error::no_memory) {
      return Accept(acceptor, self);  // the peer went away (ECONNABORTED): nothing to wait for
    }
    // Out of descriptors or memory: free one if an idle connection holds it, and wait before
    // trying again instead of spinning on the error.
    EvictFresh("");
    Duration& backoff = accept_backoff[acceptor];
    backoff = std::clamp(backoff * 2, kAcceptBackoffMin, kAcceptBackoffMax);
    LogShedding();
    auto timer = std::make_shared<asio::steady_timer>(io, backoff);
    timer->async_wait([this, acceptor, self, timer](error_code) {
      if (stopped || draining || !acceptor->is_open()) return;
      Accept(acceptor, self);
    });
  });
}

void ServerCore::OnAccepted(tcp::socket socket, std::shared_ptr<ServerCore> self) {
  error_code ec;
  auto endpoint = socket.remote_endpoint(ec);
  if (ec) return;  // already gone
  std::string peer = endpoint.address().to_string();
  bool room = (connections.size() < limits.max_connections || EvictFresh("")) &&
              (per_peer[peer] < limits.max_per_peer || EvictFresh(peer));
  if (!room) {
    ++stats.refused;
    LogShedding();
    socket.close(ec);
    if (per_peer[peer] == 0) per_peer.erase(peer);
    return;
  }
  auto connection = std::make_shared<Connection>(
      self, tls ? Stream(std::move(socket), *tls) : Stream(std::move(socket)), peer);
  connections.emplace(connection.get(), connection);
  ++per_peer[peer];
  connection->fresh = fresh.insert(fresh.end(), connection.get());
  connection->Start();
}

bool ServerCore::EvictFresh(const std::string& peer) {
  for (Connection* c : fresh) {
    if (!peer.empty() && c->peer() != peer) continue;
    auto it = connections.find(c);
    auto connection = it == connections.end() ? nullptr : it->second.lock();
    if (!connection) continue;
    ++stats.evicted;
    LogShedding();
    connection->Close();  // Forget() takes it out of `fresh`
    return true;
  }
  return false;
}

void ServerCore::LogShedding() {
  auto now = std::chrono::steady_clock::now();
  if (now - last_shed_log < kShedLogInterval) return;
  last_shed_log = now;
  spdlog::warn(
      "http server shedding connections: {} open (limit {}, {} per peer), {} evicted before "
      "their first request, {} refused, {} accept errors so far",
      connections.size(), limits.max_connections, limits.max_per_peer, stats.evicted, stats.refused,
      stats.accept_errors);
}

void ServerCore::Forget(Connection* connection) {
  connections.erase(connection);  // already gone when Stop() took them all
  if (connection->fresh) {
    fresh.erase(*connection->fresh);
    connection->fresh.reset();
  }
  auto it = per_peer.find(connection->peer());
  if (it != per_peer.end() && --it->second == 0) per_peer.erase(it);
  MaybeDrained();
}

void ServerCore::MaybeDrained() {
  if (!draining || stopped || !connections.empty() || !drained) return;
  auto done = std::move(drained);
  drained = nullptr;
  asio::post(io, std::move(done));
}

Server::Server(asio::io_context& io, Handler handler)
    : impl_(std::make_shared<Impl>(io, std::move(handler))) {}

Server::~Server() { Stop(); }

Result<uint16_t> Server::Listen(const std::string& host, uint16_t port) {
  std::string name = host + ":" + std::to_string(port);
  if (host.find(':') != std::string::npos) name = "[" + host + "]:" + std::to_string(port);
  error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) {
    tcp::resolver resolver(impl_->io);
    auto results = resolver.resolve(host, std::to_string(port), ec);
    if (ec || results.empty()) {
      return Status::Unavailable("cannot listen on " + name + ": cannot resolve " + host);
    }
    address = results.begin()->endpoint().address();
  }
  tcp::endpoint endpoint(address, port);
  auto acceptor = std::make_unique<tcp::acceptor>(impl_->io);
  if (acceptor->open(endpoint.protocol(), ec)) {
    return Status::Unavailable("cannot listen on " + name + ": " + ec.message());
  }
  acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (acceptor->bind(endpoint, ec)) {
    if (ec == asio::error::address_in_use) {
      return Status::Unavailable("address " + name + " already in use");
    }
    return Status::Unavailable("cannot bind " + name + ": " + ec.message());
  }
  if (acceptor->listen(asio::socket_base::max_listen_connections, ec)) {
    return Status::Unavailable("cannot listen on " + name + ": " + ec.message());
  }
  acceptor->non_blocking(true, ec);  // for the batch of accepts in ServerCore::Accept
  uint16_t bound = acceptor->local_endpoint(ec).port();
  impl_->stopped = false;
  impl_->Accept(acceptor.get(), impl_);
  impl_->acceptors.push_back(std::move(acceptor));
  return bound;
}

void Server::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->drained = nullptr;
  error_code ec;
  for (auto& acceptor : impl_->acceptors) acceptor->close(ec);
  auto connections = std::move(impl_->connections);
  impl_->connections.clear();
  for (auto& [raw, weak] : connections) {
    if (auto connection = weak.lock()) connection->Close();
  }
}

void Server::SetIdleTimeout(Duration timeout) { impl_->idle_timeout = timeout; }

void Server::SetLimits(const ServerLimits& limits) { impl_->limits = limits; }

Status Server::UseTls(const TlsFiles& files) {
  HAFAB_ASSIGN_OR_RETURN(impl_->tls, internal::MakeTlsContext(files, /*server=*/true));
  return Status::Ok();
}

void Server::SetHeaderCheck(HeaderCheck check) { impl_->check = std::move(check); }

ServerStats Server::stats() const {
  ServerStats out = impl_->stats;
  out.open = impl_->connections.size();
  return out;
}

void Server::Drain(std::function<void()> done, Duration idle_close) {
  if (impl_->stopped) return;
  impl_->draining = true;
  impl_->drained = std::move(done);
  error_code ec;
  for (auto& acceptor : impl_->acceptors) acceptor->close(ec);
  // Idle connections keep waiting for their next request (answered with Connection: close)
  // until idle_close; then the ones still idle are closed.
  impl_->idle_close_at = std::chrono::steady_clock::now() + idle_close;
  for (auto& [raw, weak] : impl_->connections) {
    if (auto connection = weak.lock()) connection->ShortenIdle();
  }
  impl_->MaybeDrained();
}

}  // namespace hafab::http
