// ApiClient against stand-in controllers on loopback: a list of replicas, a follower's
// "not leader" answer, a replica that is down.
#include "cli/api_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <functional>
#include <thread>

namespace hafab::cli {
namespace {

// Answers every request with `answer()` and counts them.
class StandIn {
 public:
  explicit StandIn(std::function<http::Response()> answer)
      : server_(io_, [this, answer](http::Request&&, http::Responder respond) {
          ++requests_;
          respond(answer());
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

Result<ApiClient> Connect(const std::string& api) {
  ApiOptions o;
  o.api = api;
  o.token = "t";
  return ApiClient::Connect(o);
}

TEST(ApiClientTest, FollowsTheLeaderAFollowerNamesAndAsksItFirstNextTime) {
  StandIn leader([] { return http::Response::Json(200, R"({"ok":true})"); });
  StandIn follower([&] {
    return http::Response::Json(503, R"({"error":"not leader","leader":")" + leader.url() + "\"}");
  });
  auto c = Connect(follower.url() + "," + leader.url());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto r = c->Call("GET", "/v1/status");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)["ok"], true);
  EXPECT_EQ(follower.requests(), 1);
  EXPECT_EQ(leader.requests(), 1);
  ASSERT_TRUE(c->Call("GET", "/v1/status").ok());
  EXPECT_EQ(follower.requests(), 1);
  EXPECT_EQ(leader.requests(), 2);
}

TEST(ApiClientTest, SkipsAReplicaThatIsDown) {
  StandIn up([] { return http::Response::Json(200, R"({"ok":true})"); });
  auto c = Connect("http://127.0.0.1:1/," + up.url() + "/");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->Call("GET", "/v1/status").ok());
  EXPECT_TRUE(c->Call("GET", "/v1/status").ok());
  EXPECT_EQ(up.requests(), 2);
  auto down = Connect("http://127.0.0.1:1");
  ASSERT_TRUE(down.ok());
  EXPECT_EQ(down->Call("GET", "/v1/status").status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace hafab::cli
