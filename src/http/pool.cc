#include "http/pool.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <optional>

#include "http/beast_message.h"
#include "http/tls_context.h"

namespace hafab::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using internal::Stream;

// A connection, plain or TLS (an https:// URL: the process's SetClientTls certificate, past
// its handshake once it is idle).
struct ConnectionPool::Idle {
  Idle(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls)
      : context(std::move(tls)),
        stream(context ? Stream(tcp::socket(io), *context) : Stream(tcp::socket(io))) {}
  std::shared_ptr<asio::ssl::context> context;  // outlives the stream (SetClientTls may replace it)
  Stream stream;
  beast::flat_buffer buffer;
};

namespace {

using IdleMap = std::map<std::string, std::vector<std::shared_ptr<ConnectionPool::Idle>>>;

class PooledFetch : public std::enable_shared_from_this<PooledFetch> {
 public:
  PooledFetch(asio::io_context& io, Url url, std::weak_ptr<IdleMap> pool,
              std::function<void(Result<Response>)> done)
      : io_(io),
        url_(std::move(url)),
        name_(Authority(url_)),
        key_((url_.tls ? "https://" : "http://") + name_),
        pool_(std::move(pool)),
        tls_(url_.tls ? internal::ClientTlsContext() : nullptr),
        resolver_(io),
        timer_(io),
        done_(std::move(done)) {}

  void Start(const std::string& method, std::string body, const Headers& headers,
             Duration timeout) {
    request_ = internal::MakeRequest(method, url_.target, name_, std::move(body), headers,
                                     /*keep_alive=*/true);
    if (url_.tls && !tls_) {
      asio::post(
          io_, [self = shared_from_this()] { self->Finish(internal::NoClientTls(self->Where())); });
      return;
    }
    timer_.expires_after(timeout);
    timer_.async_wait([self = shared_from_this(), timeout](error_code ec) {
      if (ec) return;
      self->Finish(Status::DeadlineExceeded(
          std::string(self->request_.method_string()) + " " + self->name_ + self->url_.target +
          ": no response within " + std::to_string(static_cast<long long>(ToMillis(timeout))) +
          "ms"));
    });
    if (auto pool = pool_.lock()) {
      auto& idle = (*pool)[key_];
      if (!idle.empty()) {
        conn_ = std::move(idle.back());
        idle.pop_back();
        reused_ = true;
        return Write();
      }
    }
    Connect();
  }

 private:
  void Connect() {
    reused_ = false;
    conn_ = std::make_shared<ConnectionPool::Idle>(io_, tls_);
    resolver_.async_resolve(
        url_.host, std::to_string(url_.port),
        [self = shared_from_this()](error_code ec, tcp::resolver::results_type results) {
          if (self->finished_) return;
          if (ec) return self->Fail("cannot resolve " + self->url_.host, ec);
          asio::async_connect(self->conn_->stream.socket(), results,
                              [self](error_code ec, const tcp::endpoint&) {
                                if (self->finished_) return;
                                if (ec) return self->Fail("cannot connect to " + self->name_, ec);
                                self->Handshake();
                              });
        });
  }

  void Handshake() {
    internal::AsyncClientHandshake(conn_->stream, url_.host,
                                   [self = shared_from_this()](error_code ec) {
                                     if (self->finished_) return;
                                     if (ec)
                                       return self->Fail("TLS handshake with " + self->name_, ec);
                                     self->Write();
                                   });
  }

  void Write() {
    bhttp::async_write(conn_->stream, request_, [self = shared_from_this()](error_code ec, size_t) {
      if (self->finished_) return;
      if (ec) return self->Retry(ec);
      self->Read();
    });
  }

  void Read() {
    parser_.emplace();
    parser_->body_limit(internal::kResponseBodyLimit);
    bhttp::async_read(conn_->stream, conn_->buffer, *parser_,
                      [self = shared_from_this()](error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(error_code ec) {
    if (finished_) return;
    if (ec) return parser_->got_some() ? Fail(Where(), ec) : Retry(ec);
    auto& message = parser_->get();
    if (message.result_int() >= 100 && message.result_int() < 200) return Read();  // interim
    keep_ = message.keep_alive();
    Finish(internal::FromBeast(std::move(message)));
  }

  // A reused connection the server closed while it was idle: once more on a new one.
  void Retry(error_code ec) {
    if (!reused_) return Fail(Where(), ec);
    error_code ignored;
    conn_->stream.socket().close(ignored);
    Connect();
  }

  std::string Where() const {
    return std::string(request_.method_string()) + " " + name_ + url_.target;
  }

  void Fail(const std::string& what, error_code ec) {
    Finish(Status::Unavailable(what + ": " +
                               (ec == bhttp::error::end_of_stream
                                    ? std::string("connection closed before a response")
                                    : ec.message())));
  }

  void Finish(Result<Response> result) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    resolver_.cancel();
    auto pool = pool_.lock();
    if (result.ok() && keep_ && pool && conn_ && conn_->buffer.size() == 0) {
      (*pool)[key_].push_back(std::move(conn_));
    } else if (conn_) {
      error_code ignored;
      conn_->stream.socket().close(ignored);
    }
    auto done = std::move(done_);
    done(std::move(result));
  }

  asio::io_context& io_;
  Url url_;
  std::string name_;
  std::string key_;  // scheme and host:port: plain and TLS connections are not mixed
  std::weak_ptr<IdleMap> pool_;
  std::shared_ptr<asio::ssl::context> tls_;  // https: the process's (SetClientTls)
  tcp::resolver resolver_;
  asio::steady_timer timer_;
  std::function<void(Result<Response>)> done_;
  std::shared_ptr<ConnectionPool::Idle> conn_;
  bhttp::request<bhttp::string_body> request_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
  bool reused_ = false;
  bool keep_ = false;
  bool finished_ = false;
};

}  // namespace

ConnectionPool::ConnectionPool(asio::io_context& io)
    : io_(io), idle_(std::make_shared<IdleMap>()) {}

ConnectionPool::~ConnectionPool() {
  for (auto& [name, conns] : *idle_) {
    for (auto& c : conns) {
      error_code ignored;
      c->stream.socket().close(ignored);
    }
  }
}

size_t ConnectionPool::idle() const {
  size_t n = 0;
  for (const auto& [name, conns] : *idle_) n += conns.size();
  return n;
}

void ConnectionPool::Fetch(const std::string& method, const std::string& url, std::string body,
                           Headers headers, Duration timeout,
                           std::function<void(Result<Response>)> done) {
  auto parsed = ParseUrl(url);
  if (!parsed.ok()) {
    asio::post(io_, [done = std::move(done), status = parsed.status()] { done(status); });
    return;
  }
  auto op = std::make_shared<PooledFetch>(io_, std::move(parsed).value(), idle_, std::move(done));
  op->Start(method, std::move(body), headers, timeout);
}

}  // namespace hafab::http
