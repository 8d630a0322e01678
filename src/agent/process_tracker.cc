#include "agent/process_tracker.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "agent/procfs.h"

namespace hafab::agent {
namespace {

namespace fs = std::filesystem;

constexpr char kInstanceDirEnv[] = "HAFAB_INSTANCE_DIR";
constexpr char kCgroupPrefix[] = "cgroup:";
constexpr char kEnvironPrefix[] = "environ:";

std::vector<pid_t> ReadProcs(const std::string& dir) {
  std::vector<pid_t> out;
  std::ifstream in(dir + "/cgroup.procs");
  pid_t pid;
  while (in >> pid) out.push_back(pid);
  return out;
}

bool WriteOne(const std::string& path) {
  std::ofstream out(path);
  out << "1";
  out.flush();
  return static_cast<bool>(out);
}

// Signals the members of cgroup `dir`; SIGKILL by cgroup.kill where the kernel has it.
int SignalCgroup(const std::string& dir, int signal) {
  std::vector<pid_t> pids = ReadProcs(dir);
  if (pids.empty()) return 0;
  if (signal == SIGKILL && WriteOne(dir + "/cgroup.kill")) return static_cast<int>(pids.size());
  for (pid_t pid : pids) kill(pid, signal);
  return static_cast<int>(pids.size());
}

std::vector<pid_t> PidsWithInstanceDir(const std::string& instance_dir) {
  std::vector<pid_t> out;
  for (const auto& [pid, value] : ProcessesWithEnv(kInstanceDirEnv)) {
    if (value == instance_dir) out.push_back(pid);
  }
  return out;
}

int SignalAll(const std::vector<pid_t>& pids, int signal) {
  for (pid_t pid : pids) kill(pid, signal);
  return static_cast<int>(pids.size());
}

uint32_t Fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

}  // namespace

std::string InstanceDirOf(const std::string& data_dir, const std::string& instance) {
  return data_dir + "/work/" + instance;
}

std::string AgentCgroupName(const std::string& node, const std::string& data_dir) {
  char hash[9];
  std::snprintf(hash, sizeof(hash), "%08x", Fnv1a(data_dir));
  return "hafab-" + node + "-" + hash;
}

CgroupTracker::CgroupTracker(std::string base) : base_(std::move(base)) {}

CgroupTracker::~CgroupTracker() { rmdir(base_.c_str()); }

Status CgroupTracker::Prepare(const std::string& instance, LaunchSpec* spec) {
  const std::string dir = base_ + "/" + instance;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::Internal("cannot create cgroup " + dir + ": " + ec.message());
  const std::string procs = dir + "/cgroup.procs";
  // Under a pure cgroup v2 mount the resource limiter uses this same directory.
  if (std::find(spec->cgroup_procs.begin(), spec->cgroup_procs.end(), procs) ==
      spec->cgroup_procs.end()) {
    spec->cgroup_procs.push_back(procs);
  }
  return Status::Ok();
}

std::vector<pid_t> CgroupTracker::Members(const std::string& instance) const {
  return ReadProcs(base_ + "/" + instance);
}

int CgroupTracker::Signal(const std::string& instance, int signal) {
  return SignalCgroup(base_ + "/" + instance, signal);
}

std::vector<std::string> CgroupTracker::Instances() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(base_, ec)) {
    if (entry.is_directory() && !ReadProcs(entry.path().string()).empty()) {
      out.push_back(entry.path().filename().string());
    }
  }
  return out;
}

void CgroupTracker::Release(const std::string& instance) {
  rmdir((base_ + "/" + instance).c_str());  // EBUSY while a process is still in it
}

std::string CgroupTracker::Handle(const std::string& instance) const {
  return kCgroupPrefix + base_ + "/" + instance;
}

EnvironTracker::EnvironTracker(std::string data_dir) : data_dir_(std::move(data_dir)) {}

Status EnvironTracker::Prepare(const std::string& instance, LaunchSpec* spec) {
  auto it = spec->env.find(kInstanceDirEnv);
  if (it == spec->env.end() || it->second != InstanceDirOf(data_dir_, instance)) {
    return Status::Internal(std::string("instance ") + instance + ": " + kInstanceDirEnv +
                            " is not set to " + InstanceDirOf(data_dir_, instance));
  }
  return Status::Ok();
}

std::vector<pid_t> EnvironTracker::Members(const std::string& instance) const {
  return PidsWithInstanceDir(InstanceDirOf(data_dir_, instance));
}

int EnvironTracker::Signal(const std::string& instance, int signal) {
  return SignalAll(Members(instance), signal);
}

std::vector<std::string> EnvironTracker::Instances() const {
  const std::string prefix = InstanceDirOf(data_dir_, "");
  std::vector<std::string> out;
  for (const auto& [pid, value] : ProcessesWithEnv(kInstanceDirEnv)) {
    if (value.size() <= prefix.size() || value.compare(0, prefix.size(), prefix) != 0) continue;
    std::string name = value.substr(prefix.size());
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

std::string EnvironTracker::Handle(const std::string& instance) const {
  return kEnvironPrefix + InstanceDirOf(data_dir_, instance);
}

int KillTracked(const std::string& handle) {
  const std::string cg = kCgroupPrefix;
  const std::string env = kEnvironPrefix;
  if (handle.compare(0, cg.size(), cg) == 0) return SignalCgroup(handle.substr(cg.size()), SIGKILL);
  if (handle.compare(0, env.size(), env) == 0) {
    return SignalAll(PidsWithInstanceDir(handle.substr(env.size())), SIGKILL);
  }
  return 0;
}

std::unique_ptr<ProcessTracker> MakeProcessTracker(const std::string& group,
                                                   const std::string& data_dir) {
  for (const char* root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    // cgroup.controllers exists only at the root of a cgroup v2 mount.
    if (!fs::exists(std::string(root) + "/cgroup.controllers")) continue;
    const std::string base = root + OwnCgroupPath("") + "/" + group;
    std::error_code ec;
    fs::create_directories(base, ec);
    if (!ec && access(base.c_str(), W_OK) == 0) {
      spdlog::info("instance processes: tracked in cgroup v2 under {}", base);
      return std::make_unique<CgroupTracker>(base);
    }
  }
  spdlog::warn(
      "instance processes: no writable cgroup v2; tracked by their {} environment variable "
      "(a daemon that clears its environment escapes a stop)",
      kInstanceDirEnv);
  return std::make_unique<EnvironTracker>(data_dir);
}

}  // namespace hafab::agent
