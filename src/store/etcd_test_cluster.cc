#include "store/etcd_test_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "http/http.h"
#include "testing/ports.h"

namespace hafab::store::testing {

using hafab::testing::FreePort;

std::string EtcdTestCluster::FindBinary() {
  if (const char* env = ::getenv("HAFAB_ETCD_BINARY"); env != nullptr && *env != '\0') {
    return ::access(env, X_OK) == 0 ? std::string(env) : std::string();
  }
  const char* path = ::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/etcd";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  if (::access("/usr/bin/etcd", X_OK) == 0) return "/usr/bin/etcd";
  return "";
}

Result<std::unique_ptr<EtcdTestCluster>> EtcdTestCluster::Start(Options options) {
  std::string binary = FindBinary();
  if (binary.empty()) {
    return Status::NotFound(
        "no etcd binary (install Debian's etcd-server, or set HAFAB_ETCD_BINARY)");
  }
  if (options.members < 1) return Status::InvalidArgument("an etcd cluster needs a member");
  // A port found free may be taken by another process before etcd binds it: then start
  // again on other ports.
  constexpr int kAttempts = 3;
  Status failed;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    std::unique_ptr<EtcdTestCluster> cluster(new EtcdTestCluster(options));
    cluster->binary_ = binary;
    failed = cluster->StartOnce();
    if (failed.ok()) return cluster;
    if (failed.message().find("address already in use") == std::string::npos) return failed;
  }
  return failed;
}

Status EtcdTestCluster::StartOnce() {
  std::string pattern = (std::filesystem::temp_directory_path() / "hafab-etcd-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return Status::Unavailable("cannot create a temporary directory for etcd");
  }
  root_ = pattern;
  for (int i = 0; i < options_.members; ++i) {
    Member m;
    m.name = "m" + std::to_string(i);
    m.client_port = FreePort();
    m.peer_port = FreePort();
    if (m.client_port == 0 || m.peer_port == 0) return Status::Unavailable("no free port for etcd");
    m.data_dir = root_ + "/" + m.name + ".etcd";
    m.log_path = root_ + "/" + m.name + ".log";
    if (!initial_cluster_.empty()) initial_cluster_ += ",";
    initial_cluster_ += m.name + "=http://127.0.0.1:" + std::to_string(m.peer_port);
    members_.push_back(std::move(m));
  }
  for (int i = 0; i < options_.members; ++i) {
    HAFAB_RETURN_IF_ERROR(Launch(i, /*new_cluster=*/true));
  }
  for (int i = 0; i < options_.members; ++i) {
    Status healthy = WaitHealthy(i, options_.start_timeout);
    if (healthy.ok()) continue;
    for (int j = 0; j < options_.members; ++j) {
      if (LogTail(j).find("address already in use") != std::string::npos) {
        return Status::Unavailable("etcd member " + members_[j].name +
                                   ": address already in use; log:\n" + LogTail(j));
      }
    }
    return healthy;
  }
  return Status::Ok();
}

EtcdTestCluster::~EtcdTestCluster() {
  for (int i = 0; i < size(); ++i) Kill(i);
  if (!root_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
}

Status EtcdTestCluster::Launch(int member, bool new_cluster) {
  Member& m = members_[member];
  std::string client = "http://127.0.0.1:" + std::to_string(m.client_port);
  std::string peer = "http://127.0.0.1:" + std::to_string(m.peer_port);
  std::vector<std::string> args = {
      binary_,
      "--name=" + m.name,
      "--data-dir=" + m.data_dir,
      "--listen-client-urls=" + client,
      "--advertise-client-urls=" + client,
      "--listen-peer-urls=" + peer,
      "--initial-advertise-peer-urls=" + peer,
      "--initial-cluster=" + initial_cluster_,
      std::string("--initial-cluster-state=") + (new_cluster ? "new" : "existing"),
      "--initial-cluster-token=hafab-test",
      "--heartbeat-interval=" + std::to_string(options_.heartbeat_ms),
      "--election-timeout=" + std::to_string(options_.election_ms),
      "--logger=zap",
      "--log-outputs=stderr",
      "--log-level=warn",
  };
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int log_fd = ::open(m.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return Status::Unavailable("cannot open " + m.log_path);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return Status::Unavailable("fork failed for etcd");
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  m.pid = pid;
  return Status::Ok();
}

void EtcdTestCluster::Kill(int member) {
  Member& m = members_[member];
  if (m.pid <= 0) return;
  ::kill(m.pid, SIGKILL);
  int status = 0;
  while (::waitpid(m.pid, &status, 0) < 0 && errno == EINTR) {
  }
  m.pid = -1;
}

Status EtcdTestCluster::Restart(int member) {
  if (Running(member)) return Status::Ok();
  return Launch(member, /*new_cluster=*/false);
}

bool EtcdTestCluster::Running(int member) const { return members_[member].pid > 0; }

Status EtcdTestCluster::WaitHealthy(int member, Duration timeout) {
  const Member& m = members_[member];
  Clock& clock = RealClock();
  TimePoint give_up = clock.Now() + timeout;
  std::string url = "http://127.0.0.1:" + std::to_string(m.client_port) + "/health";
  std::string last = "no answer";
  while (clock.Now() < give_up) {
    if (m.pid > 0) {
      int status = 0;
      if (::waitpid(m.pid, &status, WNOHANG) == m.pid) {
        members_[member].pid = -1;
        return Status::Unavailable("etcd member " + m.name + " exited; log:\n" + LogTail(member));
      }
    }
    auto answer = http::Fetch("GET", url, "", {}, std::chrono::milliseconds(500));
    if (answer.ok()) {
      if (answer->status == 200 && answer->body.find("\"true\"") != std::string::npos) {
        return Status::Ok();
      }
      last = answer->body;
    } else {
      last = answer.status().message();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // poll interval
  }
  return Status::Unavailable("etcd member " + m.name + " not healthy within " +
                             std::to_string(static_cast<long long>(ToMillis(timeout))) +
                             "ms (last: " + last + "); log:\n" + LogTail(member));
}

std::string EtcdTestCluster::LogTail(int member) const {
  std::ifstream in(members_[member].log_path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    lines.push_back(std::move(line));
    if (lines.size() > 20) lines.erase(lines.begin());
  }
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

std::string EtcdTestCluster::Url() const {
  std::string url = "etcd://";
  for (int i = 0; i < size(); ++i) {
    if (i > 0) url += ",";
    url += Endpoint(i).Name();
  }
  return url;
}

std::string EtcdTestCluster::UrlStartingWith(int member) const {
  std::string url = "etcd://" + Endpoint(member).Name();
  for (int i = 0; i < size(); ++i) {
    if (i != member) url += "," + Endpoint(i).Name();
  }
  return url;
}

int EtcdTestCluster::Leader() const {
  for (int i = 0; i < size(); ++i) {
    if (!Running(i)) continue;
    EtcdClientOptions options;
    options.request_timeout = std::chrono::seconds(1);
    EtcdClient client({Endpoint(i)}, options);
    auto status = client.Call("/v3/maintenance/status", nlohmann::json::object(),
                              EtcdClient::Retry::kIdempotent);
    if (!status.ok()) continue;
    std::string leader = status->value("leader", std::string());
    if (leader.empty()) continue;
    // Find the member with that id: each answers with its own id in the header.
    for (int j = 0; j < size(); ++j) {
      if (!Running(j)) continue;
      EtcdClient other({Endpoint(j)}, options);
      auto s = other.Call("/v3/maintenance/status", nlohmann::json::object(),
                          EtcdClient::Retry::kIdempotent);
      if (s.ok() && s->value("header", nlohmann::json::object()).value("member_id", "") == leader) {
        return j;
      }
    }
  }
  return -1;
}

std::vector<EtcdEndpoint> EtcdTestCluster::Endpoints() const {
  std::vector<EtcdEndpoint> out;
  for (int i = 0; i < size(); ++i) out.push_back(Endpoint(i));
  return out;
}

EtcdEndpoint EtcdTestCluster::Endpoint(int member) const {
  return EtcdEndpoint{"127.0.0.1", members_[member].client_port};
}

int EtcdTestCluster::MemberOf(const std::string& endpoint_name) const {
  for (int i = 0; i < size(); ++i) {
    if (Endpoint(i).Name() == endpoint_name) return i;
  }
  return -1;
}

}  // namespace hafab::store::testing
