// For tests: a stand-in controller on loopback that answers every request with `answer(req)`
// from its own thread, and counts the requests.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <functional>
#include <string>
#include <thread>

#include "http/http.h"

namespace hafab::cli {

class StandIn {
 public:
  explicit StandIn(std::function<http::Response(const http::Request&)> answer)
      : server_(io_, [this, answer](http::Request&& req, http::Responder respond) {
          ++requests_;
          respond(answer(req));
        }) {
    auto port = server_.Listen("127.0.0.1", 0);
    EXPECT_TRUE(port.ok()) << port.status().ToString();
    url_ = "http://127.0.0.1:" + std::to_string(port.value_or(0));
    thread_ = std::thread([this] { io_.run(); });
  }
  ~StandIn() {
    boost::asio::post(io_, [this] {
      server_.Stop();
      io_.stop();
    });
    thread_.join();
  }
  const std::string& url() const { return url_; }
  int requests() const { return requests_; }

 private:
  boost::asio::io_context io_;
  http::Server server_;
  std::string url_;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

}  // namespace hafab::cli
