// http::Server on Boost.Beast: one Connection object per accepted socket, reading one
// request at a time and writing the handler's response whenever its Responder is called.
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <unordered_map>

#include "http/http.h"

namespace hafab::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr uint64_t kRequestBodyLimit = 16u << 20;  // 16 MiB; 413 beyond
constexpr uint32_t kRequestHeaderLimit = 64u << 10;

// Splits "/a%20b?x=1&y" into its decoded path and query parameters.
void ParseTarget(std::string_view target, Request& request) {
  size_t question = target.find('?');
  request.path = PercentDecode(target.substr(0, question), /*plus_is_space=*/false);
  if (question == std::string_view::npos) return;
  std::string_view query = target.substr(question + 1);
  size_t hash = query.find('#');
  if (hash != std::string_view::npos) query = query.substr(0, hash);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string key = PercentDecode(pair.substr(0, eq), true);
    std::string value =
        eq == std::string_view::npos ? std::string() : PercentDecode(pair.substr(eq + 1), true);
    request.query.insert_or_assign(std::move(key), std::move(value));
  }
}

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
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;
  Duration idle_timeout = std::chrono::seconds(120);
  bool stopped = false;
  bool draining = false;
  std::function<void()> drained;

  void Accept(tcp::acceptor* acceptor, std::shared_ptr<ServerCore> self);
  void Forget(Connection* connection);
  void MaybeDrained();
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<ServerCore> server, tcp::socket socket)
      : server_(std::move(server)),
        socket_(std::move(socket)),
        idle_timer_(socket_.get_executor()) {
    error_code ec;
    auto endpoint = socket_.remote_endpoint(ec);
    if (!ec) peer_ = endpoint.address().to_string();
  }

  ~Connection() {
    // A handler that dropped its Responder unanswered lets the connection go.
    if (state_ != State::kClosed) server_->Forget(this);
  }

  void Start() { ReadHeader(); }

  // True while a request has been handed to the handler and not yet fully answered.
  bool busy() const { return state_ != State::kReading; }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    idle_timer_.cancel();
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    server_->Forget(this);
  }

 private:
  enum class State { kReading, kHandling, kWriting, kClosed };

  void ReadHeader() {
    state_ = State::kReading;
    parser_.emplace();
    parser_->body_limit(kRequestBodyLimit);
    parser_->header_limit(kRequestHeaderLimit);
    // The idle limit covers waiting for a request and reading it, never the handler's
    // time to answer (a long-poll may take minutes).
    idle_timer_.expires_after(server_->idle_timeout);
    idle_timer_.async_wait([weak = weak_from_this()](error_code ec) {
      auto self = weak.lock();
      if (!ec && self && self->state_ == State::kReading) self->Close();
    });
    bhttp::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec) return OnReadError(ec);
    auto& message = parser_->get();
    if (bhttp::token_list(message[bhttp::field::expect]).exists("100-continue") &&
        !parser_->is_done()) {
      // curl waits for this before sending a body over 1 KiB.
      auto interim = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_,
                                                                          message.version());
      bhttp::async_write(socket_, *interim,
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
    bhttp::async_read(socket_, buffer_, *parser_,
                      [self = shared_from_this()](error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnReadError(error_code ec) {
    if (ec == bhttp::error::body_limit) {
      return SendFinal(Response::Text(413, "request body larger than 16 MiB\n"));
    }
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

  // Answers a request we could not parse, then closes.
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
    Request request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    ParseTarget(request.target, request);
    for (const auto& field : message) {
      std::string name = Lower(std::string(field.name_string()));
      auto [it, inserted] = request.headers.emplace(name, std::string(field.value()));
      if (!inserted) it->second += ", " + std::string(field.value());
    }
    request.body = std::move(message.body());
    request.peer = peer_;
    state_ = State::kHandling;
    uint64_t sequence = ++sequence_;
    Responder respond = [self = shared_from_this(), sequence](Response response) {
      asio::dispatch(self->socket_.get_executor(),
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
    bhttp::async_write(socket_, *message,
                       [self = shared_from_this(), message](error_code ec, size_t) {
                         if (self->state_ == State::kClosed) return;
                         if (ec || !self->keep_alive_ || self->server_->draining) {
                           return self->Close();
                         }
                         self->ReadHeader();
                       });
  }

  std::shared_ptr<ServerCore> server_;
  tcp::socket socket_;
  asio::steady_timer idle_timer_;
  std::string peer_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
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
      auto connection = std::make_shared<Connection>(self, std::move(socket));
      connections.emplace(connection.get(), connection);
      connection->Start();
    }
    // Errors such as EMFILE are transient for a listener: keep accepting.
    Accept(acceptor, self);
  });
}

void ServerCore::Forget(Connection* connection) {
  connections.erase(connection);
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

void Server::Drain(std::function<void()> done) {
  if (impl_->stopped) return;
  impl_->draining = true;
  impl_->drained = std::move(done);
  error_code ec;
  for (auto& acceptor : impl_->acceptors) acceptor->close(ec);
  std::vector<std::shared_ptr<Connection>> idle;
  for (auto& [raw, weak] : impl_->connections) {
    auto connection = weak.lock();
    if (connection && !connection->busy()) idle.push_back(connection);
  }
  for (auto& connection : idle) connection->Close();
  impl_->MaybeDrained();
}

}  // namespace hafab::http
