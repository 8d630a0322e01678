// Prometheus: every agent's, the controller's and the gateway's /metrics of a `hafab up` cluster
// (examples/quickstart.yaml) pass `promtool check metrics` (the agents' before, the others
// after a failover); the agents' values move (kvd's primary running and ready, its probes
// counted, heartbeat round trips observed); the controller carries the families
// deploy/prometheus/hafab-alerts.yml uses, and those rules pass `promtool check rules`; every
// metric the Grafana dashboard deploy/grafana/hafab.json queries is in some daemon's output.
// Skipped, saying why, without promtool (Debian's prometheus package; scripts/setup.sh).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "http/http.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/process.h"

namespace hafab::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kRoot = HAFAB_SOURCE_DIR;
const std::string kPromtool = "/usr/bin/promtool";

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// `promtool check metrics` on `text`: "" when it passes, else what it said.
std::string PromtoolCheck(const std::string& text, const std::string& name) {
  const std::string file = ::testing::TempDir() + name + ".prom";
  std::ofstream(file) << text;
  std::string out;
  int rc = RunCapture({"/bin/sh", "-c", kPromtool + " check metrics < " + file}, "", &out);
  return rc == 0 ? "" : "exit " + std::to_string(rc) + ": " + out;
}

// The value of the sample whose line starts with `series` (name and labels, exactly as
// written), nullopt if there is none.
std::optional<double> Value(const std::string& text, const std::string& series) {
  const std::string prefix = "\n" + series + " ";
  size_t at = ("\n" + text).find(prefix);
  if (at == std::string::npos) return std::nullopt;
  return std::stod(text.substr(at + prefix.size() - 1));
}

// Sum of the samples of `name` whose labels contain every one of `labels` ("k=\"v\"").
double Sum(const std::string& text, const std::string& name,
           const std::vector<std::string>& labels) {
  double sum = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + "{", 0) != 0) continue;
    const std::string set = line.substr(name.size(), line.find('}') - name.size() + 1);
    bool all = true;
    for (const auto& l : labels) all = all && set.find(l) != std::string::npos;
    if (all) sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

// Every PromQL string of a Grafana dashboard: panel targets' "expr", template variables'
// "query" and "definition" (nested rows too).
void Exprs(const nlohmann::json& j, std::vector<std::string>* out) {
  if (j.is_object()) {
    for (const auto& [key, v] : j.items()) {
      if ((key == "expr" || key == "query" || key == "definition") && v.is_string()) {
        out->push_back(v.get<std::string>());
      }
      Exprs(v, out);
    }
  } else if (j.is_array()) {
    for (const auto& v : j) Exprs(v, out);
  }
}

// True if `name` is a sample of `text`, or a family of it ("# TYPE name ...").
bool Exposes(const std::string& text, const std::string& name) {
  const std::string all = "\n" + text;
  return all.find("\n" + name + "{") != std::string::npos ||
         all.find("\n" + name + " ") != std::string::npos ||
         all.find("\n# TYPE " + name + " ") != std::string::npos;
}

TEST(MetricsE2eTest, EveryDaemonsMetricsAndTheAlertRulesPassPromtool) {
  if (access(kPromtool.c_str(), X_OK) != 0) {
    GTEST_SKIP() << "no " << kPromtool << " (apt-get install prometheus): metrics not checked";
  }
  std::string out;
  ASSERT_EQ(RunCapture({kPromtool, "check", "rules", kRoot + "/deploy/prometheus/hafab-alerts.yml"},
                       "", &out),
            0)
      << out;

  ClusterOptions opts;
  opts.example = kQuickstart;
  Cluster c(opts);
  ASSERT_TRUE(c.Start().ok());
  const auto [instance, node] = c.KvdPrimary();
  ASSERT_FALSE(node.empty());

  // Every agent: `hafab up` gave it a metrics address in nodes/<node>/metrics.addr.
  std::vector<std::string> outputs;  // every daemon's /metrics, for the dashboard's check
  std::map<std::string, std::string> agent_url;
  for (const char* n : {"n1", "n2", "n3"}) {
    const std::string file = c.state_dir() + "/nodes/" + n + "/metrics.addr";
    std::string addr;
    ASSERT_TRUE(c.WaitFor(
                     std::string("agent ") + n + "'s metrics.addr",
                     [&] { return !(addr = Trimmed(ReadFile(file))).empty(); }, 10s)
                    .ok());
    agent_url[n] = "http://" + addr + "/metrics";
  }
  auto scrape = [&](const std::string& n) -> std::string {
    auto r = http::Fetch("GET", agent_url[n], "", {}, 2s);
    return r.ok() && r->status == 200 ? r->body : "";
  };
  // kvd's primary: running and ready on its node, its probes counted and timed.
  const std::string labels =
      "{node=\"" + node + "\",instance_id=\"" + instance + "\",role=\"kvd\",";
  std::string first;
  ASSERT_TRUE(c.WaitFor(
                   "kvd's primary running and ready in " + node + "'s /metrics",
                   [&] {
                     first = scrape(node);
                     return Value(first, "hafab_agent_instance_state" + labels +
                                             "state=\"running\"}") == 1.0 &&
                            Value(first, "hafab_agent_instance_readiness" + labels +
                                             "readiness=\"ready\"}") == 1.0;
                   },
                   15s)
                  .ok())
      << first;
  EXPECT_EQ(
      Value(first, "hafab_agent_instance_state" + labels + "state=\"starting\"}").value_or(-1),
      0.0);
  const std::vector<std::string> of_kvd = {"instance_id=\"" + instance + "\"", "outcome=\"ok\""};
  const double probes_before = Sum(first, "hafab_agent_probes_total", of_kvd);
  EXPECT_GT(probes_before, 0) << first;
  std::string second;
  ASSERT_TRUE(c.WaitFor(
                   "more probes of " + instance + " counted, and its usage sampled",
                   [&] {
                     second = scrape(node);
                     // CPU and memory: sampled every second (or read from its cgroup).
                     return Sum(second, "hafab_agent_probes_total", of_kvd) > probes_before &&
                            Sum(second, "hafab_agent_instance_memory_bytes",
                                {"instance_id=\"" + instance + "\""}) > 0 &&
                            second.find("hafab_agent_instance_cpu_seconds_total{node=\"" + node +
                                        "\",instance_id=\"" + instance + "\"") != std::string::npos;
                   },
                   10s)
                  .ok())
      << second;
  EXPECT_GT(Sum(second, "hafab_agent_probe_duration_seconds_count",
                {"instance_id=\"" + instance + "\"", "probe=\"readiness\""}),
            0)
      << second;
  EXPECT_GT(Value(second, "hafab_agent_heartbeat_round_trip_seconds_count{node=\"" + node + "\"}")
                .value_or(0),
            0)
      << second;
  // Its volume was attached through the provider there.
  EXPECT_GE(Value(second, "hafab_agent_volume_operations_total{node=\"" + node +
                              "\",op=\"attach\",outcome=\"ok\"}")
                .value_or(0),
            1)
      << second;
  for (const char* n : {"n1", "n2", "n3"}) {
    const std::string text = scrape(n);
    ASSERT_FALSE(text.empty()) << "no /metrics from agent " << n << " at " << agent_url[n];
    EXPECT_EQ(PromtoolCheck(text, std::string("agent-") + n), "") << text;
    EXPECT_GT(Sum(text, "hafab_agent_heartbeats_total", {"outcome=\"ok\""}), 0) << text;
    outputs.push_back(text);
  }

  // A failover, so that the operation histograms have samples.
  ASSERT_EQ(c.Hafab({"kill", node, "--state-dir", c.state_dir()}, &out), 0) << out;
  ASSERT_TRUE(c.WaitFor(
                   "kvd's primary off " + node,
                   [&] {
                     auto p = c.KvdPrimary();
                     return !p.second.empty() && p.second != node;
                   },
                   30s)
                  .ok());

  const std::string api = Trimmed(ReadFile(c.state_dir() + "/api.url"));
  const std::string read = Trimmed(ReadFile(c.state_dir() + "/read.token"));
  std::string controller;
  ASSERT_TRUE(c.WaitFor(
                   "a finished failover in the controller's /metrics",
                   [&] {
                     auto r = http::Fetch("GET", api + "/metrics", "",
                                          {{"Authorization", "Bearer " + read}}, 2s);
                     if (!r.ok() || r->status != 200) return false;
                     controller = r->body;
                     return controller.find(
                                "hafab_controller_operation_seconds_count{kind="
                                "\"failover\",outcome=\"done\"}") != std::string::npos;
                   },
                   30s)
                  .ok())
      << controller;
  EXPECT_EQ(PromtoolCheck(controller, "controller"), "") << controller;
  for (const char* family :
       {"hafab_controller_nodes{state=\"down\"} 1", "hafab_controller_role_routable{role=\"kvd\"}",
        "hafab_controller_role_availability_ratio{role=\"kvd\",window=\"1h\"}",
        "hafab_controller_operation_step_seconds_bucket",
        "hafab_controller_store_commit_failures_total"}) {
    EXPECT_NE(controller.find(family), std::string::npos) << family;
  }

  const std::string gateway_addr = Trimmed(ReadFile(c.state_dir() + "/gateway.addr"));
  ASSERT_FALSE(gateway_addr.empty());
  auto gateway = http::Fetch("GET", "http://" + gateway_addr + "/metrics", "", {}, 2s);
  ASSERT_TRUE(gateway.ok() && gateway->status == 200);
  EXPECT_EQ(PromtoolCheck(gateway->body, "gateway"), "") << gateway->body;
  outputs.push_back(controller);
  outputs.push_back(gateway->body);
  // The new primary's node attached kvd's volume: an agent's metrics after the failover too.
  const auto [new_instance, new_node] = c.KvdPrimary();
  const std::string after = scrape(new_node);
  EXPECT_EQ(PromtoolCheck(after, "agent-after"), "") << after;
  outputs.push_back(after);

  // The dashboard queries only metrics some daemon exposes.
  std::ifstream dash_file(kRoot + "/deploy/grafana/hafab.json");
  ASSERT_TRUE(dash_file) << "no deploy/grafana/hafab.json";
  nlohmann::json dashboard = nlohmann::json::parse(dash_file, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(dashboard.is_discarded()) << "deploy/grafana/hafab.json is not JSON";
  std::vector<std::string> exprs;
  Exprs(dashboard, &exprs);
  ASSERT_GE(exprs.size(), 10u);
  std::set<std::string> names;
  const std::regex metric("hafab_[a-zA-Z0-9_]+");
  for (const auto& e : exprs) {
    for (std::sregex_iterator it(e.begin(), e.end(), metric), end; it != end; ++it) {
      names.insert(it->str());
    }
  }
  ASSERT_FALSE(names.empty());
  for (const auto& name : names) {
    bool found = false;
    for (const auto& text : outputs) found = found || Exposes(text, name);
    EXPECT_TRUE(found) << "deploy/grafana/hafab.json queries " << name
                       << ", which no daemon's /metrics has";
  }
  EXPECT_TRUE(c.Stop().ok());
}

}  // namespace
}  // namespace hafab::e2e
