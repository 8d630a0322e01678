// The dashboard's login and session (dashboard.h) through a Replica, as the daemon serves it:
// a login token is single use and short-lived, the session cookie reads like the read token
// and writes nothing, forged or expired tokens and odd input are refused without harm.
#include "controller/dashboard.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "controller/dashboard_assets.h"
#include "controller/replica.h"
#include "testing/fake_clock.h"
#include "testing/fake_provider.h"
#include "testing/memory_store.h"

namespace hafab::controller {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ReplicaOptions o;
    o.leader.id = "a";
    o.leader.url = "http://a:7070";
    o.leader.ttl = 2s;
    o.leader.watch_poll = Duration::zero();
    o.controller.crash_exits = false;
    replica_ =
        std::make_unique<Replica>(store_, clock_, &provider_, Tokens{"admin", "read", "key"}, o);
    for (int i = 0; i < 10; ++i) {
      clock_.Advance(20ms);
      replica_->Tick();
    }
    ASSERT_TRUE(replica_->leading());
  }

  // `auth`: the Authorization header ("" for none); `cookie`: the Cookie header.
  http::Response Call(const std::string& method, const std::string& target, const std::string& auth,
                      const std::string& cookie = "") {
    http::Request req;
    req.method = method;
    http::ParseTarget(target, req);
    req.target = target;
    if (!auth.empty()) req.headers["authorization"] = auth;
    if (!cookie.empty()) req.headers["cookie"] = cookie;
    // The listener's header check first, as http::Server runs it.
    http::Admission admission = replica_->Admit(req);
    if (admission.refuse) return *admission.refuse;
    http::Response out;
    out.status = 0;
    replica_->Handle(std::move(req), [&out](http::Response r) { out = std::move(r); });
    return out;
  }

  // A login path from GET /v1/dashboard/login with `token`.
  std::string LoginPath(const std::string& token = "read") {
    http::Response r = Call("GET", "/v1/dashboard/login", "Bearer " + token);
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body)["path"].get<std::string>();
  }

  // Logs in with a fresh link; the cookie header a browser would send afterwards.
  std::string LogIn() {
    http::Response r = Call("GET", LoginPath(), "");
    EXPECT_EQ(r.status, 303) << r.body;
    const std::string set = r.Header("Set-Cookie");
    return set.substr(0, set.find(';'));
  }

  // A second replica on the same store and tokens: it follows.
  std::unique_ptr<Replica> Follower() {
    ReplicaOptions o;
    o.leader.id = "b";
    o.leader.url = "http://b:7070";
    o.leader.ttl = 2s;
    o.leader.watch_poll = Duration::zero();
    o.controller.crash_exits = false;
    auto b =
        std::make_unique<Replica>(store_, clock_, &provider_, Tokens{"admin", "read", "key"}, o);
    for (int i = 0; i < 10; ++i) {
      clock_.Advance(20ms);
      replica_->Tick();
      b->Tick();
    }
    EXPECT_FALSE(b->leading());
    return b;
  }

  testing::FakeClock clock_;
  testing::MemoryStore store_{clock_};
  testing::FakeProvider provider_;
  std::unique_ptr<Replica> replica_;
};

TEST_F(DashboardTest, AssetsAreEmbedded) {
  for (const char* name : {"index.html", "app.js", "app.css"}) {
    const DashboardAsset* a = FindDashboardAsset(name);
    ASSERT_NE(a, nullptr) << name;
    EXPECT_GT(a->body.size(), 500u) << name;
  }
  EXPECT_EQ(FindDashboardAsset("../dashboard.cc"), nullptr);
}

TEST_F(DashboardTest, LoginLinkSetsAStrictHttpOnlyCookieOnceAndRedirects) {
  const std::string path = LoginPath();
  ASSERT_EQ(path.rfind("/ui/login?token=", 0), 0u) << path;
  http::Response r = Call("GET", path, "");
  ASSERT_EQ(r.status, 303) << r.body;
  EXPECT_EQ(r.Header("Location"), "/ui/");
  const std::string set = r.Header("Set-Cookie");
  EXPECT_EQ(set.rfind(std::string(kSessionCookie) + "=", 0), 0u) << set;
  EXPECT_NE(set.find("HttpOnly"), std::string::npos) << set;
  EXPECT_NE(set.find("SameSite=Strict"), std::string::npos) << set;
  EXPECT_EQ(r.Header("Referrer-Policy"), "no-referrer");
  EXPECT_EQ(set.find("Secure"), std::string::npos) << "plain HTTP: a Secure cookie is never sent";
  // The same link again: refused, no cookie.
  r = Call("GET", path, "");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.Header("Set-Cookie"), "");
}

// Over TLS (the controller's --tls) the cookie is never sent over plain HTTP.
TEST(DashboardHttpsTest, TheSessionCookieIsSecure) {
  testing::FakeClock clock;
  Dashboard d(Tokens{"admin", "read", "key"}, clock, /*https=*/true);
  http::Request ask;
  ask.method = "GET";
  ask.path = "/v1/dashboard/login";
  ask.headers["authorization"] = "Bearer read";
  http::Response r = d.NewLogin(ask);
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string path = json::parse(r.body)["path"].get<std::string>();
  http::Request login;
  login.method = "GET";
  http::ParseTarget(path, login);
  login.target = path;
  r = d.Handle(login);
  ASSERT_EQ(r.status, 303) << r.body;
  EXPECT_NE(r.Header("Set-Cookie").find("; Secure"), std::string::npos) << r.Header("Set-Cookie");
}

TEST_F(DashboardTest, LoginLinkExpiresAfterAMinute) {
  const std::string path = LoginPath("admin");
  clock_.JumpWall(kLoginTtl + 1ms);
  EXPECT_EQ(Call("GET", path, "").status, 401);
}

TEST_F(DashboardTest, OnlyTheReadOrAdminTokenMintsLogins) {
  EXPECT_EQ(Call("GET", "/v1/dashboard/login", "").status, 401);
  EXPECT_EQ(Call("GET", "/v1/dashboard/login", "Bearer nope").status, 401);
  EXPECT_EQ(Call("GET", "/v1/dashboard/login", "Bearer " + AgentCredential("key", "n1")).status,
            403);
  // A session does not extend itself.
  EXPECT_EQ(Call("GET", "/v1/dashboard/login", "", LogIn()).status, 401);
}

TEST_F(DashboardTest, SessionReadsLikeTheReadTokenAndWritesNothing) {
  const std::string cookie = LogIn();
  EXPECT_EQ(Call("GET", "/ui/", "", cookie).status, 200);
  http::Response js = Call("GET", "/ui/app.js", "", cookie);
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
  EXPECT_NE(js.Header("Content-Security-Policy").find("default-src 'self'"), std::string::npos);
  EXPECT_EQ(Call("GET", "/v1/status", "", "other=1; " + cookie).status, 200);
  EXPECT_EQ(Call("GET", "/v1/leader", "", cookie).status, 200);
  // Writes: the cookie stands for the read token in GETs only; anything else has no credential.
  EXPECT_EQ(Call("POST", "/v1/apply", "", cookie).status, 401);
  EXPECT_EQ(Call("POST", "/v1/roles/kvd/failover", "", cookie).status, 401);
  EXPECT_EQ(Call("POST", "/ui/", "", cookie).status, 405);
  // An explicit Authorization wins over the cookie.
  EXPECT_EQ(Call("GET", "/v1/status", "Bearer nope", cookie).status, 401);
  // The session ends after 12 hours.
  clock_.JumpWall(kSessionTtl);
  EXPECT_EQ(Call("GET", "/v1/status", "", cookie).status, 401);
  EXPECT_EQ(Call("GET", "/ui/", "", cookie).status, 401);
}

TEST_F(DashboardTest, WithoutASessionThePageSaysHowToLogInAndShowsNothingElse) {
  for (const char* path : {"/ui", "/ui/", "/ui/app.js", "/ui/index.html"}) {
    http::Response r = Call("GET", path, "");
    EXPECT_EQ(r.status, 401) << path;
    EXPECT_NE(r.body.find("hafab dashboard"), std::string::npos) << path;
  }
  EXPECT_EQ(Call("GET", "/v1/status", "").status, 401);
}

TEST_F(DashboardTest, ForgedAndMalformedTokensAreRefused) {
  const std::string cookie = LogIn();
  const std::string value = cookie.substr(cookie.find('=') + 1);
  const std::string login = LoginPath().substr(std::string("/ui/login?token=").size());
  const std::vector<std::string> forged = {
      "",
      ".",
      "..",
      "1.2.3",
      "99999999999999999999999.ab.cd",
      value.substr(0, value.size() - 1) + (value.back() == '0' ? "1" : "0"),
      "9" + value,  // a later expiry under the old mac
      std::string(5000, '.'),
      "%00%ff",
  };
  for (const std::string& f : forged) {
    EXPECT_EQ(Call("GET", "/v1/status", "", std::string(kSessionCookie) + "=" + f).status, 401)
        << f;
    EXPECT_EQ(Call("GET", "/ui/login?token=" + f, "").status, 401) << f;
  }
  // A login token is not a session, nor a session token a login token.
  EXPECT_EQ(Call("GET", "/v1/status", "", std::string(kSessionCookie) + "=" + login).status, 401);
  EXPECT_EQ(Call("GET", "/ui/login?token=" + value, "").status, 401);
  EXPECT_EQ(Call("GET", "/ui/no-such-file", "", cookie).status, 404);
  EXPECT_EQ(Call("GET", "/ui/../v1/status", "", cookie).status, 404);
}

TEST_F(DashboardTest, AFollowerServesThePageAndTakesTheLeadersSession) {
  const std::string cookie = LogIn();  // from the leader
  std::unique_ptr<Replica> follower = Follower();
  std::swap(replica_, follower);  // Call() now asks the follower
  EXPECT_EQ(Call("GET", "/ui/", "", cookie).status, 200);
  http::Response leader = Call("GET", "/v1/leader", "", cookie);
  ASSERT_EQ(leader.status, 200) << leader.body;
  EXPECT_EQ(json::parse(leader.body)["role"], "follower");
  EXPECT_EQ(json::parse(leader.body)["leader"]["url"], "http://a:7070");
  EXPECT_EQ(Call("GET", "/v1/status", "", cookie).status, 200);
  // Single use is per replica: a link is refused where it was used only.
  const std::string path = LoginPath();
  EXPECT_EQ(Call("GET", path, "").status, 303);
  EXPECT_EQ(Call("GET", path, "").status, 401);
  std::swap(replica_, follower);
}

}  // namespace
}  // namespace hafab::controller
