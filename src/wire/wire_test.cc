#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "core/json.h"
#include "wire/agent_heartbeat.h"
#include "wire/assignments.h"
#include "wire/gateway_heartbeat.h"
#include "wire/replica.h"
#include "wire/routes.h"
#include "wire/states.h"

namespace hafab::wire {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

AgentHeartbeat Example() {
  AgentHeartbeat hb;
  hb.node = "n1";
  hb.address = "127.0.0.1";
  hb.agent_version = "0.1.0";
  hb.boot_id = "b";
  hb.labels = {{"fault_domain", "fd1"}};
  hb.assignments_generation = 12;
  InstanceReport r;
  r.instance = "kvd-0";
  r.role = "kvd";
  r.epoch = 3;
  r.run = true;
  r.state = InstanceState::kRunning;
  r.pid = 4242;
  r.liveness = Liveness::kOk;
  r.readiness = Readiness::kBusy;
  r.restarts = 2;
  r.last_exit = "exit 1";
  r.cpu_percent = 1.5;
  r.rss_bytes = 1048576;
  hb.instances = {r};
  hb.volumes = {{"kvd-data", VolumeState::kDetaching, "kvd-0", "still held by pid 7"}};
  hb.fence = FenceReport{"lease expired", WallTime(std::chrono::seconds(10)), {"kvd-0"}};
  hb.resource_limits = "cgroup v2";
  hb.ring = {{"n2", true}, {"n3", false}};
  hb.ring_endpoint = RingEndpoint{40001, 12, 11, 3};
  return hb;
}

TEST(AgentHeartbeatTest, BodyFollowsTheProtocol) {
  json j = ToJson(Example());
  EXPECT_EQ(j["node"], "n1");
  EXPECT_EQ(j["assignments_generation"], 12);
  EXPECT_EQ(j["labels"]["fault_domain"], "fd1");
  const json& i = j["instances"][0];
  EXPECT_EQ(i["state"], "running");
  EXPECT_EQ(i["liveness"], "ok");
  EXPECT_EQ(i["readiness"], "busy");
  EXPECT_EQ(i["pid"], 4242);
  EXPECT_EQ(i["epoch"], 3);
  EXPECT_EQ(i["rss_bytes"], 1048576);
  EXPECT_EQ(j["volumes"][0]["state"], "detaching");
  EXPECT_EQ(j["volumes"][0]["error"], "still held by pid 7");
  EXPECT_EQ(j["fence"]["killed"][0], "kvd-0");
  EXPECT_EQ(j["fence"]["at_unix_ms"], 10000);
}

TEST(AgentHeartbeatTest, RoundTrips) {
  AgentHeartbeat in = Example();
  auto out = ParseAgentHeartbeat(json::parse(Dump(ToJson(in))));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->node, in.node);
  EXPECT_EQ(out->labels, in.labels);
  EXPECT_EQ(out->assignments_generation, 12u);
  EXPECT_EQ(out->resource_limits, "cgroup v2");
  ASSERT_EQ(out->instances.size(), 1u);
  const InstanceReport& r = out->instances[0];
  EXPECT_EQ(r.instance, "kvd-0");
  EXPECT_EQ(r.epoch, 3u);
  EXPECT_TRUE(r.run);
  EXPECT_EQ(r.state, InstanceState::kRunning);
  EXPECT_EQ(r.readiness, Readiness::kBusy);
  EXPECT_EQ(r.restarts, 2);
  EXPECT_EQ(r.last_exit, "exit 1");
  EXPECT_DOUBLE_EQ(r.cpu_percent, 1.5);
  ASSERT_EQ(out->volumes.size(), 1u);
  EXPECT_EQ(out->volumes[0].state, VolumeState::kDetaching);
  EXPECT_EQ(out->volumes[0].error, "still held by pid 7");
  ASSERT_TRUE(out->fence.has_value());
  EXPECT_EQ(out->fence->at, in.fence->at);
  EXPECT_EQ(out->fence->killed, in.fence->killed);
  EXPECT_EQ(out->ring, in.ring);
  EXPECT_EQ(out->ring_endpoint, in.ring_endpoint);
}

TEST(AgentHeartbeatTest, AKeepAliveCarriesNoReport) {
  AgentHeartbeat full = Example();
  full.report = 77;
  auto parsed = ParseAgentHeartbeat(json::parse(Dump(ToJson(full))));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->report, 77u);
  EXPECT_EQ(parsed->same_as, 0u);

  AgentHeartbeat keepalive = Example();  // what a keep-alive's report holds is not written
  keepalive.same_as = 77;
  const json j = ToJson(keepalive);
  for (const char* member : {"report", "address", "agent_version", "labels",
                             "assignments_generation", "instances", "volumes", "resource_limits"}) {
    EXPECT_FALSE(j.contains(member)) << member;
  }
  auto out = ParseAgentHeartbeat(j);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->same_as, 77u);
  EXPECT_EQ(out->node, keepalive.node);
  EXPECT_EQ(out->boot_id, keepalive.boot_id);
  EXPECT_TRUE(out->instances.empty());
  EXPECT_EQ(out->ring, keepalive.ring);
  EXPECT_EQ(out->ring_endpoint, keepalive.ring_endpoint);
  ASSERT_TRUE(out->fence.has_value());

  json both = j;
  both["instances"] = json::array();
  EXPECT_EQ(ParseAgentHeartbeat(both).status().message(),
            "same_as: a keep-alive carries no report, but 'instances' is given");
  both = j;
  both["same_as"] = "x";
  EXPECT_FALSE(ParseAgentHeartbeat(both).ok());
}

TEST(AgentHeartbeatTest, MissingMembersTakeTheirDefaults) {
  auto hb = ParseAgentHeartbeat(json::parse(R"({"instances": [{"instance": "a-0"}]})"));
  ASSERT_TRUE(hb.ok()) << hb.status().ToString();
  EXPECT_EQ(hb->instances[0].state, InstanceState::kStopped);
  EXPECT_EQ(hb->instances[0].readiness, Readiness::kUnknown);
  EXPECT_TRUE(hb->volumes.empty());
  EXPECT_FALSE(hb->fence.has_value());
}

// Each bad body is refused with the member it names.
TEST(AgentHeartbeatTest, ErrorsNameTheMember) {
  struct Case {
    const char* body;
    const char* error;
  };
  const Case cases[] = {
      {R"([])", "body: must be a JSON object"},
      {R"({"address": 7})", "address: must be a string"},
      {R"({"assignments_generation": -1})", "assignments_generation: must be between 0"},
      {R"({"assignments_generation": 18446744073709551615})",
       "assignments_generation: must be between 0"},
      {R"({"labels": {"fault_domain": 1}})", "labels.fault_domain: must be a string"},
      {R"({"instances": {}})", "instances: must be an array"},
      {R"({"instances": [7]})", "instances[0]: must be an object"},
      {R"({"instances": [{"role": "a"}]})", "instances[0].instance: required"},
      {R"({"instances": [{"instance": "a-0", "state": "asleep"}]})",
       "instances[0].state: 'asleep' is not one of starting, running, stopping, stopped, "
       "backoff, failed"},
      {R"({"instances": [{"instance": "a-0", "readiness": 1}]})",
       "instances[0].readiness: must be a string"},
      {R"({"instances": [{"instance": "a-0", "restarts": 4294967296}]})",
       "instances[0].restarts: must be between"},
      {R"({"instances": [{"instance": "a-0", "pid": -4}]})", "instances[0].pid: must be between 0"},
      {R"({"volumes": [{"name": "v", "state": "gone"}]})",
       "volumes[0].state: 'gone' is not one of attached, detaching, detached"},
      {R"({"fence": {"killed": [1]}})", "fence.killed[0]: must be a string"},
      // Beyond a WallTime's nanoseconds (year 2262): the conversion would overflow.
      {R"({"fence": {"at_unix_ms": 9223372036855}})",
       "fence.at_unix_ms: must be between 0 and 9223372036854"},
      {R"({"ring": [{"about": "n2", "suspect": "yes"}]})",
       "ring[0].suspect: must be true or false"},
      {R"({"ring": [7]})", "ring[0]: must be an object"},
      {R"({"ring_endpoint": {"port": 70000}})", "ring_endpoint.port: must be between 0 and 65535"},
      {R"({"ring_endpoint": 1})", "ring_endpoint: must be an object"},
  };
  for (const Case& c : cases) {
    auto hb = ParseAgentHeartbeat(json::parse(c.body));
    ASSERT_FALSE(hb.ok()) << c.body;
    EXPECT_EQ(hb.status().code(), StatusCode::kInvalidArgument) << c.body;
    EXPECT_NE(hb.status().message().find(c.error), std::string::npos)
        << c.body << " -> " << hb.status().message();
  }
}

TEST(AgentHeartbeatTest, RefusesMoreInstancesThanAClusterHolds) {
  json body = {{"instances", json::array()}};
  for (int i = 0; i < 5001; ++i) body["instances"].push_back({{"instance", "a"}});
  auto hb = ParseAgentHeartbeat(body);
  ASSERT_FALSE(hb.ok());
  EXPECT_NE(hb.status().message().find("instances: 5001 listed; at most 5000"), std::string::npos);
}

TEST(HeartbeatAnswerTest, RoundTripsAndRefusesGarbage) {
  auto a = ParseHeartbeatAnswer(
      Dump(ToJson(HeartbeatAnswer{milliseconds(900), 13, std::nullopt, std::nullopt})));
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->keepalive.has_value());
  auto k = ParseHeartbeatAnswer(
      Dump(ToJson(HeartbeatAnswer{milliseconds(900), 13, std::nullopt, milliseconds(2000)})));
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->keepalive, milliseconds(2000));
  EXPECT_EQ(ParseHeartbeatAnswer(R"({"lease_ttl_ms": 900, "keepalive_ms": 0})").status().message(),
            "keepalive_ms: must be between 1 and 3600000");
  EXPECT_EQ(a->lease_ttl, milliseconds(900));
  EXPECT_EQ(a->assignments_generation, 13u);
  EXPECT_FALSE(ParseHeartbeatAnswer("not json").ok());
  EXPECT_FALSE(ParseHeartbeatAnswer(R"({"lease_ttl_ms": 0})").ok());
  // A lease no controller grants (manifest::kMaxLeaseTtl), whose deadline would overflow.
  EXPECT_EQ(ParseHeartbeatAnswer(R"({"lease_ttl_ms": 3600000})")->lease_ttl, std::chrono::hours(1));
  EXPECT_EQ(ParseHeartbeatAnswer(R"({"lease_ttl_ms": 9223372036854775807})").status().message(),
            "lease_ttl_ms: must be between 1 and 3600000");
  EXPECT_FALSE(a->lease.has_value());
  // A gateway's answer carries what is left of its lease.
  HeartbeatAnswer g{milliseconds(1500), 0, milliseconds(0), std::nullopt};
  auto b = ParseHeartbeatAnswer(Dump(ToJson(g)));
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b->lease.has_value());
  EXPECT_EQ(*b->lease, milliseconds(0));
  EXPECT_FALSE(ParseHeartbeatAnswer(R"({"lease_ttl_ms": 900, "lease_ms": -1})").ok());
  EXPECT_FALSE(
      ParseHeartbeatAnswer(R"({"lease_ttl_ms": 900, "lease_ms": 9223372036854775807})").ok());
}

TEST(GatewayHeartbeatTest, RoundTripsAndNamesBadMembers) {
  GatewayHeartbeat in;
  in.routes_version = 27;
  in.active = {{"web-0", 3}, {"web-1", 0}};
  auto out = ParseGatewayHeartbeat(json::parse(Dump(ToJson(in))));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->routes_version, 27u);
  EXPECT_EQ(out->active, in.active);
  EXPECT_EQ(ParseGatewayHeartbeat(json::parse(R"({"active": {"web-0": -1}})")).status().message(),
            "active.web-0: must be between 0 and 9223372036854775807");
  EXPECT_EQ(ParseGatewayHeartbeat(json::parse(R"({"routes_version": "7"})")).status().message(),
            "routes_version: must be an integer");
  EXPECT_TRUE(ParseGatewayHeartbeat(json::parse(R"({"routes_version": 0})")).ok());
}

TEST(RoutesTest, RoundTripsWithTheAllowListsThreeStates) {
  Routes in;
  in.version = 17;
  RouteEndpoint& kvd = in.endpoints.emplace_back();
  kvd.role = "kvd";
  kvd.mode = RoutingMode::kActivePassive;
  kvd.listen = "127.0.0.1:7000";
  kvd.allow = std::vector<std::string>{"127.0.0.0/8"};
  kvd.epoch = 3;
  RouteBackend b;
  b.instance = "kvd-0";
  b.node = "n1";
  b.address = "127.0.0.1";
  b.port = 7101;
  b.epoch = 3;
  b.ready = true;
  kvd.backends = {b};
  b.instance = "kvd-1";
  b.ready = false;
  b.handing_over = true;
  kvd.backends.push_back(b);
  RouteEndpoint& closed = in.endpoints.emplace_back();
  closed.role = "closed";
  closed.listen = "127.0.0.1:7001";
  closed.allow = std::vector<std::string>{};  // nobody
  RouteEndpoint& open = in.endpoints.emplace_back();
  open.role = "open";
  open.listen = "127.0.0.1:7002";  // no allow list: everybody

  json j = ToJson(in);
  EXPECT_FALSE(j["endpoints"][0]["backends"][0].contains("handing_over"));
  EXPECT_EQ(j["endpoints"][1]["allow"], json::array());
  EXPECT_FALSE(j["endpoints"][2].contains("allow"));
  auto out = ParseRoutes(json::parse(Dump(j)));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->version, 17);
  EXPECT_EQ(out->endpoints, in.endpoints);
}

TEST(RoutesTest, ErrorsNameTheMember) {
  EXPECT_EQ(ParseRoutes(json::parse(R"({"endpoints": []})")).status().message(),
            "version: required");
  EXPECT_EQ(ParseRoutes(json::parse(R"({"version": 1, "endpoints": [{"role": "a",
                 "mode": "primary", "listen": "x"}]})"))
                .status()
                .message(),
            "endpoints[0].mode: 'primary' is not one of active-passive, load-balanced");
  EXPECT_EQ(ParseRoutes(json::parse(R"({"version": 1, "endpoints": [{"role": "a",
                 "mode": "load-balanced", "listen": "x", "backends": [{"instance": "a-0",
                 "address": "127.0.0.1", "port": 70000}]}]})"))
                .status()
                .message(),
            "endpoints[0].backends[0].port: must be between 1 and 65535");
  EXPECT_EQ(ParseRoutes(json::parse(R"({"version": 1, "endpoints": [{"role": "a",
                 "mode": "load-balanced", "listen": "x", "allow": "10.0.0.0/8"}]})"))
                .status()
                .message(),
            "endpoints[0].allow: must be an array");
}

AssignmentList ExampleAssignments() {
  Assignment kvd;
  kvd.instance = "kvd-0";
  kvd.role = "kvd";
  kvd.mode = manifest::RoleMode::kActivePassive;
  kvd.epoch = 3;
  kvd.command = "/path/kvd";
  kvd.args = {"--data", "/d"};
  kvd.env = {{"K", "V"}};
  kvd.port = 7101;
  kvd.volume = "kvd-data";
  kvd.spec_hash = "abc";
  kvd.stop_grace = milliseconds(2500);
  kvd.drain = manifest::DrainHook{{"kvd-ctl", "drain"}, milliseconds(3000)};
  manifest::Probe p;
  p.kind = manifest::ProbeKind::kExec;
  p.command = {"check"};
  p.failover_after = milliseconds(700);
  kvd.probes.readiness = p;
  kvd.restart.policy = manifest::RestartPolicy::kOnFailure;
  kvd.restart.window = milliseconds(30000);
  kvd.resources = {0.5, 268435456};
  kvd.prior_restarts = 2;
  kvd.user = "app";
  kvd.group = "apps";
  Assignment web;
  web.instance = "web-0";
  web.role = "web";
  web.run = false;
  web.command = "/path/web";
  web.probes.liveness = manifest::Probe{};
  return {13, {kvd, web}, {{"n2", "10.0.0.2:7946"}, {"n5", "10.0.0.5:7946"}}, "5ecret"};
}

TEST(AssignmentsTest, RoundTrips) {
  AssignmentList in = ExampleAssignments();
  auto out = ParseAssignments(Dump(ToJson(in)));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out, in);
  // One assignment alone, as the agent keeps it in its pid files.
  auto one = ParseAssignment(Dump(ToJson(in.assignments[0])));
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(*one, in.assignments[0]);
}

TEST(AssignmentsTest, BodyFollowsTheProtocol) {
  json j = ToJson(ExampleAssignments());
  EXPECT_EQ(j["generation"], 13);
  const json& kvd = j["assignments"][0];
  EXPECT_EQ(kvd["mode"], "active-passive");
  EXPECT_EQ(kvd["stop_grace_ms"], 2500);
  EXPECT_EQ(kvd["drain"], json({{"command", {"kvd-ctl", "drain"}}, {"timeout_ms", 3000}}));
  EXPECT_EQ(kvd["probes"]["liveness"], nullptr);
  EXPECT_EQ(kvd["probes"]["readiness"]["kind"], "exec");
  EXPECT_EQ(kvd["probes"]["readiness"]["failover_after_ms"], 700);
  EXPECT_EQ(kvd["restart"]["policy"], "on-failure");
  EXPECT_EQ(kvd["resources"]["memory_bytes"], 268435456);
  EXPECT_EQ(kvd["prior_restarts"], 2);
  // Optional members appear only when set.
  const json& web = j["assignments"][1];
  for (const char* key : {"volume", "user", "group", "prior_restarts", "drain"}) {
    EXPECT_FALSE(web.contains(key)) << key;
  }
}

TEST(AssignmentsTest, AbsentMembersTakeDefaultsAndUnknownOnesAreIgnored) {
  auto out = ParseAssignments(R"({"assignments": [{"instance": "w-0",
      "command": "w", "probes": {"liveness": {"interval_ms": 100, "failure_threshold": 0}},
      "a_member_from_the_future": {"x": 1}}]})");
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->generation, 0u);
  const Assignment& a = out->assignments.at(0);
  EXPECT_TRUE(a.run);
  EXPECT_EQ(a.mode, manifest::RoleMode::kLoadBalanced);
  EXPECT_EQ(a.stop_grace, std::chrono::seconds(5));
  EXPECT_EQ(a.restart, manifest::Restart{});
  ASSERT_TRUE(a.probes.liveness.has_value());
  EXPECT_EQ(a.probes.liveness->failure_threshold, 1);  // at least one
  // Not written: two intervals after the threshold, of this probe's interval.
  EXPECT_EQ(a.probes.liveness->failover_after, milliseconds(300));
}

TEST(AssignmentsTest, ErrorsNameTheAssignmentAndTheMember) {
  auto message = [](const char* text) { return ParseAssignments(text).status().message(); };
  EXPECT_EQ(message(R"({"assignments": [{"instance": "x-0", "command": "c"},
                {"instance": "y-0", "command": "c", "probes": {"liveness": {"kind": "udp"}}}]})"),
            "assignments[1] (instance y-0): probes.liveness.kind: 'udp' is not one of tcp, http, "
            "exec");
  EXPECT_EQ(message(R"({"assignments": [{"instance": "x-0", "command": "c",
                       "drain": {"command": []}}]})"),
            "assignments[0] (instance x-0): drain.command: must not be empty");
  EXPECT_EQ(message(R"({"assignments": [{"instance": "x-0"}]})"),
            "assignments[0] (instance x-0): command: must not be empty");
  EXPECT_EQ(message(R"({"assignments": [{"instance": "../etc", "command": "c"}]})"),
            "assignments[0] (instance ../etc): instance: must be a plain name, not '../etc'");
  EXPECT_EQ(message(R"({"assignments": [{"command": "c"}]})"),
            "assignments[0]: instance: must be a plain name, not ''");
  EXPECT_EQ(message(R"({"assignments": [{"instance": "x-0", "command": "c",
                       "restart": {"window_ms": -1}}]})"),
            "assignments[0] (instance x-0): restart.window_ms: must be between 0 and "
            "315360000000");
  EXPECT_EQ(message(R"({"assignments": [{"instance": "x-0", "command": "c", "mode": "x"}]})"),
            "assignments[0] (instance x-0): mode: 'x' is not one of active-passive, "
            "load-balanced, replicated");
  EXPECT_EQ(message(R"({"assignments": {}})"), "assignments: must be an array");
  EXPECT_EQ(message("[]"), "assignments: not a JSON object");
  EXPECT_EQ(message("{"), "assignments: not a JSON object");
  EXPECT_EQ(message(R"({"assignments": [7]})"), "assignments[0]: not a JSON object");
  EXPECT_EQ(
      ParseAssignment(R"({"instance": "x-0", "command": "c", "port": "80"})").status().message(),
      "assignment (instance x-0): port: must be an integer");
}

ReplicaConfig ExampleConfig() {
  ReplicaConfig c;
  c.instance = "kv-1";
  c.role = ReplicaRole::kSecondary;
  c.epoch = 7;
  c.quorum = 2;
  c.primary = ReplicaMember{"kv-0", "10.0.0.1:7101", ReplicaRole::kPrimary};
  c.replicas = {{"kv-0", "10.0.0.1:7101", ReplicaRole::kPrimary},
                {"kv-1", "10.0.0.2:7101", ReplicaRole::kSecondary},
                {"kv-2", "10.0.0.3:7101", ReplicaRole::kBuilding}};
  return c;
}

// "/assignments/0/probes/liveness/kind" -> "probes".
std::string Member(const std::string& pointer) {
  const size_t index = pointer.find('/', 1);
  const size_t begin = pointer.find('/', index + 1) + 1;
  const size_t end = pointer.find('/', begin);
  return pointer.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

// The digest stands for everything the list carries to the agent but its generation: a value
// changed anywhere in the list's JSON changes it, but in the members spec_hash stands for
// (which change spec_hash). A member added to the wire and left out of ContentDigest fails here.
TEST(AssignmentsTest, ContentDigestCoversEveryMemberButWhatSpecHashStandsFor) {
  AssignmentList list = ExampleAssignments();
  list.assignments[0].replica = ExampleConfig();
  list.assignments[0].replica_hook = "/opt/kv/hook";
  const uint64_t digest = ContentDigest(list);
  EXPECT_NE(digest, 0u);
  EXPECT_LE(digest, static_cast<uint64_t>(INT64_MAX));  // a JSON integer every reader takes
  auto parsed = ParseAssignments(Dump(ToJson(list)));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(ContentDigest(*parsed), digest);  // what the agent parsed: the same digest
  list.generation = 99;
  EXPECT_EQ(ContentDigest(list), digest);

  const std::set<std::string> hashed = {"command", "args",      "env",  "port", "probes",
                                        "restart", "resources", "user", "group"};
  const std::vector<std::string> names = {"active-passive", "load-balanced", "replicated",
                                          "primary",        "secondary",     "building"};
  const json whole = ToJson(list);
  int checked = 0;
  const json leaves = whole.flatten();
  for (const auto& [pointer, leaf] : leaves.items()) {
    if (pointer == "/generation") continue;
    if (pointer.starts_with("/assignments/") && hashed.count(Member(pointer))) continue;
    std::vector<json> others;
    if (leaf.is_string()) {
      others.push_back(leaf.get<std::string>() + "x");
      for (const auto& n : names) {
        if (n != leaf) others.push_back(n);
      }
    } else if (leaf.is_boolean()) {
      others.push_back(!leaf.get<bool>());
    } else if (leaf.is_number_integer()) {
      others.push_back(leaf.get<int64_t>() + 1);
    }
    bool changed = false;
    for (const json& other : others) {
      json j = whole;
      j[json::json_pointer(pointer)] = other;
      auto m = ParseAssignments(Dump(j));
      if (!m.ok()) continue;  // not a value this member takes
      EXPECT_NE(ContentDigest(*m), digest) << pointer << " = " << other;
      changed = true;
      break;
    }
    EXPECT_TRUE(changed) << pointer << ": no other value of it parses";
    ++checked;
  }
  EXPECT_GE(checked, 30);
  // And the number of assignments and peers.
  list.assignments.pop_back();
  EXPECT_NE(ContentDigest(list), digest);
  list = ExampleAssignments();
  list.ring.pop_back();
  EXPECT_NE(ContentDigest(list), ContentDigest(ExampleAssignments()));
}

TEST(ReplicaTest, ConfigurationFollowsTheContractAndRoundTrips) {
  const ReplicaConfig c = ExampleConfig();
  json j = ToJson(c);
  EXPECT_EQ(j["role"], "secondary");
  EXPECT_EQ(j["primary"], json({{"instance", "kv-0"}, {"address", "10.0.0.1:7101"}}));
  EXPECT_EQ(j["replicas"][2]["role"], "building");
  auto back = ParseReplicaConfig(json::parse(Dump(j)));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, c);

  // In an assignment, outside spec_hash; and in the environment at start.
  AssignmentList list = ExampleAssignments();
  list.assignments[0].replica = c;
  list.assignments[0].replica_hook = "/opt/kv/hook";
  auto parsed = ParseAssignments(Dump(ToJson(list)));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, list);
  auto env = ReplicaEnvironment(c);
  EXPECT_EQ(env.at("HAFAB_REPLICA_ROLE"), "secondary");
  EXPECT_EQ(env.at("HAFAB_REPLICA_EPOCH"), "7");
  EXPECT_EQ(env.at("HAFAB_REPLICA_QUORUM"), "2");
  EXPECT_EQ(env.at("HAFAB_REPLICA_PRIMARY"), "10.0.0.1:7101");
  EXPECT_EQ(env.at("HAFAB_REPLICA_PEERS"), "10.0.0.1:7101,10.0.0.3:7101");
  EXPECT_EQ(json::parse(env.at("HAFAB_REPLICA_CONFIG")), j);
}

TEST(ReplicaTest, StatusRoundTripsInTheHeartbeatAndPositionsCompare) {
  AgentHeartbeat hb = Example();
  hb.instances[0].replica = ReplicaStatus{ReplicaRole::kPrimary, 7, {7, 1234}, "streaming", ""};
  auto out = ParseAgentHeartbeat(json::parse(Dump(ToJson(hb))));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->instances[0].replica, hb.instances[0].replica);
  EXPECT_LT((Position{6, 9000}), (Position{7, 1}));
  EXPECT_LT((Position{7, 1}), (Position{7, 2}));
}

TEST(ReplicaTest, ErrorsNameTheMember) {
  auto no_quorum = ParseReplicaConfig(json::parse(R"({"instance": "a", "role": "primary",
                                                       "epoch": 1})"));
  ASSERT_FALSE(no_quorum.ok());
  EXPECT_EQ(no_quorum.status().message(), "quorum: required");
  const std::string required = R"("instance": "a", "epoch": 1, "quorum": 2)";
  auto bad_role = ParseReplicaConfig(json::parse("{" + required + R"(, "role": "leader"})"));
  ASSERT_FALSE(bad_role.ok());
  EXPECT_EQ(bad_role.status().message(),
            "role: 'leader' is not one of primary, secondary, building");
  auto bad_member = ParseReplicaConfig(
      json::parse("{" + required + R"(, "role": "primary", "replicas": [{"instance": "a"}, {}]})"));
  ASSERT_FALSE(bad_member.ok());
  EXPECT_EQ(bad_member.status().message(), "replicas[1].instance: required");
  auto bad_position = ParseReplicaStatus(json::parse(R"({"position": {"index": -1}})"));
  ASSERT_FALSE(bad_position.ok());
  EXPECT_NE(bad_position.status().message().find("position.index"), std::string::npos);
  auto in_heartbeat = ParseAgentHeartbeat(
      json::parse(R"({"instances": [{"instance": "a-0", "replica": {"epoch": "x"}}]})"));
  ASSERT_FALSE(in_heartbeat.ok());
  EXPECT_NE(in_heartbeat.status().message().find("instances[0].replica.epoch"), std::string::npos);
  auto in_assignment = ParseAssignments(
      R"({"generation": 1, "assignments": [{"instance": "a-0", "command": "x",
          "replica": {"instance": "a-0", "role": "primary", "epoch": 1, "quorum": 0}}]})");
  ASSERT_FALSE(in_assignment.ok());
  EXPECT_NE(in_assignment.status().message().find("replica.quorum"), std::string::npos);
}

TEST(StatesTest, NamesParseBack) {
  for (auto s : {InstanceState::kStarting, InstanceState::kRunning, InstanceState::kStopping,
                 InstanceState::kStopped, InstanceState::kBackoff, InstanceState::kFailed}) {
    EXPECT_EQ(ParseInstanceState(InstanceStateName(s)), s);
  }
  for (auto r : {Readiness::kUnknown, Readiness::kReady, Readiness::kBusy, Readiness::kFailed}) {
    EXPECT_EQ(ParseReadiness(ReadinessName(r)), r);
  }
  for (auto l : {Liveness::kUnknown, Liveness::kOk, Liveness::kFailing, Liveness::kFailed}) {
    EXPECT_EQ(ParseLiveness(LivenessName(l)), l);
  }
  for (auto v : {VolumeState::kAttached, VolumeState::kDetaching, VolumeState::kDetached}) {
    EXPECT_EQ(ParseVolumeState(VolumeStateName(v)), v);
  }
  for (auto k : {OpKind::kFailover, OpKind::kRollout}) EXPECT_EQ(ParseOpKind(OpKindName(k)), k);
  for (auto o : {OpState::kRunning, OpState::kDone, OpState::kFailed}) {
    EXPECT_EQ(ParseOpState(OpStateName(o)), o);
  }
  for (auto d : {DomainState::kPending, DomainState::kDraining, DomainState::kStopping,
                 DomainState::kStarting, DomainState::kDone}) {
    EXPECT_EQ(ParseDomainState(DomainStateName(d)), d);
  }
  EXPECT_FALSE(ParseReadiness("Ready").has_value());
  EXPECT_EQ(OpStateNames(), "running, done, failed");
}

}  // namespace
}  // namespace hafab::wire
