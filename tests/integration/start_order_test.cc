// Integration: daemons started before what they depend on wait for it, say so, and come up
// when it answers, with no restart by anyone:
// 1. `hafab up --store etcd://…` while the etcd member is down: the controller logs that it
//    waits for the store (endpoint and error) and retries with backoff; `up` waits for the
//    controller; once etcd is started the cluster comes up and serves writes.
// 2. An agent and a gateway started before the controller: both log that they wait for it;
//    once it starts the node registers, the gateway gets its routes, writes go through.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "http/http.h"
#include "store/etcd_test_cluster.h"
#include "testing/ports.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/process.h"

namespace hafab {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using e2e::ReadFile;
using e2e::WaitFor;

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(StartOrderTest, UpWaitsForAnEtcdThatStartsLate) {
  if (store::testing::EtcdTestCluster::FindBinary().empty()) GTEST_SKIP() << "no etcd binary";
  auto etcd = store::testing::EtcdTestCluster::Start({});
  ASSERT_TRUE(etcd.ok()) << etcd.status().ToString();
  const std::string url = (*etcd)->Url();
  const std::string endpoint = (*etcd)->Endpoint(0).Name();
  (*etcd)->Kill(0);

  e2e::ClusterOptions o;
  o.extra_up_args = {"--store", url};
  o.echo_instances = 0;
  e2e::Cluster c(o);
  Status started = Status::Unavailable("not started");
  std::thread up([&] { started = c.Start(120s); });
  const std::string log = c.state_dir() + "/logs/controller.log";
  // Three attempts (1 s and 2 s apart): it did not give up after the first.
  bool waited = WaitFor(
      "the controller to say three times that it waits for the store",
      [&] { return Count(ReadFile(log), "waiting for the store") >= 3; }, 30s);
  std::string text = ReadFile(log);
  EXPECT_NE(text.find("waiting for the store " + url), std::string::npos) << text;
  EXPECT_NE(text.find(endpoint), std::string::npos) << "the error names the endpoint\n" << text;
  EXPECT_GT(c.up_pid(), 0);
  ASSERT_TRUE((*etcd)->Restart(0).ok());
  up.join();
  ASSERT_TRUE(waited);
  ASSERT_TRUE(started.ok()) << started.ToString();
  EXPECT_NE(ReadFile(log).find("the store " + url + " answered after"), std::string::npos);

  auto put = http::Fetch("PUT", c.kvd_url() + "/kv/late", "etcd", {}, 5s);
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  EXPECT_EQ(put->status, 200) << put->body;
  Status stopped = c.Stop();
  EXPECT_TRUE(stopped.ok()) << stopped.ToString();
}

TEST(StartOrderTest, AgentAndGatewayWaitForAControllerThatStartsLate) {
  char tmpl[] = "/tmp/hafab-order-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string state = dir + "/ctl";
  fs::create_directories(state);
  fs::create_directories(dir + "/n1");
  {
    std::ofstream(state + "/admin.token") << "0123456789abcdef0123456789abcdef\n";
    std::ofstream(state + "/read.token") << "fedcba9876543210fedcba9876543210\n";
    fs::permissions(state + "/admin.token", fs::perms::owner_read | fs::perms::owner_write);
    fs::permissions(state + "/read.token", fs::perms::owner_read | fs::perms::owner_write);
  }
  const std::string api = "http://127.0.0.1:" + std::to_string(testing::FreePort());
  const int kv_port = testing::FreePort();
  const int app_port = testing::FreePort();

  pid_t agent = e2e::Spawn({HAFAB_BINARY, "agent", "--node", "n1", "--controller", api,
                            "--token-file", state + "/admin.token", "--data-dir", dir + "/n1",
                            "--volume-root", dir + "/volumes", "--heartbeat-interval", "100ms"},
                           dir + "/agent.log");
  pid_t gateway = e2e::Spawn({HAFAB_BINARY, "gateway", "--id", "gw1", "--controller", api,
                              "--token-file", state + "/admin.token", "--threads", "1"},
                             dir + "/gateway.log");
  EXPECT_TRUE(WaitFor("the agent to say it waits for the controller", [&] {
    std::string l = ReadFile(dir + "/agent.log");
    return l.find("waiting for the controller (" + api + ")") != std::string::npos &&
           l.find("refused") != std::string::npos;
  }));
  EXPECT_TRUE(WaitFor("the gateway to say it waits for the controller", [&] {
    std::string l = ReadFile(dir + "/gateway.log");
    return l.find("waiting for the controller: routes poll " + api) != std::string::npos;
  }));

  // Still there (still trying) after 2 s without a controller: they do not give up.
  const TimePoint started = RealClock().Now();
  EXPECT_TRUE(WaitFor("2 s with agent and gateway waiting", [&] {
    return RealClock().Now() >= started + 2s && waitpid(agent, nullptr, WNOHANG) == 0 &&
           waitpid(gateway, nullptr, WNOHANG) == 0;
  }));

  pid_t controller = e2e::Spawn({HAFAB_BINARY, "controller", "--state-dir", state, "--listen",
                                 api.substr(7), "--volume-root", dir + "/volumes"},
                                dir + "/controller.log");
  const http::Headers auth = {{"Authorization", "Bearer 0123456789abcdef0123456789abcdef"}};
  const std::string manifest = R"(cluster: late
roles:
  - name: kvd
    mode: active-passive
    command: )" KVD_BINARY R"(
    instances: 1
    port: )" + std::to_string(app_port) +
                               R"(
    volume: kvd-data
    endpoint: {listen: 127.0.0.1:)" +
                               std::to_string(kv_port) +
                               R"(, allow: [127.0.0.0/8]}
    probes:
      readiness: {kind: http, path: /health, interval: 100ms, timeout: 500ms}
)";
  EXPECT_TRUE(WaitFor("the controller to take the manifest", [&] {
    auto r = http::Fetch("POST", api + "/v1/apply?file=late.yaml", manifest, auth, 2s);
    return r.ok() && r->status == 200;
  }));
  EXPECT_TRUE(WaitFor("a write through the gateway", [&] {
    auto r =
        http::Fetch("PUT", "http://127.0.0.1:" + std::to_string(kv_port) + "/kv/k", "v", {}, 2s);
    return r.ok() && r->status == 200;
  }));
  EXPECT_NE(ReadFile(dir + "/agent.log").find("heartbeat answered again"), std::string::npos);

  e2e::StopGroup(gateway, SIGTERM);
  e2e::StopGroup(agent, SIGTERM);
  e2e::StopGroup(controller, SIGTERM);
  if (!HasFailure()) fs::remove_all(dir);
}

}  // namespace
}  // namespace hafab
