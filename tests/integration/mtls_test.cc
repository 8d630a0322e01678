// Integration: a multi-machine deployment's mutual TLS on loopback, as docs/deploy.md sets it
// up. `hafab certs create` makes the CA and a certificate per component; etcd takes only
// clients with a certificate of that CA; the controller speaks TLS to etcd and serves its API
// over TLS to the agent, the gateway and the CLI, each with its own certificate and its own
// scoped credential. A write goes through the gateway to kvd; a client without a certificate,
// a plain HTTP client and the CLI without HAFAB_TLS_* are refused.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "http/http.h"
#include "store/etcd_test_cluster.h"
#include "testing/ports.h"
#include "tests/e2e/process.h"

namespace hafab {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using e2e::ReadFile;
using e2e::WaitFor;

std::string Trimmed(const std::string& s) {
  std::string t = s;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

class MtlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hafab-mtls-XXXXXX";
    dir_ = mkdtemp(tmpl);
    tls_ = dir_ + "/tls";
    state_ = dir_ + "/ctl";
    fs::create_directories(state_);
  }
  void TearDown() override {
    for (pid_t* p : {&gateway_, &agent_, &controller_, &etcd_}) e2e::StopGroup(*p, SIGTERM);
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // `hafab ARGS` with `env`; its exit code, its output in *out.
  int Hafab(std::vector<std::string> args, std::string* out,
            const std::map<std::string, std::string>& env = {}) {
    std::vector<std::string> argv = {"/usr/bin/env"};
    for (const auto& [k, v] : env) argv.push_back(k + "=" + v);
    argv.push_back(HAFAB_BINARY);
    argv.insert(argv.end(), args.begin(), args.end());
    return e2e::RunCapture(argv, dir_, out);
  }
  std::vector<std::string> TlsFlags(const std::string& name, const std::string& prefix = "--tls-") {
    return {prefix + "ca",  tls_ + "/ca.crt",          prefix + "cert", tls_ + "/" + name + ".crt",
            prefix + "key", tls_ + "/" + name + ".key"};
  }
  static std::vector<std::string> Cat(std::vector<std::string> a,
                                      const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  }

  std::string dir_, tls_, state_;
  pid_t etcd_ = 0, controller_ = 0, agent_ = 0, gateway_ = 0;
};

TEST_F(MtlsTest, DaemonsAndTheCliSpeakMutualTlsAndRefuseClientsWithoutACertificate) {
  const std::string etcd_binary = store::testing::EtcdTestCluster::FindBinary();
  if (etcd_binary.empty()) GTEST_SKIP() << "no etcd binary";
  std::string out;
  // The CA and one certificate per component, as docs/deploy.md makes them.
  for (std::vector<std::string> cert :
       {std::vector<std::string>{"etcd1", "--host", "127.0.0.1"},
        std::vector<std::string>{"c1", "--host", "127.0.0.1,localhost"},
        std::vector<std::string>{"n1-agent"}, std::vector<std::string>{"gw1"},
        std::vector<std::string>{"operator"}}) {
    ASSERT_EQ(Hafab(Cat({"certs", "create"}, Cat(cert, {"--dir", tls_})), &out), 0) << out;
  }
  EXPECT_TRUE(fs::exists(tls_ + "/ca.key"));

  // etcd: TLS with client certificates only.
  const uint16_t etcd_port = testing::FreePort(), etcd_peer = testing::FreePort();
  const std::string etcd_url = "https://127.0.0.1:" + std::to_string(etcd_port);
  etcd_ = e2e::Spawn({etcd_binary,
                      "--name",
                      "etcd1",
                      "--data-dir",
                      dir_ + "/etcd",
                      "--listen-client-urls",
                      etcd_url,
                      "--advertise-client-urls",
                      etcd_url,
                      "--listen-peer-urls",
                      "http://127.0.0.1:" + std::to_string(etcd_peer),
                      "--initial-advertise-peer-urls",
                      "http://127.0.0.1:" + std::to_string(etcd_peer),
                      "--initial-cluster",
                      "etcd1=http://127.0.0.1:" + std::to_string(etcd_peer),
                      "--cert-file",
                      tls_ + "/etcd1.crt",
                      "--key-file",
                      tls_ + "/etcd1.key",
                      "--trusted-ca-file",
                      tls_ + "/ca.crt",
                      "--client-cert-auth"},
                     dir_ + "/etcd.log");

  // The controller: etcd over TLS, its API over TLS.
  const uint16_t api_port = testing::FreePort();
  const std::string api = "https://127.0.0.1:" + std::to_string(api_port);
  controller_ = e2e::Spawn(
      Cat(Cat({HAFAB_BINARY, "controller", "--state-dir", state_, "--listen",
               "127.0.0.1:" + std::to_string(api_port), "--advertise", api, "--store",
               "etcd://127.0.0.1:" + std::to_string(etcd_port), "--volume-root", dir_ + "/volumes"},
              TlsFlags("c1")),
          TlsFlags("c1", "--etcd-")),
      dir_ + "/controller.log");
  ASSERT_TRUE(WaitFor(
      "the controller's api.url",
      [&] {
        return Trimmed(ReadFile(state_ + "/api.url")) ==
               "https://127.0.0.1:" + std::to_string(api_port);
      },
      60s))
      << ReadFile(dir_ + "/controller.log") << ReadFile(dir_ + "/etcd.log");

  // Agent and gateway: their own certificate and their own credential.
  ASSERT_EQ(
      Hafab({"token", "create", "--node", "n1", "--state-dir", state_, "--out", dir_ + "/n1.token"},
            &out),
      0)
      << out;
  ASSERT_EQ(Hafab({"token", "create", "--gateway", "gw1", "--state-dir", state_, "--out",
                   dir_ + "/gw1.token"},
                  &out),
            0)
      << out;
  fs::create_directories(dir_ + "/n1");
  agent_ = e2e::Spawn(Cat({HAFAB_BINARY, "agent", "--node", "n1", "--controller", api,
                           "--token-file", dir_ + "/n1.token", "--data-dir", dir_ + "/n1",
                           "--volume-root", dir_ + "/volumes", "--heartbeat-interval", "100ms"},
                          TlsFlags("n1-agent")),
                      dir_ + "/agent.log");
  gateway_ = e2e::Spawn(Cat({HAFAB_BINARY, "gateway", "--id", "gw1", "--controller", api,
                             "--token-file", dir_ + "/gw1.token", "--threads", "1"},
                            TlsFlags("gw1")),
                        dir_ + "/gateway.log");

  // The operator's CLI: HAFAB_TLS_* with its certificate, the admin token.
  const std::map<std::string, std::string> cli = {
      {"HAFAB_API", api},
      {"HAFAB_TOKEN", Trimmed(ReadFile(state_ + "/admin.token"))},
      {"HAFAB_TLS_CA", tls_ + "/ca.crt"},
      {"HAFAB_TLS_CERT", tls_ + "/operator.crt"},
      {"HAFAB_TLS_KEY", tls_ + "/operator.key"}};
  const int kv_port = testing::FreePort(), app_port = testing::FreePort();
  {
    std::ofstream(dir_ + "/kv.yaml")
        << "cluster: mtls\nroles:\n  - name: kvd\n"
        << "    mode: active-passive\n    command: " << KVD_BINARY
        << "\n    instances: 1\n    port: " << app_port << "\n    volume: kvd-data\n"
        << "    endpoint: {listen: 127.0.0.1:" << kv_port << ", allow: [127.0.0.0/8]}\n"
        << "    probes:\n      readiness: {kind: http, path: "
           "/health, interval: 100ms, timeout: 500ms}\n";
  }
  ASSERT_TRUE(WaitFor(
      "the node to register over TLS",
      [&] {
        return Hafab({"get", "nodes"}, &out, cli) == 0 && out.find("n1") != std::string::npos;
      },
      60s))
      << out << ReadFile(dir_ + "/agent.log");
  ASSERT_EQ(Hafab({"apply", "-f", dir_ + "/kv.yaml"}, &out, cli), 0) << out;
  EXPECT_TRUE(WaitFor(
      "a write through the gateway",
      [&] {
        auto r = http::Fetch("PUT", "http://127.0.0.1:" + std::to_string(kv_port) + "/kv/k", "v",
                             {}, 2s);
        return r.ok() && r->status == 200;
      },
      60s))
      << ReadFile(dir_ + "/gateway.log");
  ASSERT_EQ(Hafab({"status"}, &out, cli), 0) << out;
  EXPECT_TRUE(e2e::StatusShowsReadyPrimary(out, "kvd")) << out;

  // Refused: the CLI without HAFAB_TLS_* (it says what it lacks), a client with the CA but no
  // certificate (the handshake fails) ...
  std::map<std::string, std::string> no_cert = cli;
  no_cert.erase("HAFAB_TLS_CA");
  no_cert.erase("HAFAB_TLS_CERT");
  no_cert.erase("HAFAB_TLS_KEY");
  EXPECT_NE(Hafab({"status"}, &out, no_cert), 0) << out;
  EXPECT_NE(out.find("TLS client certificate"), std::string::npos) << out;
  ASSERT_TRUE(http::SetClientTls({tls_ + "/ca.crt", "", ""}).ok());
  auto r = http::Fetch("GET", api + "/v1/status", "", {}, 5s);
  EXPECT_FALSE(r.ok()) << r->status << " " << r->body;
  // ... plain HTTP to the API ...
  r = http::Fetch("GET", "http://127.0.0.1:" + std::to_string(api_port) + "/v1/leader", "", {}, 5s);
  EXPECT_FALSE(r.ok() && r->status == 200);
  // ... and a client without a certificate at etcd.
  r = http::Fetch("POST", etcd_url + "/v3/kv/range", R"({"key": "Lw=="})", {}, 5s);
  EXPECT_FALSE(r.ok()) << r->status << " " << r->body;
  EXPECT_NE(ReadFile(dir_ + "/controller.log").find("TLS handshake with 127.0.0.1 failed"),
            std::string::npos);
}

}  // namespace
}  // namespace hafab
