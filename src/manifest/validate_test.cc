// Checks across fields and roles: exact errors and warnings.
#include "manifest/validate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "manifest/test_helpers.h"

namespace hafab::manifest {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(ValidateTest, DuplicateRoleNamesNameTheFirst) {
  EXPECT_THAT(DiagnosticsOf("roles:\n"
                            "  - {name: web, command: a}\n"
                            "  - {name: api, command: b}\n"
                            "  - {name: web, command: c}\n"),
              ElementsAre("m.yaml:4:12: error: roles[2].name: duplicate role \"web\" (first "
                          "defined at line 2)"));
}

TEST(ValidateTest, DuplicateNodeNames) {
  EXPECT_THAT(DiagnosticsOf("nodes:\n"
                            "  - name: n1\n"
                            "  - name: n1\n" +
                            std::string(kOneRole)),
              ElementsAre("m.yaml:3:11: error: nodes[1].name: duplicate node \"n1\" (first "
                          "defined at line 2)"));
}

TEST(ValidateTest, VolumeBelongsToOneRole) {
  EXPECT_THAT(DiagnosticsOf("roles:\n"
                            "  - {name: a, mode: active-passive, command: a, instances: 2, "
                            "volume: data}\n"
                            "  - {name: b, mode: active-passive, command: b, instances: 2, "
                            "volume: data}\n"),
              ElementsAre("m.yaml:3:71: error: roles[1].volume: volume \"data\" is already the "
                          "volume of role \"a\" (line 2); a volume belongs to one role"));
}

TEST(ValidateTest, EndpointListenMustBeHostPortAndUnique) {
  EXPECT_THAT(DiagnosticsOf("roles:\n"
                            "  - name: a\n"
                            "    command: a\n"
                            "    port: 80\n"
                            "    endpoint: {listen: 7000, allow: [127.0.0.1]}\n"),
              ElementsAre("m.yaml:5:24: error: roles[0].endpoint.listen: \"7000\" is not "
                          "host:port: missing \":port\""));
  EXPECT_THAT(DiagnosticsOf("roles:\n"
                            "  - name: a\n"
                            "    command: a\n"
                            "    port: 80\n"
                            "    endpoint: {listen: \"127.0.0.1:70000\", allow: [127.0.0.1]}\n"),
              ElementsAre("m.yaml:5:24: error: roles[0].endpoint.listen: \"127.0.0.1:70000\" is "
                          "not host:port: the port must be in 1..65535"));
  EXPECT_THAT(DiagnosticsOf("roles:\n"
                            "  - name: a\n"
                            "    command: a\n"
                            "    port: 80\n"
                            "    endpoint: {listen: \"127.0.0.1:7000\", allow: [127.0.0.1]}\n"
                            "  - name: b\n"
                            "    command: b\n"
                            "    port: 81\n"
                            "    endpoint: {listen: \"127.0.0.1:7000\", allow: [127.0.0.1]}\n"),
              ElementsAre("m.yaml:9:24: error: roles[1].endpoint.listen: 127.0.0.1:7000 is "
                          "already the endpoint of role \"a\" (line 5)"));
}

TEST(ValidateTest, AllowEntriesAreCidrsOrRoleNames) {
  EXPECT_THAT(DiagnosticsOf("roles:\n"
                            "  - name: db\n"
                            "    command: db\n"
                            "    port: 5432\n"
                            "    endpoint:\n"
                            "      listen: 127.0.0.1:5000\n"
                            "      allow: [10.0.0.0/8, api, 10.0.0.0/33, web, \"::1\", 10.1.2.3]\n"
                            "  - {name: api, command: api}\n"),
              ElementsAre("m.yaml:7:32: error: roles[0].endpoint.allow[2]: \"10.0.0.0/33\" is "
                          "not a valid CIDR or IP address (e.g. 10.0.0.0/8, 127.0.0.1, fd00::/8)",
                          "m.yaml:7:45: error: roles[0].endpoint.allow[3]: \"web\" is neither a "
                          "CIDR/IP address nor the name of a role in this manifest (roles: api, "
                          "db)"));
}

TEST(ValidateTest, EndpointWithoutAllowListWarns) {
  auto out = ParseManifest(
      "roles:\n"
      "  - name: a\n"
      "    command: a\n"
      "    port: 80\n"
      "    endpoint:\n"
      "      listen: 127.0.0.1:7000\n",
      "m.yaml");
  EXPECT_TRUE(out.ok());  // a warning does not make it invalid
  ASSERT_TRUE(out.manifest);
  ASSERT_EQ(out.diagnostics.size(), 1u);
  EXPECT_EQ(out.diagnostics[0].ToString(),
            "m.yaml:6:7: warning: roles[0].endpoint: no allow list: the endpoint accepts "
            "connections from every source (add e.g. allow: [127.0.0.0/8] or role names)");
  EXPECT_THAT(DiagnosticsOf("roles:\n"
                            "  - {name: a, command: a, port: 80,\n"
                            "     endpoint: {listen: \"127.0.0.1:7000\", allow: []}}\n"),
              ElementsAre("m.yaml:3:50: warning: roles[0].endpoint.allow: empty: the endpoint "
                          "accepts connections from every source"));
}

TEST(ValidateTest, EndpointAndHostProbesNeedAPort) {
  EXPECT_THAT(DiagnosticsOf("roles:\n"
                            "  - name: a\n"
                            "    command: a\n"
                            "    endpoint: {listen: \"127.0.0.1:7000\", allow: [a]}\n"
                            "    probes:\n"
                            "      liveness: {kind: tcp}\n"
                            "      readiness: {kind: exec, command: [check]}\n"),
              ElementsAre("m.yaml:4:15: error: roles[0].endpoint: needs the role's port (the "
                          "port the app listens on, passed in HAFAB_PORT); add port: 1..65535",
                          "m.yaml:6:17: error: roles[0].probes.liveness: a tcp probe needs the "
                          "role's port; add port: 1..65535"));
}

TEST(ValidateTest, TcpLivenessAloneCannotSeeAHungProcess) {
  const std::string role =
      "roles:\n"
      "  - name: a\n"
      "    command: a\n"
      "    port: 80\n"
      "    probes:\n"
      "      liveness: {kind: tcp}\n";
  const std::string warning =
      "m.yaml:6:17: warning: roles[0].probes.liveness: a tcp liveness probe alone cannot see a "
      "hung process (a stopped or deadlocked process still accepts connections into its listen "
      "backlog); use kind: http or exec, or an http/exec readiness probe with failover_after";
  EXPECT_THAT(DiagnosticsOf(role), ElementsAre(warning));
  EXPECT_THAT(DiagnosticsOf(role + "      readiness: {kind: tcp}\n"), ElementsAre(warning));
  EXPECT_THAT(DiagnosticsOf(role + "      readiness: {kind: http, failover_after: 0s}\n"),
              ElementsAre(warning));
  EXPECT_THAT(DiagnosticsOf(role + "      readiness: {kind: http}\n"), IsEmpty());
  EXPECT_THAT(DiagnosticsOf("roles:\n"
                            "  - name: a\n"
                            "    command: a\n"
                            "    port: 80\n"
                            "    probes:\n"
                            "      liveness: {kind: http, path: /health}\n"),
              IsEmpty());
}

TEST(ValidateTest, FailoverAfterIsAtLeastTheTimeReadinessTakesToFail) {
  EXPECT_THAT(DiagnosticsOf("roles:\n"
                            "  - name: a\n"
                            "    command: a\n"
                            "    port: 80\n"
                            "    probes:\n"
                            "      readiness: {kind: http, interval: 100ms, failover_after: "
                            "200ms}\n"),
              ElementsAre("m.yaml:6:64: error: roles[0].probes.readiness.failover_after (200ms) "
                          "must be at least failure_threshold x interval (300ms), the time "
                          "readiness takes to fail; 0 turns it off"));
  auto m = ParseManifest(
      "roles:\n"
      "  - {name: a, command: a, port: 80, probes: {readiness: {kind: http, interval: 100ms}}}\n",
      "m.yaml");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m.manifest->roles[0].probes.readiness->failover_after, std::chrono::milliseconds(500))
      << "default: (failure_threshold + 2) x interval";
}

TEST(ValidateTest, ActivePassiveWarnings) {
  auto out = ParseManifest(
      "roles:\n"
      "  - name: db\n"
      "    mode: active-passive\n"
      "    command: db\n",
      "m.yaml");
  ASSERT_TRUE(out.ok());
  std::vector<std::string> got;
  for (const auto& d : out.diagnostics) got.push_back(d.ToString());
  EXPECT_THAT(got, ElementsAre("m.yaml:2:5: warning: roles[0]: active-passive with instances: 1 "
                               "has no standby; a failure waits for a restart or relocation (use "
                               "instances: 2)",
                               "m.yaml:2:5: warning: roles[0]: active-passive without a volume: a "
                               "standby that takes over starts without the primary's data; fine "
                               "only for apps that keep no local state"));
  EXPECT_THAT(DiagnosticsOf("roles:\n"
                            "  - {name: db, mode: active-passive, command: db, instances: 3, "
                            "volume: v}\n"),
              IsEmpty());
}

TEST(ValidateTest, AReplicatedRoleNeedsAnOddNumberOfReplicas) {
  EXPECT_THAT(DiagnosticsOf("roles:\n"
                            "  - {name: r, mode: replicated, command: r, instances: 3}\n"),
              IsEmpty());
  EXPECT_THAT(DiagnosticsOf("roles:\n  - {name: r, mode: replicated, command: r, instances: 2}\n"),
              ElementsAre("m.yaml:2:56: error: roles[0].instances: a replicated role needs an "
                          "odd number of instances, 3 or more, so that a majority survives a "
                          "failure (got 2)"));
  EXPECT_THAT(DiagnosticsOf("roles:\n  - {name: r, mode: replicated, command: r, instances: 1}\n"),
              ElementsAre(::testing::HasSubstr("(got 1)")));
}

TEST(ValidateTest, ReplicationIsCheckedAgainstTheRole) {
  const auto mistakes = [](const std::string& role) {
    return DiagnosticsOf("roles:\n  - " + role + "\n");
  };
  EXPECT_THAT(mistakes("{name: w, command: w, instances: 3, replication: {quorum: 2}}"),
              ElementsAre("m.yaml:2:54: error: roles[0].replication: only replicated roles "
                          "replicate; mode is load-balanced"));
  EXPECT_THAT(mistakes("{name: r, mode: replicated, command: r, instances: 3, "
                       "replication: {quorum: 4}}"),
              ElementsAre("m.yaml:2:81: error: roles[0].replication.quorum: 4 is more than the "
                          "role's 3 instances: no write could ever be acknowledged"));
  EXPECT_THAT(mistakes("{name: r, mode: replicated, command: r, instances: 3, volume: v}"),
              ElementsAre("m.yaml:2:67: error: roles[0].volume: a replicated role keeps each "
                          "replica's data on its own node (HAFAB_VOLUME_DIR is a directory of "
                          "its own); a volume is one disk that moves between nodes, it cannot "
                          "be shared by replicas"));
  EXPECT_THAT(mistakes("{name: r, mode: replicated, command: r, instances: 3, "
                       "replication: {hook: ''}}"),
              ElementsAre(::testing::HasSubstr("roles[0].replication.hook: must not be empty")));
  EXPECT_THAT(mistakes("{name: r, mode: replicated, command: r, instances: 5, "
                       "replication: {quorum: 3, rebuild_after: 1m, hook: /opt/r/hook}}"),
              IsEmpty());
}

TEST(ValidateTest, OnlyActivePassiveHasAVolume) {
  EXPECT_THAT(DiagnosticsOf("roles:\n  - {name: w, command: w, instances: 2, volume: v}\n"),
              ElementsAre("m.yaml:2:49: error: roles[0].volume: only active-passive roles have a "
                          "volume (it is attached to one instance at a time); mode is "
                          "load-balanced"));
}

TEST(ValidateTest, Autoscaling) {
  EXPECT_THAT(DiagnosticsOf("roles:\n  - {name: w, command: w, min: 5, max: 2}\n"),
              ElementsAre("m.yaml:2:32: error: roles[0]: min (5) is greater than max (2)"));
  EXPECT_THAT(DiagnosticsOf("roles:\n  - {name: w, command: w, min: 1, max: 2, autoscale: "
                            "{target: 150}}\n"),
              ElementsAre("m.yaml:2:63: error: roles[0].autoscale.target: a cpu target is a "
                          "utilisation percentage, 1..100"));
  EXPECT_THAT(DiagnosticsOf("roles:\n  - {name: w, command: w, min: 1, max: 2, autoscale: "
                            "{metric: connections, target: 0}}\n"),
              ElementsAre("m.yaml:2:84: error: roles[0].autoscale.target: must be greater than "
                          "0"));
  EXPECT_THAT(DiagnosticsOf("roles:\n  - {name: w, mode: active-passive, command: w, min: 1, "
                            "max: 2, volume: v}\n"),
              ElementsAre("m.yaml:2:54: error: roles[0]: min/max (autoscaling) is only for "
                          "load-balanced roles; mode is active-passive (use instances)"));
}

TEST(ValidateTest, SettingsAndRestartRelations) {
  EXPECT_THAT(
      DiagnosticsOf("settings: {heartbeat_interval: 1s, lease_ttl: 1s}\n" + std::string(kOneRole)),
      ElementsAre("m.yaml:1:47: error: settings.lease_ttl (1s) must be longer than "
                  "settings.heartbeat_interval (1s)"));
  EXPECT_THAT(
      DiagnosticsOf("settings: {heartbeat_interval: 1s, lease_ttl: 2s}\n" + std::string(kOneRole)),
      ElementsAre("m.yaml:1:47: warning: settings.lease_ttl (2s) is less than 3 "
                  "heartbeats: one or two late heartbeats expire a lease"));
  EXPECT_THAT(
      DiagnosticsOf("settings: {heartbeat_interval: 1s, lease_ttl: 61m}\n" + std::string(kOneRole)),
      ElementsAre("m.yaml:1:47: error: settings.lease_ttl (61m) must be at most 1h"));
  EXPECT_THAT(DiagnosticsOf("settings: {api_listen: localhost}\n" + std::string(kOneRole)),
              ElementsAre("m.yaml:1:24: error: settings.api_listen: \"localhost\" is not "
                          "host:port: missing \":port\""));
  EXPECT_THAT(DiagnosticsOf(std::string(kOneRole) +
                            "    restart: {backoff_initial: 5s, backoff_max: 1s}\n"),
              ElementsAre("m.yaml:4:49: error: roles[0].restart.backoff_max (1s) must be at "
                          "least backoff_initial (5s)"));
}

TEST(ValidateTest, RolesSharingAPortWarn) {
  EXPECT_THAT(DiagnosticsOf("roles:\n"
                            "  - {name: a, command: a, port: 8080}\n"
                            "  - {name: b, command: b, port: 8080}\n"
                            "  - {name: c, command: c, port: 8081}\n"),
              ElementsAre("m.yaml:3:33: warning: roles[1].port: 8080 is also the port of role "
                          "\"a\" (line 2); their instances cannot share a node"));
}

TEST(ValidateTest, EnvNames) {
  EXPECT_THAT(DiagnosticsOf(std::string(kOneRole) + "    env: {MY-VAR: 1, HAFAB_PORT: 9}\n"),
              ElementsAre("m.yaml:4:11: error: roles[0].env.MY-VAR: \"MY-VAR\" is not a valid "
                          "environment variable name (letters, digits and '_', not starting "
                          "with a digit)",
                          "m.yaml:4:22: warning: roles[0].env.HAFAB_PORT: names starting with "
                          "HAFAB_ are set by the agent (HAFAB_PORT, HAFAB_VOLUME_DIR, ...) and "
                          "replace this value"));
}

TEST(ValidateTest, ATypoDoesNotCascadeIntoErrorsAboutDefaults) {
  // The mode typo leaves the default mode (load-balanced) in place; the volume must not be
  // blamed on it, nor the missing instances warned about.
  EXPECT_THAT(DiagnosticsOf("roles:\n"
                            "  - name: db\n"
                            "    mode: active-pasive\n"
                            "    command: db\n"
                            "    volume: data\n"),
              ElementsAre("m.yaml:3:11: error: roles[0].mode: \"active-pasive\" is not one of "
                          "active-passive, load-balanced, replicated"));
}

}  // namespace
}  // namespace hafab::manifest
