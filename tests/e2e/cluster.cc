#include "tests/e2e/cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "http/http.h"
#include "testing/ports.h"
#include "tests/e2e/process.h"

namespace hafab::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;
using testing::FreePort;

std::string ReadTrimmed(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string Manifest(const ClusterOptions& o, int kvd_port, int echo_port, int kvd_app,
                     int echo_app) {
  std::ostringstream m;
  m << "cluster: e2e\n"
    << "settings:\n";
  if (!o.lease_ttl.empty()) m << "  lease_ttl: " << o.lease_ttl << "\n";
  m << "  api_listen: " << o.api_listen << "\n";
  if (!o.failure_detector.empty()) m << "  failure_detector: " << o.failure_detector << "\n";
  m << "nodes:\n";
  for (int i = 1; i <= o.nodes; ++i) {
    m << "  - name: n" << i << "\n    fault_domain: fd" << i << "\n    update_domain: ud" << i
      << "\n";
    if (static_cast<size_t>(i) <= o.node_addresses.size()) {
      m << "    address: " << o.node_addresses[static_cast<size_t>(i) - 1] << "\n";
    }
  }
  m << "roles:\n"
    << "  - name: kvd\n    mode: active-passive\n    command: kvd\n    instances: "
    << o.kvd_instances << "\n    port: " << kvd_app << "\n    volume: kvd-data\n"
    << "    endpoint:\n      listen: 127.0.0.1:" << kvd_port << "\n      allow: [127.0.0.0/8]\n"
    << "    probes:\n"
    << "      liveness: {kind: http, path: /health, interval: 100ms, timeout: 100ms, "
       "failure_threshold: 3}\n"
    << "      readiness: {kind: http, path: /health, interval: 100ms, timeout: 100ms}\n";
  if (o.echo_instances > 0) {
    m << "  - name: echo\n    mode: load-balanced\n    command: echo-app\n";
    // min/max in echo_extra (autoscaling) replace instances.
    if (o.echo_extra.find("    min:") == std::string::npos) {
      m << "    instances: " << o.echo_instances << "\n";
    }
    m << "    port: " << echo_app << "\n"
      << "    endpoint:\n      listen: 127.0.0.1:" << echo_port << "\n      allow: [127.0.0.0/8]\n"
      << "    probes:\n"
      << "      liveness: {kind: http, path: /health}\n"
      << "      readiness: {kind: http, path: /ready, interval: 100ms, timeout: 100ms}\n"
      << o.echo_extra;
  }
  return m.str();
}

// opts.example with the edits applied and its fixed ports replaced (see ClusterOptions);
// Internal if a text to replace is missing.
Result<std::string> Example(const ClusterOptions& o, std::vector<int>* endpoints, int app_port) {
  std::string m = ReadFile(std::string(HAFAB_SOURCE_DIR) + "/" + o.example);
  if (m.empty()) return Status::Internal(o.example + " is missing or empty");
  for (const auto& [from, to] : o.example_edits) {
    size_t at = m.find(from);
    if (at == std::string::npos) {
      return Status::Internal(o.example + " has no \"" + from + "\" to replace");
    }
    m.replace(at, from.size(), to);
  }
  // App ports 100 apart: a role's instances take the ports after its own.
  static const std::regex kPort(R"((listen: 127\.0\.0\.1:|\bport: )(\d+))");
  std::string out;
  auto last = m.cbegin();
  for (std::sregex_iterator it(m.begin(), m.end(), kPort), end; it != end; ++it) {
    int port = 0;
    if ((*it)[1].str() == "port: ") {
      port = app_port;
      app_port += 100;
    } else {
      port = FreePort();
      endpoints->push_back(port);
    }
    out.append(last, (*it)[0].first).append((*it)[1].str() + std::to_string(port));
    last = (*it)[0].second;
  }
  out.append(last, m.cend());
  return out;
}

}  // namespace

const std::pair<std::string, std::string> kQuickstartKvdTcpLiveness = {
    "        kind: http       # GET http://127.0.0.1:$HAFAB_PORT/health; 2xx = alive. Not tcp: "
    "a\n        path: /health    #   hung (stopped, deadlocked) process still accepts TCP "
    "connections\n",
    "        kind: tcp\n"};

Cluster::Cluster(ClusterOptions opts) : opts_(std::move(opts)) {
  char tmpl[] = "/tmp/hafab-e2e-XXXXXX";
  dir_ = mkdtemp(tmpl);
  state_dir_ = dir_ + "/state";
}

Cluster::~Cluster() {
  if (up_pid_ > 0) (void)Stop(10s);
  std::error_code ec;
  if (!std::getenv("HAFAB_KEEP_TEST_DIRS")) fs::remove_all(dir_, ec);
}

Status Cluster::Start(Duration timeout) {
  kvd_port_ = FreePort();
  echo_port_ = FreePort();
  // App ports: the controller uses the role's port for instance 0 and the next ones after.
  // They stay below the kernel's ephemeral range (32768+), where outgoing connections of the
  // checker and the gateway would otherwise take them.
  int kvd_app = FreePort();
  int echo_app = kvd_app + 100;
  std::string file = dir_ + "/cluster.yaml";
  bool replicated = false;
  if (!opts_.example.empty()) {
    std::vector<int> endpoints;
    HAFAB_ASSIGN_OR_RETURN(std::string m, Example(opts_, &endpoints, kvd_app));
    if (!endpoints.empty()) kvd_port_ = endpoints[0];
    if (endpoints.size() > 1) echo_port_ = endpoints[1];
    replicated = m.find("mode: replicated") != std::string::npos;
    std::ofstream(file) << m;
  } else {
    std::ofstream(file) << Manifest(opts_, kvd_port_, echo_port_, kvd_app, echo_app);
  }

  std::vector<std::string> args = {
      HAFAB_BIN,         "up", file, "--state-dir", state_dir_, "--no-watch", "--revive-after",
      opts_.revive_after};
  args.insert(args.end(), opts_.extra_up_args.begin(), opts_.extra_up_args.end());
  up_pid_ = fork();
  if (up_pid_ == 0) {
    int fd = open((dir_ + "/up.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (replicated) {
    return WaitFor(
        "the replicated role's primary to answer through the gateway at " + kvd_url(),
        [&] {
          auto r = http::Fetch("GET", kvd_url() + "/hafab/v1/replica", "", {}, 500ms);
          if (!r.ok() || r->status != 200) return false;
          json j = json::parse(r->body, nullptr, false);
          return j.is_object() && j.value("role", "") == "primary";
        },
        timeout);
  }
  return WaitFor(
      "kvd to answer through the gateway at " + kvd_url(),
      [&] {
        auto r = http::Fetch("GET", kvd_url() + "/health", "", {}, 500ms);
        return r.ok() && r->status == 200;
      },
      timeout);
}

Status Cluster::Stop(Duration timeout) {
  if (up_pid_ <= 0) return Status::Ok();
  kill(up_pid_, SIGTERM);
  int status = 0;
  auto deadline = RealClock().Now() + timeout;
  while (waitpid(up_pid_, &status, WNOHANG) == 0) {
    if (RealClock().Now() > deadline) {
      kill(up_pid_, SIGKILL);
      waitpid(up_pid_, &status, 0);
      up_pid_ = 0;
      return Status::DeadlineExceeded("`hafab up` did not stop within the deadline");
    }
    std::this_thread::sleep_for(20ms);
  }
  up_pid_ = 0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status::Internal("`hafab up` exited with status " + std::to_string(status) +
                            "; log: " + ReadTrimmed(dir_ + "/up.log"));
  }
  auto left = LeftoverProcesses();
  if (!left.empty()) {
    std::string pids;
    for (pid_t p : left) pids += " " + std::to_string(p);
    for (pid_t p : left) kill(p, SIGKILL);
    return Status::Internal("processes left behind:" + pids);
  }
  return Status::Ok();
}

Result<json> Cluster::Api(const std::string& method, const std::string& path,
                          const std::string& body) {
  std::string url = ReadTrimmed(state_dir_ + "/api.url");
  std::string token = ReadTrimmed(state_dir_ + "/admin.token");
  if (url.empty()) return Status::Unavailable("no api.url yet");
  HAFAB_ASSIGN_OR_RETURN(http::Response r, http::Fetch(method, url + path, body,
                                                       {{"Authorization", "Bearer " + token}}, 2s));
  json j = json::parse(r.body, nullptr, false);
  if (r.status / 100 != 2)
    return Status::Internal(path + ": HTTP " + std::to_string(r.status) + " " + r.body);
  if (j.is_discarded()) return Status::Internal(path + ": not JSON: " + r.body);
  return j;
}

int Cluster::Hafab(const std::vector<std::string>& args, std::string* out) {
  std::vector<std::string> all = {HAFAB_BIN};
  all.insert(all.end(), args.begin(), args.end());
  return RunCapture(all, "", out);
}

Status Cluster::WaitFor(const std::string& what, const std::function<bool()>& pred,
                        Duration timeout) {
  auto deadline = RealClock().Now() + timeout;
  while (RealClock().Now() < deadline) {
    if (pred()) return Status::Ok();
    if (up_pid_ > 0 && waitpid(up_pid_, nullptr, WNOHANG) == up_pid_) {
      up_pid_ = 0;
      return Status::Internal("`hafab up` exited while waiting for " + what + "; log:\n" +
                              ReadTrimmed(dir_ + "/up.log"));
    }
    std::this_thread::sleep_for(20ms);
  }
  return Status::DeadlineExceeded("timed out waiting for " + what + "; up log:\n" +
                                  ReadTrimmed(dir_ + "/up.log"));
}

std::pair<std::string, std::string> Cluster::Primary(const std::string& role) {
  auto st = Api("GET", "/v1/status");
  if (!st.ok()) return {};
  for (const auto& i : st->value("instances", json::array())) {
    if (i.value("role", "") == role && i.value("primary", false) &&
        i.value("state", "") == "running") {
      return {i.value("instance", ""), i.value("node", "")};
    }
  }
  return {};
}

std::vector<pid_t> Cluster::LeftoverProcesses() const { return ProcessesNaming(state_dir_); }

}  // namespace hafab::e2e
