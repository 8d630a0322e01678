// The OpenSSL contexts behind http/tls.h, and the stream the server and client read and write:
// a TCP socket, or a TLS stream over one. Private to the http library (and its tests).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/system/error_code.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "core/result.h"
#include "http/tls.h"

namespace hafab::http::internal {

// A server's context requires and verifies a client certificate; a client's verifies the
// server's (host checked per connection). Errors: InvalidArgument naming the unloadable file.
Result<std::shared_ptr<boost::asio::ssl::context>> MakeTlsContext(const TlsFiles& files,
                                                                  bool server);
// SetClientTls's context; null when none was set.
std::shared_ptr<boost::asio::ssl::context> ClientTlsContext();

// An https:// request in a process without SetClientTls: InvalidArgument naming the request
// (`what`: "GET https://host:port/path") and the flags that give a certificate.
Status NoClientTls(const std::string& what);

// Either a plain socket or TLS over one, with the AsyncReadStream/AsyncWriteStream members
// Beast needs, so one Connection, FetchOperation or pooled connection serves both.
class Stream {
 public:
  using tcp = boost::asio::ip::tcp;
  using executor_type = tcp::socket::executor_type;
  using Tls = boost::asio::ssl::stream<tcp::socket>;

  explicit Stream(tcp::socket socket) : plain_(std::move(socket)) {}
  Stream(tcp::socket socket, boost::asio::ssl::context& context)
      : tls_(std::in_place, std::move(socket), context) {}

  executor_type get_executor() { return socket().get_executor(); }
  tcp::socket& socket() { return tls_ ? tls_->next_layer() : *plain_; }
  Tls* tls() { return tls_ ? &*tls_ : nullptr; }

  template <typename Buffers, typename Handler>
  void async_read_some(const Buffers& buffers, Handler&& handler) {
    if (tls_) {
      tls_->async_read_some(buffers, std::forward<Handler>(handler));
    } else {
      plain_->async_read_some(buffers, std::forward<Handler>(handler));
    }
  }
  template <typename Buffers, typename Handler>
  void async_write_some(const Buffers& buffers, Handler&& handler) {
    if (tls_) {
      tls_->async_write_some(buffers, std::forward<Handler>(handler));
    } else {
      plain_->async_write_some(buffers, std::forward<Handler>(handler));
    }
  }

 private:
  std::optional<tcp::socket> plain_;
  std::optional<Tls> tls_;
};

// The client's TLS handshake on `stream`, connected to `host` (plain: `done` at once, posted):
// the server's certificate must be of the CA and name `host` (a DNS name, also sent as SNI, or
// an IP address). Fetch's one-shot connections and ConnectionPool's kept-alive ones use it.
void AsyncClientHandshake(Stream& stream, const std::string& host,
                          std::function<void(boost::system::error_code)> done);

}  // namespace hafab::http::internal
