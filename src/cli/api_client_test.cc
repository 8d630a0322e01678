// ApiClient against stand-in controllers on loopback: a list of replicas, a follower's
// "not leader" answer, a replica that is down.
#include "cli/api_client.h"

#include <gtest/gtest.h>

#include "cli/stand_in.h"

namespace hafab::cli {
namespace {

Result<ApiClient> Connect(const std::string& api) {
  ApiOptions o;
  o.api = api;
  o.token = "t";
  return ApiClient::Connect(o);
}

TEST(ApiClientTest, FollowsTheLeaderAFollowerNamesAndAsksItFirstNextTime) {
  StandIn leader([](const http::Request&) { return http::Response::Json(200, R"({"ok":true})"); });
  StandIn follower([&](const http::Request&) {
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
  StandIn up([](const http::Request&) { return http::Response::Json(200, R"({"ok":true})"); });
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
