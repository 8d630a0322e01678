#include "http/pool.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <optional>

#include "testing/wait.h"

namespace hafab::http {
namespace {

using namespace std::chrono_literals;

class PoolTest : public ::testing::Test {
 protected:
  PoolTest()
      : server_(io_, [this](Request&&, Responder respond) {
          ++requests_;
          Response r;
          r.body = "hello";
          respond(std::move(r));
        }) {
    auto port = server_.Listen("127.0.0.1", 0);
    EXPECT_TRUE(port.ok());
    url_ = "http://127.0.0.1:" + std::to_string(port.value_or(0)) + "/x";
  }

  Result<Response> Get() {
    std::optional<Result<Response>> got;
    pool_.Fetch("GET", url_, "", {}, 2s, [&](Result<Response> r) { got.emplace(std::move(r)); });
    while (!got) io_.run_one_for(std::chrono::milliseconds(100));
    return std::move(*got);
  }

  boost::asio::io_context io_;
  Server server_;
  ConnectionPool pool_{io_};
  std::string url_;
  int requests_ = 0;
};

TEST_F(PoolTest, RequestsShareOneKeptAliveConnection) {
  for (int i = 0; i < 3; ++i) {
    auto r = Get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->body, "hello");
  }
  EXPECT_EQ(requests_, 3);
  EXPECT_EQ(pool_.idle(), 1u);
  EXPECT_EQ(server_.stats().open, 1u);
}

TEST_F(PoolTest, AConnectionTheServerClosedWhileIdleIsReplaced) {
  server_.SetIdleTimeout(50ms);
  ASSERT_TRUE(Get().ok());
  ASSERT_TRUE(testing::WaitFor([&] {
    io_.poll();
    return server_.stats().open == 0;
  }));
  EXPECT_EQ(pool_.idle(), 1u);  // the pool does not know yet
  auto r = Get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(requests_, 2);
}

TEST_F(PoolTest, UnreachableIsUnavailable) {
  url_ = "http://127.0.0.1:1/x";
  auto r = Get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

// This process has no SetClientTls (tls_test covers the pool over TLS).
TEST_F(PoolTest, HttpsWithoutAClientCertificateIsRefusedBeforeConnecting) {
  url_ = "https://127.0.0.1:1/x";
  auto r = Get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("no TLS client certificate"), std::string::npos)
      << r.status().ToString();
}

}  // namespace
}  // namespace hafab::http
