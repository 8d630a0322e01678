// The HTTP/JSON API, called through Api::Handle (no sockets): auth, errors that name the
// field, apply validation, long-polls.
#include "controller/api.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <optional>

#include "core/json.h"
#include "manifest/limits.h"
#include "testing/fake_clock.h"
#include "testing/fake_provider.h"
#include "testing/memory_store.h"
#include "wire/assignments.h"

namespace hafab::controller {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::FakeProvider;
using testing::MemoryStore;

constexpr char kManifest[] = R"(cluster: t
roles:
  - name: kvd
    mode: active-passive
    command: kvd
    instances: 2
    port: 7101
    volume: kvd-data
    endpoint:
      listen: 127.0.0.1:7000
  - name: web
    mode: load-balanced
    command: web
    instances: 2
    port: 8080
)";

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(c_.Start().ok());
    api_ = std::make_unique<Api>(c_, clock_, Tokens{"admintok", "readtok", "clusterkey"});
  }

  // Sends a request; returns the response if answered synchronously.
  std::optional<http::Response> Send(const std::string& method, const std::string& path,
                                     const std::string& body = "",
                                     const std::string& token = "admintok",
                                     std::map<std::string, std::string> query = {}) {
    http::Request r;
    r.method = method;
    r.path = path;
    r.target = path;
    r.query = std::move(query);
    r.body = body;
    if (!token.empty()) r.headers["authorization"] = "Bearer " + token;
    last_.reset();
    api_->Handle(std::move(r), [this](http::Response resp) { last_ = std::move(resp); });
    return last_;
  }
  json Body(const std::optional<http::Response>& r) { return json::parse(r->body); }

  void Heartbeat(const std::string& node, const std::string& fd) {
    auto r = Send(
        "POST", "/v1/agents/" + node + "/heartbeat",
        json{{"address", "127.0.0.1"}, {"labels", {{"fault_domain", fd}, {"update_domain", fd}}}}
            .dump());
    ASSERT_EQ(r->status, 200) << r->body;
  }

  testing::FakeClock clock_;
  MemoryStore store_{clock_};
  FakeProvider provider_;
  Controller c_{store_, clock_, &provider_, ControllerOptions{}};
  std::unique_ptr<Api> api_;
  std::optional<http::Response> last_;
};

TEST_F(ApiTest, EveryCallNeedsABearerToken) {
  auto r = Send("GET", "/v1/status", "", "");
  EXPECT_EQ(r->status, 401);
  EXPECT_NE(Body(r)["error"].get<std::string>().find("Authorization"), std::string::npos);
  EXPECT_EQ(Send("GET", "/v1/status", "", "wrong")->status, 401);
  EXPECT_EQ(Send("GET", "/v1/status", "", "readtok")->status, 200);
  EXPECT_EQ(Send("GET", "/v1/status")->status, 200);
}

// GET /metrics: Prometheus text for the read token, nothing without one.
TEST_F(ApiTest, MetricsForTheReadToken) {
  EXPECT_EQ(Send("GET", "/metrics", "", "")->status, 401);
  Heartbeat("n1", "fd1");
  Heartbeat("n2", "fd2");
  ASSERT_EQ(Send("POST", "/v1/apply", kManifest)->status, 200);
  auto r = Send("GET", "/metrics", "", "readtok");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->content_type, kMetricsContentType);
  for (const char* line :
       {"# TYPE hafab_controller_nodes gauge\n", "hafab_controller_nodes{state=\"up\"} 2\n",
        "hafab_controller_heartbeats_total{from=\"agent\"} 2\n",
        "hafab_controller_instances{role=\"kvd\",state=\"unreported\"} 2\n",
        "hafab_controller_operations_running{kind=\"failover\"} 0\n",
        "hafab_controller_store_commit_failures_total 0\n"}) {
    EXPECT_NE(r->body.find(line), std::string::npos) << line << " in\n" << r->body;
  }
}

TEST_F(ApiTest, ReadTokenIsGetOnly) {
  auto r = Send("POST", "/v1/apply", kManifest, "readtok");
  EXPECT_EQ(r->status, 403);
  EXPECT_TRUE(c_.roles().empty());
}

TEST_F(ApiTest, ApplyValidationErrorIs400WithFileLineColAndAppliesNothing) {
  std::string bad = kManifest;
  bad.replace(bad.find("instances: 2"), 12, "instances: two");
  auto r = Send("POST", "/v1/apply", bad, "admintok", {{"file", "kvd.yaml"}});
  ASSERT_EQ(r->status, 400);
  std::string err = Body(r)["error"];
  EXPECT_EQ(err.rfind("kvd.yaml:6:16: error: roles[0].instances:", 0), 0u) << err;
  EXPECT_NE(err.find("error"), std::string::npos);
  EXPECT_NE(err.find("instances"), std::string::npos) << err;
  EXPECT_TRUE(c_.roles().empty());
  auto status = Body(Send("GET", "/v1/roles"));
  EXPECT_TRUE(status["roles"].empty());
}

TEST_F(ApiTest, ApplyThenStatusShowsPlacedInstances) {
  Heartbeat("n1", "fd1");
  Heartbeat("n2", "fd2");
  auto r = Send("POST", "/v1/apply", kManifest);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Body(r)["roles"], json({"kvd", "web"}));
  auto st = Body(Send("GET", "/v1/status"));
  EXPECT_EQ(st["roles"].size(), 2u);
  EXPECT_EQ(st["instances"].size(), 4u);
  EXPECT_EQ(st["nodes"].size(), 2u);
  for (const char* p : {"/v1/roles", "/v1/nodes", "/v1/volumes", "/v1/ops", "/v1/gateways"}) {
    EXPECT_EQ(Send("GET", p)->status, 200) << p;
  }
}

TEST_F(ApiTest, ErrorsNameTheField) {
  auto r = Send("POST", "/v1/agents/n1/heartbeat", "{not json");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Body(r)["error"], "body: not valid JSON");
  r = Send("POST", "/v1/agents/n1/heartbeat", R"({"instances": 3})");
  EXPECT_EQ(Body(r)["error"], "instances: must be an array");
  r = Send("POST", "/v1/agents/n1/heartbeat",
           R"({"instances": [{"instance": "x", "restarts": "two"}]})");
  EXPECT_EQ(Body(r)["error"], "instances[0].restarts: must be an integer");
  r = Send("POST", "/v1/agents/n1/heartbeat", R"({"node": "n2"})");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Body(r)["error"], "node: the body's 'n2' is not the URL's 'n1'");
  Send("POST", "/v1/apply", kManifest);
  r = Send("POST", "/v1/roles/web/scale", R"({"instances": "x"})");
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Body(r)["error"].get<std::string>().rfind("instances:", 0), 0u);
  r = Send("POST", "/v1/roles/nope/failover", "{}");
  EXPECT_EQ(r->status, 404);
  r = Send("POST", "/v1/roles/web/failover", "{}");
  EXPECT_EQ(r->status, 400);
  r = Send("GET", "/v1/events", "", "admintok", {{"after", "-1"}});
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Body(r)["error"].get<std::string>().rfind("after:", 0), 0u);
  EXPECT_EQ(Send("GET", "/v1/nope")->status, 404);
  EXPECT_EQ(Send("POST", "/v1/nodes/n9/drain")->status, 404);
}

TEST_F(ApiTest, AssignmentsLongPollAnswersOnChangeOrTimeout) {
  Heartbeat("n1", "fd1");
  Send("POST", "/v1/apply", kManifest);
  auto now = Body(Send("GET", "/v1/agents/n1/assignments"));
  int64_t gen = now["generation"];
  EXPECT_EQ(now["assignments"].size(), 4u);  // one node: everything is here
  // Nothing newer: the poll waits.
  auto r = Send("GET", "/v1/agents/n1/assignments", "", "admintok",
                {{"after", std::to_string(gen)}, {"wait_ms", "5000"}});
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(api_->waiting(), 1u);
  // A change answers it at once, with the new generation.
  ASSERT_EQ(Send("POST", "/v1/roles/web/scale", R"({"instances": 1})")->status, 200);
  ASSERT_TRUE(last_.has_value() || api_->waiting() == 0);
  EXPECT_EQ(api_->waiting(), 0u);
  // Without change, the wait ends after wait_ms with the same generation.
  int64_t gen2 = Body(Send("GET", "/v1/agents/n1/assignments"))["generation"];
  EXPECT_GT(gen2, gen);
  std::optional<http::Response> answer;
  http::Request req;
  req.method = "GET";
  req.path = "/v1/agents/n1/assignments";
  req.query = {{"after", std::to_string(gen2)}, {"wait_ms", "1000"}};
  req.headers["authorization"] = "Bearer admintok";
  api_->Handle(std::move(req), [&](http::Response resp) { answer = std::move(resp); });
  EXPECT_FALSE(answer);
  clock_.Advance(999ms);
  api_->ExpireWaits();
  EXPECT_FALSE(answer);
  clock_.Advance(2ms);
  api_->ExpireWaits();
  ASSERT_TRUE(answer);
  EXPECT_EQ(json::parse(answer->body)["generation"], gen2);
}

// An agent's long poll asks `brief`: a wait that ends with nothing newer is answered
// "unchanged" instead of the whole list again; a change still brings the whole list.
TEST_F(ApiTest, ABriefLongPollEndsUnchangedWithoutTheList) {
  Heartbeat("n1", "fd1");
  Send("POST", "/v1/apply", kManifest);
  const int64_t gen = Body(Send("GET", "/v1/agents/n1/assignments"))["generation"];
  auto poll = [&](int64_t after, std::optional<http::Response>& answer) {
    http::Request req;
    req.method = "GET";
    req.path = "/v1/agents/n1/assignments";
    req.query = {{"after", std::to_string(after)}, {"wait_ms", "1000"}, {"brief", "true"}};
    req.headers["authorization"] = "Bearer admintok";
    api_->Handle(std::move(req), [&](http::Response resp) { answer = std::move(resp); });
  };
  std::optional<http::Response> answer;
  poll(gen, answer);
  EXPECT_FALSE(answer);
  clock_.Advance(1001ms);
  api_->ExpireWaits();
  ASSERT_TRUE(answer);
  EXPECT_EQ(json::parse(answer->body), (json{{"generation", gen}, {"unchanged", true}}));
  auto list = wire::ParseAssignments(answer->body);
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->unchanged);

  answer.reset();
  poll(gen, answer);
  ASSERT_EQ(Send("POST", "/v1/roles/web/scale", R"({"instances": 1})")->status, 200);
  ASSERT_TRUE(answer);
  EXPECT_FALSE(json::parse(answer->body).contains("unchanged"));
  EXPECT_GT(json::parse(answer->body)["generation"], gen);

  // An agent behind (after < generation) gets the list at once, brief or not.
  answer.reset();
  poll(gen, answer);
  ASSERT_TRUE(answer);
  EXPECT_TRUE(json::parse(answer->body).contains("assignments"));

  auto r = Send("GET", "/v1/agents/n1/assignments", "", "admintok", {{"brief", "yes"}});
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Body(r)["error"], "brief: 'yes' is not one of true, false");
  auto metrics = c_.MetricsText();
  EXPECT_NE(metrics.find("hafab_controller_assignment_answers_total{kind=\"unchanged\"} 1"),
            std::string::npos)
      << metrics;
}

// After a takeover, the agent's long poll names the list it runs (after, digest): the new
// controller keeps that generation when it would send the same list, and the poll waits for a
// change instead of bringing the same list under a new generation. A read token may not name one.
TEST_F(ApiTest, ANewControllerKeepsTheListAnAgentsPollNames) {
  Heartbeat("n1", "fd1");
  Send("POST", "/v1/apply", kManifest);
  auto list = wire::ParseAssignments(Send("GET", "/v1/agents/n1/assignments")->body);
  ASSERT_TRUE(list.ok());
  const std::string gen = std::to_string(list->generation);
  const std::string digest = std::to_string(wire::ContentDigest(*list));

  Controller next{store_, clock_, &provider_, ControllerOptions{}};
  ASSERT_TRUE(next.Start().ok());
  Api api{next, clock_, Tokens{"admintok", "readtok", "clusterkey"}};
  auto poll = [&](Api& to, const std::string& token, const std::string& digest,
                  std::optional<http::Response>& answer) {
    http::Request req;
    req.method = "GET";
    req.path = "/v1/agents/n1/assignments";
    req.query = {{"after", gen}, {"digest", digest}, {"wait_ms", "1000"}, {"brief", "true"}};
    req.headers["authorization"] = "Bearer " + token;
    to.Handle(std::move(req), [&](http::Response resp) { answer = std::move(resp); });
  };
  std::optional<http::Response> read, other, agent;
  poll(api, "readtok", digest, read);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->status, 403);
  EXPECT_EQ(json::parse(read->body)["error"],
            "digest: only the node's agent names the list it runs (this is a read token)");
  poll(api, "admintok", "12345", other);  // another list: the new generation's, at once
  ASSERT_TRUE(other);
  EXPECT_GT(json::parse(other->body)["generation"].get<uint64_t>(), list->generation);
  EXPECT_EQ(api.waiting(), 0u);

  Controller third{store_, clock_, &provider_, ControllerOptions{}};
  ASSERT_TRUE(third.Start().ok());
  Api api3{third, clock_, Tokens{"admintok", "readtok", "clusterkey"}};
  poll(api3, "admintok", digest, agent);
  EXPECT_FALSE(agent);  // the same list: kept, and the poll waits
  EXPECT_EQ(third.AssignmentsGeneration("n1"), static_cast<int64_t>(list->generation));
  clock_.Advance(1001ms);
  api3.ExpireWaits();
  ASSERT_TRUE(agent);
  EXPECT_EQ(json::parse(agent->body),
            (json{{"generation", list->generation}, {"unchanged", true}}));
  EXPECT_NE(third.MetricsText().find("hafab_controller_assignment_generations_adopted_total 1"),
            std::string::npos);
  // A poll without a digest (an operator's, naming any generation) keeps the list kept.
  http::Request look;
  look.method = "GET";
  look.path = "/v1/agents/n1/assignments";
  look.query = {{"after", "1"}};
  look.headers["authorization"] = "Bearer admintok";
  std::optional<http::Response> looked;
  api3.Handle(std::move(look), [&](http::Response resp) { looked = std::move(resp); });
  ASSERT_TRUE(looked);
  EXPECT_EQ(json::parse(looked->body)["generation"], list->generation);
  EXPECT_EQ(third.AssignmentsGeneration("n1"), static_cast<int64_t>(list->generation));
}

// A keep-alive names the report the controller holds; one it does not hold is refused with
// 409 and the agent sends the whole report.
TEST_F(ApiTest, AKeepAliveNamesTheReportTheControllerHolds) {
  json full = {{"node", "n1"},
               {"boot_id", "b1"},
               {"report", 41},
               {"address", "10.0.0.1"},
               {"labels", {{"fault_domain", "fd1"}}},
               {"instances", json::array()},
               {"volumes", json::array()}};
  auto keepalive = [](uint64_t same_as, const std::string& boot) {
    return json{{"node", "n1"}, {"boot_id", boot}, {"same_as", same_as}}.dump();
  };
  auto r = Send("POST", "/v1/agents/n1/heartbeat", keepalive(41, "b1"));
  EXPECT_EQ(r->status, 409);  // nothing held yet
  EXPECT_EQ(Body(r)["error"],
            "same_as: this controller does not hold report 41 of node n1; send the full report");
  ASSERT_EQ(Send("POST", "/v1/agents/n1/heartbeat", full.dump())->status, 200);
  r = Send("POST", "/v1/agents/n1/heartbeat", keepalive(41, "b1"));
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(Body(r)["lease_ttl_ms"], 1500);
  EXPECT_EQ(Send("POST", "/v1/agents/n1/heartbeat", keepalive(40, "b1"))->status, 409);
  EXPECT_EQ(Send("POST", "/v1/agents/n1/heartbeat", keepalive(41, "b2"))->status, 409);
  // The node is as the full report said: its address and fault domain stay.
  auto nodes = Body(Send("GET", "/v1/nodes"))["nodes"];
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0]["address"], "10.0.0.1");
  EXPECT_EQ(nodes[0]["fault_domain"], "fd1");
  // A keep-alive that carries a report is refused as malformed.
  json both = full;
  both["same_as"] = 41;
  r = Send("POST", "/v1/agents/n1/heartbeat", both.dump());
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Body(r)["error"], "same_as: a keep-alive carries no report, but 'report' is given");
  auto metrics = c_.MetricsText();
  EXPECT_NE(metrics.find("hafab_controller_agent_keepalives_total{result=\"held\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("hafab_controller_agent_keepalives_total{result=\"report_requested\"} 3"),
            std::string::npos)
      << metrics;
}

TEST_F(ApiTest, RoutesLongPollAndGatewayAck) {
  Heartbeat("n1", "fd1");
  Heartbeat("n2", "fd2");
  Send("POST", "/v1/apply", kManifest);
  auto routes = Body(Send("GET", "/v1/routes"));
  int64_t v = routes["version"];
  ASSERT_EQ(routes["endpoints"].size(), 1u);
  EXPECT_EQ(routes["endpoints"][0]["role"], "kvd");
  auto hb = Send("POST", "/v1/gateways/gw1/heartbeat", json{{"routes_version", v}}.dump());
  EXPECT_EQ(Body(hb)["lease_ttl_ms"], 1500);
  std::optional<http::Response> answer;
  http::Request req;
  req.method = "GET";
  req.path = "/v1/routes";
  req.query = {{"after", std::to_string(v)}, {"wait_ms", "5000"}};
  req.headers["authorization"] = "Bearer readtok";
  api_->Handle(std::move(req), [&](http::Response resp) { answer = std::move(resp); });
  EXPECT_FALSE(answer);
  ASSERT_EQ(Send("POST", "/v1/roles/kvd/failover", "{}")->status, 200);
  ASSERT_TRUE(answer);  // the fence took the primary out of rotation: a new table
  auto fenced = json::parse(answer->body);
  EXPECT_GT(fenced["version"].get<int64_t>(), v);
  // A planned switchover: the old primary hands its open connections over (no new ones) at
  // the old epoch, which moves at promote (failover_procedure.cc, Fence).
  auto backends = fenced["endpoints"][0]["backends"];
  ASSERT_EQ(backends.size(), 1u);
  EXPECT_EQ(backends[0]["handing_over"], true);
  EXPECT_EQ(backends[0]["ready"], false);
  EXPECT_EQ(fenced["endpoints"][0]["epoch"], 1);
  EXPECT_EQ(Send("POST", "/v1/roles/kvd/failover", "{}")->status, 409);
}

TEST_F(ApiTest, EventsLongPoll) {
  auto first = Body(Send("GET", "/v1/events"));
  int64_t last = first["last"];
  EXPECT_FALSE(first["events"].empty());  // controller-started
  std::optional<http::Response> answer;
  http::Request req;
  req.method = "GET";
  req.path = "/v1/events";
  req.query = {{"after", std::to_string(last)}, {"wait_ms", "5000"}};
  req.headers["authorization"] = "Bearer readtok";
  api_->Handle(std::move(req), [&](http::Response resp) { answer = std::move(resp); });
  EXPECT_FALSE(answer);
  Heartbeat("n1", "fd1");  // node-joined
  ASSERT_TRUE(answer);
  auto ev = json::parse(answer->body)["events"];
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev[0]["type"], "node-joined");
  EXPECT_GT(ev[0]["id"].get<int64_t>(), last);
}

TEST(TokensTest, CreatedOnceWithMode0600) {
  std::string dir = ::testing::TempDir() + "/tokens_test_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  auto t = LoadOrCreateTokens(dir);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->admin.size(), 64u);
  EXPECT_NE(t->admin, t->read);
  struct stat st;
  ASSERT_EQ(stat((dir + "/admin.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  auto again = LoadOrCreateTokens(dir);
  EXPECT_EQ(again->admin, t->admin);
  EXPECT_EQ(again->read, t->read);
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(TokenEquals("abc", "abc"));
  EXPECT_FALSE(TokenEquals("abc", "abd"));
  EXPECT_FALSE(TokenEquals("abc", "ab"));
}

// Names from a URL are checked at the edge (FORMAT.md's rule): nothing that is not a name is
// stored, and invalid UTF-8 cannot reach a JSON dump (it used to abort the controller).
TEST_F(ApiTest, NodeAndGatewayIdsMustBeNames) {
  const std::string bad[] = {
      "\xff\xfe", "n\x1b[31mred", "n1\nnode-down",        std::string("n\0x", 3),
      "1node",    "-n",           std::string(5000, 'n'), std::string(64, 'n')};
  for (const std::string& name : bad) {
    auto r = Send("POST", "/v1/agents/" + name + "/heartbeat", R"({"address": "127.0.0.1"})");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 400) << r->body;
    EXPECT_EQ(Body(r)["error"].get<std::string>().rfind("node: not a valid name", 0), 0u)
        << r->body;
    r = Send("POST", "/v1/gateways/" + name + "/heartbeat", R"({"routes_version": 0})");
    EXPECT_EQ(r->status, 400) << r->body;
    EXPECT_EQ(Body(r)["error"].get<std::string>().rfind("gateway: not a valid name", 0), 0u);
    EXPECT_EQ(Send("GET", "/v1/agents/" + name + "/assignments")->status, 400);
  }
  EXPECT_TRUE(Body(Send("GET", "/v1/nodes"))["nodes"].empty());
  EXPECT_TRUE(Body(Send("GET", "/v1/gateways"))["gateways"].empty());
  EXPECT_EQ(Send("POST", "/v1/agents/" + std::string(63, 'n') + "/heartbeat", "{}")->status, 200);
}

// A string the controller was handed with invalid UTF-8 (an error naming a role from the URL)
// is answered with U+FFFD in its place, never an exception.
TEST_F(ApiTest, InvalidUtf8InAnAnswerIsReplaced) {
  auto r = Send("POST", "/v1/roles/\xff/failover", "{}");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(Send("POST", "/v1/nodes/\xc3/drain")->status, 400);
}

// Integer ranges are checked as 64-bit numbers against manifest/limits.h, the limit the CLI
// and `hafab validate` use too; counts in a heartbeat are bounded.
TEST_F(ApiTest, ScaleAndHeartbeatSizesAreBounded) {
  Heartbeat("n1", "fd1");
  ASSERT_EQ(Send("POST", "/v1/apply", kManifest)->status, 200);
  for (const char* n :
       {"4294967298", "1000000000", "0", "-1", "1001", "18446744073709551615", "1e3", "\"5\""}) {
    auto r = Send("POST", "/v1/roles/web/scale", std::string(R"({"instances": )") + n + "}");
    EXPECT_EQ(r->status, 400) << n;
    EXPECT_EQ(Body(r)["error"], "instances: required, an integer from 1 to 1000") << n;
  }
  EXPECT_EQ(c_.roles().at("web").spec.instances, 2);
  EXPECT_EQ(Send("POST", "/v1/roles/web/scale", R"({"instances": 1000})")->status, 200);

  json many = json::array();
  for (int i = 0; i <= 5000; ++i) many.push_back({{"instance", "x-" + std::to_string(i)}});
  auto r = Send("POST", "/v1/agents/n1/heartbeat", Dump(json{{"instances", many}}));
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Body(r)["error"], "instances: 5001 listed; at most 5000");
}

// A manifest without roles would remove every running role: it needs remove_all=true.
TEST_F(ApiTest, ApplyingNoRolesNeedsRemoveAll) {
  ASSERT_EQ(Send("POST", "/v1/apply", kManifest)->status, 200);
  auto r = Send("POST", "/v1/apply", "{}", "admintok", {{"file", "empty.yaml"}});
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Body(r)["error"],
            "roles: empty.yaml has no roles; applying it would remove all 2 running roles (pass "
            "remove_all=true, hafab apply --remove-all, to do that)");
  EXPECT_EQ(c_.roles().size(), 2u);
  r = Send("POST", "/v1/apply", "{}", "admintok", {{"remove_all", "true"}});
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(c_.roles().empty());
}

// The listener's header check: the token before the body, and a body limit per endpoint.
TEST(AdmitRequestTest, ChecksTheTokenAndBoundsTheBodyFromTheHeader) {
  Tokens tokens{"admintok", "readtok", "clusterkey"};
  auto head = [](std::string method, std::string path, std::string token) {
    http::Request r;
    r.method = std::move(method);
    r.path = std::move(path);
    if (!token.empty()) r.headers["authorization"] = "Bearer " + token;
    return r;
  };
  http::Admission a = AdmitRequest(tokens, head("POST", "/v1/apply", ""));
  ASSERT_TRUE(a.refuse.has_value());
  EXPECT_EQ(a.refuse->status, 401);
  a = AdmitRequest(tokens, head("POST", "/v1/apply", "readtok"));
  ASSERT_TRUE(a.refuse.has_value());
  EXPECT_EQ(a.refuse->status, 403);
  a = AdmitRequest(tokens, head("POST", "/v1/apply", "admintok"));
  EXPECT_FALSE(a.refuse.has_value());
  EXPECT_EQ(a.body_limit, manifest::kMaxManifestBytes);
  EXPECT_EQ(AdmitRequest(tokens, head("POST", "/v1/agents/n1/heartbeat", "admintok")).body_limit,
            kMaxHeartbeatBytes);
  EXPECT_EQ(AdmitRequest(tokens, head("POST", "/v1/roles/web/scale", "admintok")).body_limit,
            kMaxOtherBodyBytes);
  EXPECT_FALSE(AdmitRequest(tokens, head("GET", "/v1/status", "readtok")).refuse.has_value());
}

}  // namespace
}  // namespace hafab::controller
