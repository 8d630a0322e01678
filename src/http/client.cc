// http::Fetch and http::AsyncFetch on Boost.Beast: one connection per request, one
// steady_timer as the deadline over resolve + connect + write + read.
#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <optional>

#include "http/beast_message.h"
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

// A connection attempt not established within this is started again from a fresh socket,
// the wait doubling up to kMaxConnectWait: a server's full listen queue drops a SYN without a
// word, and the kernel would send it again only after 1 s (then 3 s, 7 s).
constexpr Duration kFirstConnectWait = std::chrono::milliseconds(250);
constexpr Duration kMaxConnectWait = std::chrono::seconds(2);

// "Connection refused" -> "connection refused", to read well after a colon.
std::string Explain(const error_code& ec) {
  std::string message = ec.message();
  if (!message.empty() && message[0] >= 'A' && message[0] <= 'Z' &&
      (message.size() < 2 || !(message[1] >= 'A' && message[1] <= 'Z'))) {
    message[0] = static_cast<char>(message[0] - 'A' + 'a');
  }
  return message;
}

class FetchOperation : public std::enable_shared_from_this<FetchOperation> {
 public:
  FetchOperation(asio::io_context& io, Url url, std::function<void(Result<Response>)> done)
      : url_(std::move(url)),
        name_(Authority(url_)),
        resolver_(io),
        tls_(url_.tls ? internal::ClientTlsContext() : nullptr),
        stream_(tls_ ? Stream(tcp::socket(io), *tls_) : Stream(tcp::socket(io))),
        timer_(io),
        connect_timer_(io),
        done_(std::move(done)) {}

  void Start(const std::string& method, std::string body, const Headers& headers,
             Duration timeout) {
    request_ = internal::MakeRequest(method, url_.target, name_, std::move(body), headers,
                                     /*keep_alive=*/false);
    head_ = method == "HEAD";

    if (url_.tls && !tls_) {
      // Posted: `done` never runs inside the call.
      asio::post(stream_.get_executor(), [self = shared_from_this()] {
        self->Finish(
            internal::NoClientTls(self->method() + " https://" + self->name_ + self->url_.target));
      });
      return;
    }
    timer_.expires_after(timeout);
    timer_.async_wait([self = shared_from_this(), timeout](error_code ec) {
      if (ec) return;  // cancelled: the request finished first
      self->Finish(Status::DeadlineExceeded(
          self->method() + " " + self->name_ + self->url_.target + ": no response within " +
          std::to_string(static_cast<long long>(ToMillis(timeout))) + "ms"));
    });
    resolver_.async_resolve(
        url_.host, std::to_string(url_.port),
        [self = shared_from_this()](error_code ec, tcp::resolver::results_type results) {
          self->OnResolve(ec, std::move(results));
        });
  }

 private:
  std::string method() const { return std::string(request_.method_string()); }

  void OnResolve(error_code ec, tcp::resolver::results_type results) {
    if (finished_) return;
    if (ec) return Finish(Status::Unavailable("cannot resolve " + url_.host + ": " + Explain(ec)));
    endpoints_ = std::move(results);
    Connect();
  }

  void Connect() {
    const uint64_t attempt = ++connect_attempt_;
    connect_timer_.expires_after(connect_wait_);
    connect_timer_.async_wait([self = shared_from_this(), attempt](error_code ec) {
      if (ec || self->finished_ || attempt != self->connect_attempt_) return;
      self->connect_wait_ = std::min(self->connect_wait_ * 2, kMaxConnectWait);
      error_code ignored;
      self->stream_.socket().close(ignored);  // the abandoned attempt's handler is ignored
      self->Connect();
    });
    asio::async_connect(stream_.socket(), endpoints_,
                        [self = shared_from_this(), attempt](error_code ec, const tcp::endpoint&) {
                          if (attempt != self->connect_attempt_) return;
                          self->connect_timer_.cancel();
                          self->OnConnect(ec);
                        });
  }

  void OnConnect(error_code ec) {
    if (finished_) return;
    if (ec) return Finish(Status::Unavailable("cannot connect to " + name_ + ": " + Explain(ec)));
    internal::AsyncClientHandshake(
        stream_, url_.host, [self = shared_from_this()](error_code ec) { self->OnHandshake(ec); });
  }

  void OnHandshake(error_code ec) {
    if (finished_) return;
    if (ec) {
      return Finish(Status::Unavailable("TLS handshake with " + name_ + ": " + Explain(ec)));
    }
    Send();
  }

  void Send() {
    bhttp::async_write(stream_, request_,
                       [self = shared_from_this()](error_code ec, size_t) { self->OnWrite(ec); });
  }

  void OnWrite(error_code ec) {
    if (finished_) return;
    // A server that answers early (413) and closes may make the write fail; still read.
    parser_.emplace();
    parser_->body_limit(internal::kResponseBodyLimit);
    if (head_) parser_->skip(true);
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this(), write_ec = ec](error_code ec, size_t) {
                        self->OnRead(ec, write_ec);
                      });
  }

  void OnRead(error_code ec, error_code write_ec) {
    if (finished_) return;
    if (ec) {
      error_code cause = write_ec ? write_ec : ec;
      return Finish(Status::Unavailable(method() + " " + name_ + url_.target + ": " +
                                        (cause == bhttp::error::end_of_stream
                                             ? std::string("connection closed before a response")
                                             : Explain(cause))));
    }
    auto& message = parser_->get();
    if (message.result_int() >= 100 && message.result_int() < 200) {
      return OnWrite(write_ec);  // interim (100 Continue): the final response follows
    }
    Finish(internal::FromBeast(std::move(message)));
  }

  void Finish(Result<Response> result) {
    if (finished_) return;
    finished_ = true;
    error_code ignored;
    timer_.cancel();
    connect_timer_.cancel();
    resolver_.cancel();
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    auto done = std::move(done_);
    done(std::move(result));
  }

  Url url_;
  std::string name_;
  tcp::resolver resolver_;
  std::shared_ptr<asio::ssl::context> tls_;  // https: the process's (SetClientTls)
  Stream stream_;
  asio::steady_timer timer_;
  tcp::resolver::results_type endpoints_;
  asio::steady_timer connect_timer_;  // the current connection attempt's
  Duration connect_wait_ = kFirstConnectWait;
  uint64_t connect_attempt_ = 0;
  std::function<void(Result<Response>)> done_;
  bhttp::request<bhttp::string_body> request_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
  beast::flat_buffer buffer_;
  bool head_ = false;
  bool finished_ = false;
};

}  // namespace

void AsyncFetch(asio::io_context& io, const std::string& method, const std::string& url,
                std::string body, Headers headers, Duration timeout,
                std::function<void(Result<Response>)> done) {
  auto parsed = ParseUrl(url);
  if (!parsed.ok()) {
    asio::post(io, [done = std::move(done), status = parsed.status()] { done(status); });
    return;
  }
  auto operation = std::make_shared<FetchOperation>(io, std::move(parsed).value(), std::move(done));
  operation->Start(method, std::move(body), headers, timeout);
}

Result<Response> Fetch(const std::string& method, const std::string& url, const std::string& body,
                       const Headers& headers, Duration timeout) {
  asio::io_context io;
  std::optional<Result<Response>> result;
  AsyncFetch(io, method, url, body, headers, timeout,
             [&result](Result<Response> r) { result.emplace(std::move(r)); });
  io.run();
  if (!result) return Status::Internal("fetch " + url + " ended without a result");
  return std::move(*result);
}

}  // namespace hafab::http
