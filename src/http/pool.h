// ConnectionPool: asynchronous requests over kept-alive connections, for the daemons' calls
// to the controller (heartbeats, assignments, routes). A connection that has carried one
// request is past the server's admission (http::ServerLimits never evicts it), so requests
// on it are not delayed by a flood of new connections to the same listener — neither by
// eviction nor by the kernel dropping SYNs beyond its listen backlog (1 s retransmit).
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "http/http.h"

namespace hafab::http {

// Not thread-safe: the io_context thread only. Outlives no request: destroying it closes
// idle connections; requests in flight still complete.
class ConnectionPool {
 public:
  explicit ConnectionPool(boost::asio::io_context& io);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // As AsyncFetch, on an idle kept-alive connection to the URL's host:port when there is one
  // (else a new one, kept afterwards unless the server closes it). A request that fails on a
  // reused connection before any byte of a response arrived (the server closed it while idle)
  // is sent once more on a new connection. https URLs: TLS with the process's SetClientTls
  // certificate, the server's checked as AsyncFetch checks it; kept alive the same way.
  void Fetch(const std::string& method, const std::string& url, std::string body, Headers headers,
             Duration timeout, std::function<void(Result<Response>)> done);

  // Idle connections kept now (for tests and metrics).
  size_t idle() const;

  struct Idle;

 private:
  boost::asio::io_context& io_;
  std::shared_ptr<std::map<std::string, std::vector<std::shared_ptr<Idle>>>> idle_;
};

}  // namespace hafab::http
