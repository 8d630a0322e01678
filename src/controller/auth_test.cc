// Scoped identities (issue 21): agent and gateway credentials derived from the cluster key,
// each acting for its own node or gateway only; the read token sees no env value.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <vector>

#include "controller/api.h"
#include "controller/tokens.h"
#include "core/json.h"
#include "testing/fake_clock.h"
#include "testing/fake_provider.h"
#include "testing/memory_store.h"

namespace hafab::controller {
namespace {

using nlohmann::json;
using testing::FakeProvider;
using testing::MemoryStore;

const Tokens kTokens{"admintok", "readtok", "clusterkey"};

Principal Who(const std::string& token, const Tokens& tokens = kTokens) {
  return Authenticate(tokens, "Bearer " + token);
}

TEST(CredentialsTest, DerivedPerNameAndCheckedByTheirMac) {
  const std::string n1 = AgentCredential("clusterkey", "n1");
  EXPECT_EQ(n1.rfind("agent.n1.", 0), 0u);
  EXPECT_EQ(n1.size(), std::string("agent.n1.").size() + 64);
  EXPECT_EQ(n1, AgentCredential("clusterkey", "n1"));  // derived, not stored
  EXPECT_NE(n1, AgentCredential("clusterkey", "n2"));

  Principal p = Who(n1);
  EXPECT_EQ(p.access, Access::kAgent);
  EXPECT_EQ(p.name, "n1");
  p = Who(GatewayCredential("clusterkey", "gw1"));
  EXPECT_EQ(p.access, Access::kGateway);
  EXPECT_EQ(p.name, "gw1");
  EXPECT_EQ(Who("admintok").access, Access::kAdmin);
  EXPECT_EQ(Who("readtok").access, Access::kRead);

  const std::string mac = n1.substr(std::string("agent.n1.").size());
  for (const std::string& forged : std::vector<std::string>{
           AgentCredential("otherkey", "n1"),  // another cluster's key
           "agent.n2." + mac,                  // n1's mac, claiming n2
           "gateway.n1." + mac,                // the kind is part of the mac
           n1.substr(0, n1.size() - 1) + (n1.back() == '0' ? "1" : "0"), "agent.n1.", "agent.n1",
           "agent..", "agent.n.1." + mac, "", "admintok2"}) {
    EXPECT_EQ(Who(forged).access, Access::kNone) << forged;
  }
  // Without a cluster key no component credential is valid.
  EXPECT_EQ(Who(n1, Tokens{"admintok", "readtok", ""}).access, Access::kNone);
  EXPECT_EQ(Authenticate(kTokens, n1).access, Access::kNone);  // no "Bearer "
}

TEST(CredentialsTest, AVerifiedCredentialIsRememberedUnderItsKeyOnly) {
  Tokens t{"admintok", "readtok", "k1"};
  const std::string n1 = AgentCredential("k1", "n1");
  EXPECT_FALSE(t.verified->Find("k1", n1));
  EXPECT_EQ(Who(n1, t).access, Access::kAgent);
  ASSERT_TRUE(t.verified->Find("k1", n1));
  EXPECT_EQ(t.verified->Find("k1", n1)->name, "n1");
  EXPECT_EQ(Who(n1, t).name, "n1");
  // A forged one is not remembered.
  EXPECT_EQ(Who("agent.n2.0000", t).access, Access::kNone);
  EXPECT_FALSE(t.verified->Find("k1", "agent.n2.0000"));
  // A copy shares the set; under another key what k1 verified is not valid.
  Tokens rotated = t;
  rotated.key = "k2";
  EXPECT_EQ(Who(n1, rotated).access, Access::kNone);
  EXPECT_EQ(Who(AgentCredential("k2", "n1"), rotated).access, Access::kAgent);
  EXPECT_FALSE(t.verified->Find("k1", n1));  // the set started over under k2
  EXPECT_EQ(Who(n1, t).access, Access::kAgent);
}

TEST(PermitTest, EachCredentialHasItsOwnScope) {
  const Principal admin{Access::kAdmin, ""}, read{Access::kRead, ""};
  const Principal agent{Access::kAgent, "n1"}, gateway{Access::kGateway, "gw1"};
  struct Case {
    const Principal& who;
    const char* method;
    const char* path;
    bool allowed;
  };
  const Case cases[] = {
      {admin, "POST", "/v1/apply", true},
      {admin, "POST", "/v1/agents/n2/heartbeat", true},
      {read, "GET", "/v1/status", true},
      {read, "GET", "/v1/agents/n1/assignments", true},  // env redacted (Api)
      {read, "POST", "/v1/roles/kvd/failover", false},
      {agent, "POST", "/v1/agents/n1/heartbeat", true},
      {agent, "GET", "/v1/agents/n1/assignments", true},
      {agent, "POST", "/v1/agents/n2/heartbeat", false},
      {agent, "GET", "/v1/agents/n2/assignments", false},
      {agent, "GET", "/v1/agents/n1/heartbeat", false},
      {agent, "GET", "/v1/status", false},
      {agent, "GET", "/v1/routes", false},
      {agent, "POST", "/v1/gateways/n1/heartbeat", false},
      {agent, "POST", "/v1/nodes/n1/drain", false},
      {agent, "GET", "/v1/leader", true},
      {gateway, "GET", "/v1/routes", true},
      {gateway, "POST", "/v1/gateways/gw1/heartbeat", true},
      {gateway, "POST", "/v1/gateways/gw2/heartbeat", false},
      {gateway, "POST", "/v1/agents/gw1/heartbeat", false},
      {gateway, "GET", "/v1/events", false},
      {gateway, "POST", "/v1/roles/kvd/failover", false},
      {gateway, "GET", "/v1/leader", true},
  };
  for (const Case& c : cases) {
    Status st = Permit(c.who, c.method, c.path);
    EXPECT_EQ(st.ok(), c.allowed) << c.who.name << " " << c.method << " " << c.path;
    if (!st.ok()) {
      EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);
    }
  }
  EXPECT_FALSE(Permit(Principal{}, "GET", "/v1/leader").ok());
}

constexpr char kSecretManifest[] = R"(cluster: t
roles:
  - name: kvd
    mode: active-passive
    command: kvd
    instances: 1
    port: 7101
    env:
      PASSWORD: hunter2
    endpoint:
      listen: 127.0.0.1:7000
  - name: web
    mode: load-balanced
    command: web
    instances: 1
    port: 8080
    env:
      PASSWORD: hunter2
)";

class AuthApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(c_.Start().ok());
    api_ = std::make_unique<Api>(c_, clock_, kTokens);
  }

  http::Response Send(const std::string& method, const std::string& path, const std::string& body,
                      const std::string& token) {
    http::Request r;
    r.method = method;
    r.path = path;
    r.target = path;
    r.body = body;
    r.headers["authorization"] = "Bearer " + token;
    http::Response out;
    out.status = 0;
    api_->Handle(std::move(r), [&out](http::Response resp) { out = std::move(resp); });
    return out;
  }
  static std::string Hb() { return R"({"address": "127.0.0.1"})"; }

  testing::FakeClock clock_;
  MemoryStore store_{clock_};
  FakeProvider provider_;
  Controller c_{store_, clock_, &provider_, ControllerOptions{}};
  std::unique_ptr<Api> api_;
};

// Issue 21: a fake heartbeat for n1 moved kvd-0's route back and forth. With n2's
// credential it is refused and changes nothing.
TEST_F(AuthApiTest, AnAgentActsForItsOwnNodeOnly) {
  const std::string n1 = AgentCredential("clusterkey", "n1");
  const std::string n2 = AgentCredential("clusterkey", "n2");
  ASSERT_EQ(Send("POST", "/v1/agents/n1/heartbeat", Hb(), n1).status, 200);
  ASSERT_EQ(Send("POST", "/v1/apply", kSecretManifest, "admintok").status, 200);
  const json before = c_.StatusJson()["instances"];
  const int64_t routes = c_.RoutesVersion();

  http::Response r = Send("POST", "/v1/agents/n1/heartbeat", R"({"instances": []})", n2);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(json::parse(r.body)["error"],
            "Authorization: the agent credential of node n2 allows only POST "
            "/v1/agents/n2/heartbeat and GET /v1/agents/n2/assignments");
  EXPECT_EQ(Send("GET", "/v1/agents/n1/assignments", "", n2).status, 403);
  EXPECT_EQ(Send("POST", "/v1/nodes/n1/drain", "{}", n2).status, 403);
  EXPECT_EQ(Send("GET", "/v1/status", "", n2).status, 403);
  EXPECT_EQ(Send("POST", "/v1/gateways/gw1/heartbeat", R"({"routes_version": 0})", n2).status, 403);
  EXPECT_EQ(c_.StatusJson()["instances"], before);
  EXPECT_EQ(c_.RoutesVersion(), routes);
  EXPECT_EQ(c_.NodesJson().size(), 1u);  // n2 never heartbeat: not a node
  EXPECT_TRUE(c_.GatewaysJson().empty());

  EXPECT_EQ(Send("GET", "/v1/agents/n1/assignments", "", n1).status, 200);
  EXPECT_EQ(Send("POST", "/v1/agents/n1/heartbeat", Hb(), AgentCredential("nokey", "n1")).status,
            401);
}

TEST_F(AuthApiTest, AGatewayReadsRoutesAndAcknowledgesForItselfOnly) {
  const std::string gw1 = GatewayCredential("clusterkey", "gw1");
  EXPECT_EQ(Send("GET", "/v1/routes", "", gw1).status, 200);
  EXPECT_EQ(Send("POST", "/v1/gateways/gw1/heartbeat", R"({"routes_version": 0})", gw1).status,
            200);
  EXPECT_EQ(Send("POST", "/v1/gateways/gw2/heartbeat", R"({"routes_version": 0})", gw1).status,
            403);
  EXPECT_EQ(Send("POST", "/v1/agents/n1/heartbeat", Hb(), gw1).status, 403);
  EXPECT_EQ(Send("POST", "/v1/apply", kSecretManifest, gw1).status, 403);
  EXPECT_EQ(Send("GET", "/v1/ops", "", gw1).status, 403);
  ASSERT_EQ(c_.GatewaysJson().size(), 1u);
  EXPECT_EQ(c_.GatewaysJson()[0]["id"], "gw1");
  EXPECT_TRUE(c_.NodesJson().empty());
}

// The read token used to read every role's env through the agents' assignments. Now it sees
// the names of the variables, never their values, on every path it can read.
TEST_F(AuthApiTest, TheReadTokenSeesNoEnvValue) {
  ASSERT_EQ(Send("POST", "/v1/agents/n1/heartbeat", Hb(), "admintok").status, 200);
  ASSERT_EQ(Send("POST", "/v1/apply", kSecretManifest, "admintok").status, 200);
  ASSERT_EQ(
      Send("POST", "/v1/roles/web/upgrade", R"({"set": {"env": {"TOKEN": "s3cret"}}})", "admintok")
          .status,
      200);
  http::Response admin = Send("GET", "/v1/agents/n1/assignments", "", "admintok");
  ASSERT_EQ(admin.status, 200);
  EXPECT_NE(admin.body.find("hunter2"), std::string::npos) << admin.body;  // the agent's view

  http::Response read = Send("GET", "/v1/agents/n1/assignments", "", "readtok");
  ASSERT_EQ(read.status, 200) << read.body;
  const json a = json::parse(read.body)["assignments"];
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a[0]["env"]["PASSWORD"], kRedacted) << read.body;
  for (const char* path : {"/v1/agents/n1/assignments", "/v1/status", "/v1/roles", "/v1/ops",
                           "/v1/events", "/v1/nodes", "/v1/gateways", "/v1/routes"}) {
    http::Response r = Send("GET", path, "", "readtok");
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.body.find("hunter2"), std::string::npos) << path << ": " << r.body;
    EXPECT_EQ(r.body.find("s3cret"), std::string::npos) << path << ": " << r.body;
  }
  // A long-poll answered later is redacted too.
  http::Request poll;
  poll.method = "GET";
  poll.path = "/v1/agents/n1/assignments";
  poll.query = {{"after", std::to_string(c_.AssignmentsGeneration("n1"))}, {"wait_ms", "1000"}};
  poll.headers["authorization"] = "Bearer readtok";
  std::optional<http::Response> later;
  api_->Handle(std::move(poll), [&later](http::Response r) { later = std::move(r); });
  EXPECT_FALSE(later.has_value());
  clock_.Advance(std::chrono::seconds(2));
  api_->ExpireWaits();
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(later->body.find("hunter2"), std::string::npos) << later->body;
  EXPECT_NE(later->body.find(kRedacted), std::string::npos) << later->body;
}

// The header check refuses another node's credential before the body is read.
TEST(AdmitRequestTest, RefusesAnotherNodesCredentialFromTheHeader) {
  http::Request head;
  head.method = "POST";
  head.path = "/v1/agents/n1/heartbeat";
  head.headers["authorization"] = "Bearer " + AgentCredential("clusterkey", "n2");
  http::Admission a = AdmitRequest(kTokens, head);
  ASSERT_TRUE(a.refuse.has_value());
  EXPECT_EQ(a.refuse->status, 403);
  head.headers["authorization"] = "Bearer " + AgentCredential("clusterkey", "n1");
  EXPECT_FALSE(AdmitRequest(kTokens, head).refuse.has_value());
  head.headers["authorization"] = "Bearer agent.n1.0000";
  ASSERT_TRUE(AdmitRequest(kTokens, head).refuse.has_value());
  EXPECT_EQ(AdmitRequest(kTokens, head).refuse->status, 401);
}

TEST(CredentialsTest, ClusterKeyAndCredentialFilesArePrivate) {
  const std::string dir = ::testing::TempDir() + "/auth_test_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  auto t = LoadOrCreateTokens(dir);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->key.size(), 64u);
  EXPECT_NE(t->key, t->admin);
  EXPECT_EQ(LoadOrCreateTokens(dir)->key, t->key);
  const std::string file = dir + "/agent.token";
  ASSERT_TRUE(WriteSecretFile(file, AgentCredential(t->key, "n1")).ok());
  EXPECT_EQ(*ReadTokenFile(file), AgentCredential(t->key, "n1"));
  for (const std::string& f : {dir + "/cluster.key", file}) {
    struct stat st;
    ASSERT_EQ(stat(f.c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600) << f;
  }
  EXPECT_FALSE(ReadTokenFile(dir + "/missing").ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hafab::controller
