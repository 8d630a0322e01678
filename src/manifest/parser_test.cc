// Reading manifests: shapes, types, defaults, and the exact text of every reading error.
#include "manifest/parser.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "manifest/test_helpers.h"

namespace hafab::manifest {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::string WithRole(std::string_view extra_lines) {
  return std::string(kOneRole) + std::string(extra_lines);
}

TEST(ParseTest, MinimalManifestHasDefaults) {
  ParseOutcome out = ParseManifest(kOneRole, "m.yaml");
  ASSERT_TRUE(out.ok());
  EXPECT_THAT(out.diagnostics, IsEmpty());
  const Manifest& m = *out.manifest;
  EXPECT_EQ(m.cluster, "hafab");
  EXPECT_EQ(m.settings.heartbeat_interval, 200ms);
  EXPECT_EQ(m.settings.lease_ttl, 1000ms);
  EXPECT_EQ(m.settings.failure_detector, FailureDetector::kStar);
  EXPECT_TRUE(m.nodes.empty());
  ASSERT_EQ(m.roles.size(), 1u);
  const Role& r = m.roles[0];
  EXPECT_EQ(r.name, "web");
  EXPECT_EQ(r.command, "web-app");
  EXPECT_EQ(r.mode, RoleMode::kLoadBalanced);
  EXPECT_EQ(r.instances, 1);
  EXPECT_FALSE(r.autoscale);
  EXPECT_FALSE(r.endpoint);
  EXPECT_EQ(r.pos.ToString(), "m.yaml:2:5");
}

TEST(ParseTest, ReadsEveryField) {
  ParseOutcome out = ParseManifest(R"(cluster: prod
settings: {heartbeat_interval: 100ms, lease_ttl: 1s, api_listen: "0.0.0.0:8400",
           failure_detector: ring}
nodes:
  - {name: a, fault_domain: rack1, update_domain: ud1, address: 10.0.0.1, capacity: 4}
  - {name: b}
roles:
  - name: db
    mode: active-passive
    command: /usr/bin/db
    args: [--data, /var/db]
    env: {LOG: debug, N: 3}
    instances: 3
    port: 5432
    endpoint: {listen: "0.0.0.0:5000", allow: [10.0.0.0/8, api]}
    volume: db-data
    probes:
      liveness: {kind: exec, command: [db-check, -q], interval: 1s, timeout: 500ms,
                 failure_threshold: 5, success_threshold: 2}
      readiness: {kind: http, path: /ready}
    restart: {policy: on-failure, max_restarts: 5, window: 2m, backoff_initial: 0s,
              backoff_max: 30s}
    resources: {cpu: 1.5, memory: 2Gi}
    update: {max_unavailable_domains: 2, ready_timeout: 1m}
    stop_grace: 10s
    version: "1.10"
  - name: api
    command: api
    min: 2
    max: 10
    autoscale: {metric: connections, target: 200, stabilization: 1m, cooldown: 45s}
)",
                                   "m.yaml");
  ASSERT_TRUE(out.ok()) << out.diagnostics[0].ToString();
  const Manifest& m = *out.manifest;
  EXPECT_EQ(m.cluster, "prod");
  EXPECT_EQ(m.settings.heartbeat_interval, 100ms);
  EXPECT_EQ(m.settings.lease_ttl, 1s);
  EXPECT_EQ(m.settings.api_listen, "0.0.0.0:8400");
  EXPECT_EQ(m.settings.failure_detector, FailureDetector::kRing);
  ASSERT_EQ(m.nodes.size(), 2u);
  EXPECT_EQ(m.nodes[0].fault_domain, "rack1");
  EXPECT_EQ(m.nodes[0].address, "10.0.0.1");
  EXPECT_EQ(m.nodes[0].capacity, 4);
  EXPECT_EQ(m.nodes[1].fault_domain, "b");  // a node without labels is its own domain
  EXPECT_EQ(m.nodes[1].update_domain, "b");
  EXPECT_EQ(m.nodes[1].address, "127.0.0.1");
  const Role& db = m.roles[0];
  EXPECT_EQ(db.mode, RoleMode::kActivePassive);
  EXPECT_THAT(db.args, ElementsAre("--data", "/var/db"));
  EXPECT_EQ(db.env.at("N"), "3");
  EXPECT_EQ(db.instances, 3);
  EXPECT_EQ(db.port, 5432);
  EXPECT_EQ(db.endpoint->listen, "0.0.0.0:5000");
  EXPECT_THAT(db.endpoint->allow, ElementsAre("10.0.0.0/8", "api"));
  EXPECT_EQ(db.volume, "db-data");
  ASSERT_TRUE(db.probes.liveness);
  EXPECT_EQ(db.probes.liveness->kind, ProbeKind::kExec);
  EXPECT_THAT(db.probes.liveness->command, ElementsAre("db-check", "-q"));
  EXPECT_EQ(db.probes.liveness->interval, 1s);
  EXPECT_EQ(db.probes.liveness->timeout, 500ms);
  EXPECT_EQ(db.probes.liveness->failure_threshold, 5);
  EXPECT_EQ(db.probes.liveness->success_threshold, 2);
  EXPECT_EQ(db.probes.readiness->kind, ProbeKind::kHttp);
  EXPECT_EQ(db.probes.readiness->path, "/ready");
  EXPECT_EQ(db.restart.policy, RestartPolicy::kOnFailure);
  EXPECT_EQ(db.restart.max_restarts, 5);
  EXPECT_EQ(db.restart.window, 2min);
  EXPECT_EQ(db.restart.backoff_initial, 0s);
  EXPECT_EQ(db.restart.backoff_max, 30s);
  EXPECT_EQ(db.resources.cpu, 1.5);
  EXPECT_EQ(db.resources.memory_bytes, 2ULL << 30);
  EXPECT_EQ(db.update.max_unavailable_domains, 2);
  EXPECT_EQ(db.update.ready_timeout, 1min);
  EXPECT_EQ(db.stop_grace, 10s);
  EXPECT_EQ(db.version, "1.10");
  const Role& api = m.roles[1];
  ASSERT_TRUE(api.autoscale);
  EXPECT_EQ(api.autoscale->min, 2);
  EXPECT_EQ(api.autoscale->max, 10);
  EXPECT_EQ(api.instances, 2);  // starts at min
  EXPECT_EQ(api.autoscale->metric, "connections");
  EXPECT_EQ(api.autoscale->target, 200);
  EXPECT_EQ(api.autoscale->stabilization, 1min);
  EXPECT_EQ(api.autoscale->cooldown, 45s);
}

TEST(ParseTest, NodeCountMeansNumberedNodesInTheirOwnDomains) {
  ParseOutcome out = ParseManifest("nodes: 3\n" + std::string(kOneRole), "m.yaml");
  ASSERT_TRUE(out.ok());
  const auto& nodes = out.manifest->nodes;
  ASSERT_EQ(nodes.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    std::string n = std::to_string(i + 1);
    EXPECT_EQ(nodes[i].name, "n" + n);
    EXPECT_EQ(nodes[i].fault_domain, "fd" + n);
    EXPECT_EQ(nodes[i].update_domain, "ud" + n);
    EXPECT_EQ(nodes[i].address, "127.0.0.1");
  }
}

TEST(ParseTest, NodeCountErrors) {
  EXPECT_THAT(DiagnosticsOf("nodes: 0\n" + std::string(kOneRole)),
              ElementsAre("m.yaml:1:8: error: nodes: 0 is out of range 1..1000"));
  EXPECT_THAT(DiagnosticsOf("nodes: three\n" + std::string(kOneRole)),
              ElementsAre("m.yaml:1:8: error: nodes: expected an integer, got \"three\""));
  EXPECT_THAT(DiagnosticsOf("nodes: {n1: x}\n" + std::string(kOneRole)),
              ElementsAre("m.yaml:1:8: error: nodes: expected a count (nodes: 3) or a list of "
                          "nodes, got a map"));
  EXPECT_THAT(DiagnosticsOf("nodes:\n  - {fault_domain: fd1}\n" + std::string(kOneRole)),
              ElementsAre("m.yaml:2:5: error: nodes[0]: missing required key \"name\" (the "
                          "node's name, e.g. n1)"));
}

TEST(ParseTest, DurationsAndSizes) {
  ParseOutcome out = ParseManifest(WithRole("    stop_grace: 1m30s\n"
                                            "    resources: {memory: 500M}\n"),
                                   "m.yaml");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.manifest->roles[0].stop_grace, 90s);
  EXPECT_EQ(out.manifest->roles[0].resources.memory_bytes, 500'000'000u);
  EXPECT_THAT(DiagnosticsOf(WithRole("    stop_grace: 5\n")),
              ElementsAre("m.yaml:4:17: error: roles[0].stop_grace: invalid duration \"5\": "
                          "missing unit (write e.g. 200ms, 2s, 1m; units: ns, us, ms, s, m, h)"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    stop_grace: 5sec\n")),
              ElementsAre("m.yaml:4:17: error: roles[0].stop_grace: invalid duration \"5sec\": "
                          "unknown unit \"sec\" (write e.g. 200ms, 2s, 1m; units: ns, us, ms, s, "
                          "m, h)"));
  EXPECT_THAT(DiagnosticsOf("settings: {heartbeat_interval: 0s}\n" + std::string(kOneRole)),
              ElementsAre("m.yaml:1:32: error: settings.heartbeat_interval: must be longer "
                          "than 0"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    resources: {memory: 256MB}\n")),
              ElementsAre("m.yaml:4:25: error: roles[0].resources.memory: invalid size "
                          "\"256MB\": unknown unit \"MB\" (write bytes, or a whole number with "
                          "K, M, G, T (1000s) or Ki, Mi, Gi, Ti (1024s), e.g. 256Mi)"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    resources: {cpu: -1}\n")),
              ElementsAre("m.yaml:4:22: error: roles[0].resources.cpu: -1 is out of range "
                          "0..4096"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    resources: {cpu: half}\n")),
              ElementsAre("m.yaml:4:22: error: roles[0].resources.cpu: expected a number, got "
                          "\"half\""));
}

TEST(ParseErrorTest, YamlSyntaxErrorHasItsPosition) {
  EXPECT_THAT(DiagnosticsOf("roles:\n  - name: [web\n    command: x\n"),
              ElementsAre(::testing::StartsWith("m.yaml:")));
  EXPECT_THAT(DiagnosticsOf("cluster: a\n  roles: b\n"),
              ElementsAre("m.yaml:2:8: error: YAML syntax error: illegal map value"));
  EXPECT_THAT(DiagnosticsOf("roles:\n\t- name: a\n"),
              ElementsAre("m.yaml:2:2: error: YAML syntax error: illegal block entry (this line "
                          "is indented with a tab; YAML indents with spaces)"));
  EXPECT_THAT(DiagnosticsOf("roles: *missing\n"),
              ElementsAre("m.yaml:1:8: error: YAML syntax error: the referenced anchor is not "
                          "defined"));
}

// yaml-cpp's LoadAll loops forever on these (fuzz/corpus/fuzz_manifest/stray_comma).
TEST(ParseErrorTest, AStrayCommaIsASyntaxErrorNotAHang) {
  for (const char* text : {",", ", a: b}\n", " , a}", "roles: []\n---\n,\n"}) {
    auto outcome = ParseManifest(text, "m.yaml");
    ASSERT_EQ(outcome.diagnostics.size(), 1u) << text;
    EXPECT_NE(outcome.diagnostics[0].message.find("YAML syntax error: unexpected ','"),
              std::string::npos)
        << text << " -> " << outcome.diagnostics[0].ToString();
  }
}

TEST(ParseErrorTest, OneDocumentPerManifest) {
  EXPECT_THAT(DiagnosticsOf(std::string(kOneRole) + "---\n" + std::string(kOneRole)),
              ElementsAre("m.yaml:5:1: error: a manifest is one YAML document; found 2 (remove "
                          "the \"---\" separators or use one file per manifest)"));
  EXPECT_TRUE(ParseManifest("---\n" + std::string(kOneRole), "m.yaml").ok());
}

TEST(ParseErrorTest, EmptyOrNotAMap) {
  EXPECT_THAT(DiagnosticsOf(""), ElementsAre("m.yaml:1:1: error: the manifest is empty; it "
                                             "needs at least roles:"));
  EXPECT_THAT(DiagnosticsOf("# nothing\n"), ElementsAre("m.yaml:1:1: error: the manifest is "
                                                        "empty; it needs at least roles:"));
  EXPECT_THAT(DiagnosticsOf("- a\n- b\n"),
              ElementsAre("m.yaml:1:1: error: the manifest must be a map of cluster, settings, "
                          "nodes and roles; got a list"));
  EXPECT_THAT(DiagnosticsOf("cluster: x\n"),
              ElementsAre("m.yaml:1:1: warning: no roles: this manifest runs nothing"));
}

TEST(ParseErrorTest, UnknownKeySuggestsTheClosest) {
  EXPECT_THAT(DiagnosticsOf(WithRole("    instnaces: 2\n")),
              ElementsAre("m.yaml:4:5: error: unknown key \"instnaces\" in roles[0]; did you "
                          "mean \"instances\"?"));
  EXPECT_THAT(DiagnosticsOf("rols: []\n"),
              ElementsAre("m.yaml:1:1: error: unknown key \"rols\" at the top level; did you "
                          "mean \"roles\"?",
                          "m.yaml:1:1: warning: no roles: this manifest runs nothing"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    probes: {liveness: {kind: tcp, intervall: 1s}}\n"
                                     "    port: 80\n")),
              ElementsAre("m.yaml:4:36: error: unknown key \"intervall\" in "
                          "roles[0].probes.liveness; did you mean \"interval\"?"));
}

TEST(ParseErrorTest, UnknownKeyWithoutCloseMatchListsKnownKeys) {
  EXPECT_THAT(DiagnosticsOf(WithRole("    endpoint: {listen: \"127.0.0.1:80\", acl: [a]}\n")),
              ElementsAre("m.yaml:4:40: error: unknown key \"acl\" in roles[0].endpoint; known "
                          "keys: listen, allow"));
}

TEST(ParseErrorTest, DuplicateKey) {
  EXPECT_THAT(DiagnosticsOf(WithRole("    command: other\n")),
              ElementsAre("m.yaml:4:5: error: duplicate key \"command\" in roles[0] (first at "
                          "line 3)"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    env: {A: 1, A: 2}\n")),
              ElementsAre("m.yaml:4:17: error: duplicate key \"A\" in roles[0].env (first at "
                          "line 4)"));
}

TEST(ParseErrorTest, WrongTypes) {
  EXPECT_THAT(DiagnosticsOf("roles:\n  - name: web\n    command: [a, b]\n"),
              ElementsAre("m.yaml:3:14: error: roles[0].command: expected a string, got a list"));
  EXPECT_THAT(DiagnosticsOf("roles:\n  - name: web\n    command:\n"),
              ElementsAre("m.yaml:3:5: error: roles[0].command: expected a string, got nothing"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    instances: three\n")),
              ElementsAre("m.yaml:4:16: error: roles[0].instances: expected an integer, got "
                          "\"three\""));
  EXPECT_THAT(DiagnosticsOf(WithRole("    instances: 2.5\n")),
              ElementsAre("m.yaml:4:16: error: roles[0].instances: expected an integer, got "
                          "\"2.5\""));
  EXPECT_THAT(DiagnosticsOf(WithRole("    args: --verbose\n")),
              ElementsAre("m.yaml:4:11: error: roles[0].args: expected a list, got "
                          "\"--verbose\" (write [--verbose])"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    args: [{a: b}]\n")),
              ElementsAre("m.yaml:4:12: error: roles[0].args[0]: expected a string, got a map"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    env: [A=1]\n")),
              ElementsAre("m.yaml:4:10: error: roles[0].env: expected a map, got a list"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    restart: always\n")),
              ElementsAre("m.yaml:4:14: error: roles[0].restart: expected a map, got "
                          "\"always\""));
  EXPECT_THAT(DiagnosticsOf("roles: {name: web}\n"),
              ElementsAre("m.yaml:1:8: error: roles: expected a list, got a map"));
  EXPECT_THAT(DiagnosticsOf("roles:\n  - web\n"),
              ElementsAre("m.yaml:2:5: error: roles[0]: expected a map, got \"web\""));
}

TEST(ParseErrorTest, MissingRequiredFields) {
  EXPECT_THAT(DiagnosticsOf("roles:\n  - mode: load-balanced\n"),
              ElementsAre("m.yaml:2:5: error: roles[0]: missing required key \"name\" (the "
                          "role's name)",
                          "m.yaml:2:5: error: roles[0]: missing required key \"command\" (the "
                          "program to run, found on PATH or an absolute path)"));
  EXPECT_THAT(DiagnosticsOf("roles:\n  - name: web\n    command: \"\"\n"),
              ElementsAre("m.yaml:3:14: error: roles[0].command: must not be empty"));
}

TEST(ParseErrorTest, InvalidNames) {
  EXPECT_THAT(DiagnosticsOf("roles:\n  - name: my web\n    command: x\n"),
              ElementsAre("m.yaml:2:11: error: roles[0].name: \"my web\" is not a valid name (a "
                          "letter, then letters, digits, '-' or '_', at most 63 characters)"));
  EXPECT_THAT(DiagnosticsOf("cluster: 9lives\n" + std::string(kOneRole)),
              ElementsAre("m.yaml:1:10: error: cluster: \"9lives\" is not a valid name (a "
                          "letter, then letters, digits, '-' or '_', at most 63 characters)"));
}

TEST(ParseErrorTest, EnumsNameTheAllowedValues) {
  EXPECT_THAT(DiagnosticsOf("settings: {failure_detector: mesh}\n" + std::string(kOneRole)),
              ElementsAre("m.yaml:1:30: error: settings.failure_detector: \"mesh\" is not one of "
                          "star, ring"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    mode: activ-passive\n")),
              ElementsAre("m.yaml:4:11: error: roles[0].mode: \"activ-passive\" is not one of "
                          "active-passive, load-balanced, replicated"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    restart: {policy: sometimes}\n")),
              ElementsAre("m.yaml:4:23: error: roles[0].restart.policy: \"sometimes\" is not one "
                          "of always, on-failure, never"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    probes: {readiness: {kind: grpc}}\n")),
              ElementsAre("m.yaml:4:32: error: roles[0].probes.readiness.kind: \"grpc\" is not "
                          "one of tcp, http, exec"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    min: 1\n    max: 3\n    autoscale: {metric: memory}\n")),
              ElementsAre("m.yaml:6:25: error: roles[0].autoscale.metric: \"memory\" is not one "
                          "of cpu, connections"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    mode: [a]\n")),
              ElementsAre("m.yaml:4:11: error: roles[0].mode: expected one of active-passive, "
                          "load-balanced, replicated, got a list"));
}

TEST(ParseErrorTest, NumbersOutOfRange) {
  EXPECT_THAT(DiagnosticsOf(WithRole("    port: 70000\n")),
              ElementsAre("m.yaml:4:11: error: roles[0].port: 70000 is out of range 1..65535"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    port: 0\n")),
              ElementsAre("m.yaml:4:11: error: roles[0].port: 0 is out of range 1..65535"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    port: 99999999999999999999\n")),
              ElementsAre("m.yaml:4:11: error: roles[0].port: 99999999999999999999 is out of "
                          "range 1..65535"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    instances: 0\n")),
              ElementsAre("m.yaml:4:16: error: roles[0].instances: 0 is out of range 1..1000"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    update: {max_unavailable_domains: 0}\n")),
              ElementsAre("m.yaml:4:39: error: roles[0].update.max_unavailable_domains: must be "
                          "at least 1 (got 0)"));
}

TEST(ParseErrorTest, ScalingIsInstancesOrMinMax) {
  EXPECT_THAT(DiagnosticsOf(WithRole("    instances: 2\n    min: 1\n    max: 3\n")),
              ElementsAre("m.yaml:4:16: error: roles[0]: give either instances or min/max "
                          "(autoscaling), not both"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    min: 2\n")),
              ElementsAre("m.yaml:4:10: error: roles[0]: min without max; autoscaling needs "
                          "both"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    autoscale: {target: 50}\n")),
              ElementsAre("m.yaml:4:16: error: roles[0].autoscale: needs min and max on the role "
                          "(min: 2, max: 10)"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    min: 0\n    max: 3\n")),
              ElementsAre("m.yaml:4:10: error: roles[0].min: 0 is out of range 1..1000"));
}

TEST(ParseErrorTest, ProbeShapes) {
  std::string port = "    port: 80\n";
  EXPECT_THAT(DiagnosticsOf(WithRole(port + "    probes: {liveness: {interval: 1s}}\n")),
              ElementsAre("m.yaml:5:24: error: roles[0].probes.liveness: missing required key "
                          "\"kind\" (one of tcp, http, exec)"));
  EXPECT_THAT(DiagnosticsOf(WithRole(port + "    probes: {liveness: {kind: tcp, path: /x}}\n")),
              ElementsAre("m.yaml:5:42: error: roles[0].probes.liveness.path: only http probes "
                          "have a path (kind is tcp)"));
  EXPECT_THAT(DiagnosticsOf(WithRole(port + "    probes: {liveness: {kind: exec}}\n")),
              ElementsAre("m.yaml:5:24: error: roles[0].probes.liveness: missing required key "
                          "\"command\" (the argv to run, e.g. [check])"));
  EXPECT_THAT(DiagnosticsOf(WithRole(port + "    probes: {readiness: {kind: http, path: "
                                            "health}}\n")),
              ElementsAre("m.yaml:5:44: error: roles[0].probes.readiness.path: must start with "
                          "'/' (e.g. /health)"));
  EXPECT_THAT(DiagnosticsOf(WithRole(port + "    probes: {readiness: {kind: http, command: "
                                            "[x]}}\n")),
              ElementsAre("m.yaml:5:47: error: roles[0].probes.readiness.command: only exec "
                          "probes have a command (kind is http)"));
  EXPECT_THAT(DiagnosticsOf(WithRole(port + "    probes: {liveness: {kind: http, "
                                            "failover_after: 1s}}\n")),
              ElementsAre("m.yaml:5:53: error: roles[0].probes.liveness.failover_after: only "
                          "readiness probes have failover_after (a failed liveness probe "
                          "restarts the instance at once)"));
  EXPECT_THAT(DiagnosticsOf(WithRole(port + "    probes: {startup: {kind: tcp}}\n")),
              ElementsAre("m.yaml:5:14: error: unknown key \"startup\" in roles[0].probes; known "
                          "keys: liveness, readiness"));
}

TEST(ParseTest, DrainHook) {
  ParseOutcome out =
      ParseManifest(WithRole("    drain: {command: [app-ctl, drain], timeout: 3s}\n"), "m.yaml");
  ASSERT_TRUE(out.ok()) << out.diagnostics[0].ToString();
  ASSERT_TRUE(out.manifest->roles[0].drain.has_value());
  EXPECT_EQ(out.manifest->roles[0].drain->command, (std::vector<std::string>{"app-ctl", "drain"}));
  EXPECT_EQ(out.manifest->roles[0].drain->timeout, 3s);
  out = ParseManifest(WithRole("    drain: {command: [app-ctl]}\n"), "m.yaml");
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.manifest->roles[0].drain->timeout, 10s);  // the default
  EXPECT_FALSE(ParseManifest(std::string(kOneRole), "m.yaml").manifest->roles[0].drain);
}

TEST(ParseErrorTest, DrainHookShapes) {
  EXPECT_THAT(DiagnosticsOf(WithRole("    drain: {timeout: 3s}\n")),
              ElementsAre("m.yaml:4:12: error: roles[0].drain: missing required key \"command\" "
                          "(the argv to run at drain, e.g. [my-app-ctl, drain])"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    drain: {command: []}\n")),
              ElementsAre("m.yaml:4:22: error: roles[0].drain.command: must not be empty"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    drain: {command: [x], timeout: 0s}\n")),
              ElementsAre("m.yaml:4:36: error: roles[0].drain.timeout: must be longer than 0"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    drain: {kind: http, command: [x]}\n")),
              ElementsAre("m.yaml:4:13: error: unknown key \"kind\" in roles[0].drain; known "
                          "keys: command, timeout"));
}

TEST(ParseErrorTest, CollectsEveryErrorInFileOrder) {
  auto diags = DiagnosticsOf(R"(cluster: demo
roles:
  - name: db
    mode: activ-passive
    command: postgres
    instnaces: 2
    port: 70000
  - command: nginx
    instances: 0
)");
  EXPECT_THAT(diags,
              ElementsAre("m.yaml:4:11: error: roles[0].mode: \"activ-passive\" is not one of "
                          "active-passive, load-balanced, replicated",
                          "m.yaml:6:5: error: unknown key \"instnaces\" in roles[0]; did you "
                          "mean \"instances\"?",
                          "m.yaml:7:11: error: roles[0].port: 70000 is out of range 1..65535",
                          "m.yaml:8:5: error: roles[1]: missing required key \"name\" (the "
                          "role's name)",
                          "m.yaml:9:16: error: roles[1].instances: 0 is out of range 1..1000"));
  EXPECT_FALSE(ParseManifest("roles: [x]", "m.yaml").manifest);
}

TEST(LoadTest, UnreadableFileNamesThePath) {
  ParseOutcome out = LoadManifestFile("/nonexistent/m.yaml");
  EXPECT_FALSE(out.ok());
  EXPECT_THAT(out.diagnostics, ::testing::SizeIs(1));
  EXPECT_EQ(out.diagnostics[0].ToString(),
            "/nonexistent/m.yaml: error: cannot read manifest: No such file or directory");
  EXPECT_EQ(LoadManifestFile("/").diagnostics[0].ToString(),
            "/: error: cannot read manifest: Is a directory");
}

TEST(LoadTest, QuickstartExampleIsValidAndSaysWhatItShould) {
  ParseOutcome out = LoadManifestFile(std::string(HAFAB_SOURCE_DIR) + "/examples/quickstart.yaml");
  ASSERT_TRUE(out.ok()) << out.diagnostics[0].ToString();
  EXPECT_THAT(out.diagnostics, IsEmpty());  // not even a warning
  const Manifest& m = *out.manifest;
  ASSERT_EQ(m.nodes.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    std::string n = std::to_string(i + 1);
    EXPECT_EQ(m.nodes[i].name, "n" + n);
    EXPECT_EQ(m.nodes[i].fault_domain, "fd" + n);
    EXPECT_EQ(m.nodes[i].update_domain, "ud" + n);
    EXPECT_EQ(m.nodes[i].address, "127.0.0.1");
  }
  ASSERT_EQ(m.roles.size(), 2u);
  const Role& kvd = m.roles[0];
  EXPECT_EQ(kvd.name, "kvd");
  EXPECT_EQ(kvd.mode, RoleMode::kActivePassive);
  EXPECT_EQ(kvd.command, "kvd");
  EXPECT_EQ(kvd.instances, 2);
  EXPECT_EQ(kvd.port, 7101);
  EXPECT_EQ(kvd.endpoint->listen, "127.0.0.1:7000");
  EXPECT_THAT(kvd.endpoint->allow, ElementsAre("127.0.0.0/8"));
  EXPECT_EQ(kvd.volume, "kvd-data");
  // HTTP liveness: a tcp probe would not see a hung process (issue 17).
  EXPECT_EQ(kvd.probes.liveness->kind, ProbeKind::kHttp);
  EXPECT_EQ(kvd.probes.liveness->path, "/health");
  EXPECT_EQ(kvd.probes.liveness->interval, 100ms);
  EXPECT_EQ(kvd.probes.liveness->timeout, 100ms);
  EXPECT_EQ(kvd.probes.liveness->failure_threshold, 3);
  EXPECT_EQ(kvd.probes.readiness->kind, ProbeKind::kHttp);
  EXPECT_EQ(kvd.probes.readiness->path, "/health");
  EXPECT_EQ(kvd.probes.readiness->interval, 100ms);
  EXPECT_EQ(kvd.probes.readiness->failover_after, 500ms);
  const Role& echo = m.roles[1];
  EXPECT_EQ(echo.name, "echo");
  EXPECT_EQ(echo.mode, RoleMode::kLoadBalanced);
  EXPECT_EQ(echo.command, "echo-app");
  EXPECT_EQ(echo.instances, 3);
  EXPECT_EQ(echo.port, 7201);
  EXPECT_EQ(echo.endpoint->listen, "127.0.0.1:7080");
  EXPECT_THAT(echo.endpoint->allow, ElementsAre("127.0.0.0/8"));
  EXPECT_EQ(echo.probes.liveness->kind, ProbeKind::kHttp);
  EXPECT_EQ(echo.probes.liveness->path, "/health");
  EXPECT_EQ(echo.probes.readiness->kind, ProbeKind::kHttp);
  EXPECT_EQ(echo.probes.readiness->path, "/ready");
}

TEST(LoadTest, BadExampleShowsEachMistake) {
  ParseOutcome out = LoadManifestFile(std::string(HAFAB_SOURCE_DIR) + "/examples/bad.yaml");
  EXPECT_FALSE(out.ok());
  EXPECT_GE(out.diagnostics.size(), 8u);
}

// Outside input is checked before yaml-cpp sees it: UTF-8 (an env value with a bad byte used to
// pass validation and abort the controller when it dumped the role as JSON) and NUL characters.
TEST(ParseTest, InvalidUtf8AndNulAreRefusedWithTheirPlace) {
  EXPECT_THAT(DiagnosticsOf(WithRole("    env: {A: ok, B: \"x\xff\"}\n")),
              ElementsAre("m.yaml:4:23: error: not valid UTF-8 (a manifest is UTF-8 text)"));
  EXPECT_THAT(DiagnosticsOf("cluster: \xc3\n" + std::string(kOneRole)),
              ElementsAre("m.yaml:1:10: error: not valid UTF-8 (a manifest is UTF-8 text)"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    env: {B: \"a\\0b\"}\n")),
              ElementsAre("m.yaml:4:14: error: roles[0].env.B: must not contain a NUL character"));
  EXPECT_TRUE(ParseManifest(WithRole("    env: {B: \"caf\xc3\xa9\"}\n"), "m.yaml").ok());
}

// Sizes are bounded (limits.h) so that no manifest can stall the controller: the same limits
// in `hafab validate`, the CLI and the API.
TEST(ParseTest, AbsurdSizesAreRefused) {
  EXPECT_THAT(DiagnosticsOf(WithRole("    instances: 1000000000\n")),
              ElementsAre("m.yaml:4:16: error: roles[0].instances: 1000000000 is out of range "
                          "1..1000"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    instances: 4294967298\n")),
              ElementsAre("m.yaml:4:16: error: roles[0].instances: 4294967298 is out of range "
                          "1..1000"));
  EXPECT_THAT(DiagnosticsOf(WithRole("    min: 1\n    max: 99999999999999999999\n")),
              ElementsAre("m.yaml:5:10: error: roles[0].max: 99999999999999999999 is out of range "
                          "1..1000"));
  EXPECT_TRUE(ParseManifest(WithRole("    instances: 1000\n"), "m.yaml").ok());

  std::string many = "roles:\n";
  for (int i = 0; i < 501; ++i) many += "  - {name: r" + std::to_string(i) + ", command: x}\n";
  EXPECT_THAT(DiagnosticsOf(many),
              ElementsAre("m.yaml:2:3: error: roles: 501 roles; at most 500 in one manifest"));

  std::string big = "roles:\n";
  for (int i = 0; i < 6; ++i) {
    big += "  - {name: r" + std::to_string(i) + ", command: x, instances: 900}\n";
  }
  EXPECT_THAT(DiagnosticsOf(big),
              ElementsAre("m.yaml:2:3: error: roles: 5400 instances in all (autoscaled roles at "
                          "their max); at most 5000"));

  std::string huge = std::string(kOneRole) + "# " + std::string(1 << 20, 'x') + "\n";
  EXPECT_THAT(DiagnosticsOf(huge),
              ElementsAre("m.yaml:1:1: error: the manifest is 1048621 bytes; at most 1048576 "
                          "are accepted"));
}

}  // namespace
}  // namespace hafab::manifest
