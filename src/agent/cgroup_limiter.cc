#include "agent/cgroup_limiter.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/procfs.h"

namespace hafab::agent {
namespace {

namespace fs = std::filesystem;

Status WriteValue(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  out << value;
  out.flush();
  if (!out) return Status::Internal("cannot write '" + value + "' to " + path);
  return Status::Ok();
}

// The value after `key` in a "key value" per line file (memory.oom_control, memory.events).
uint64_t ReadKeyed(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string k;
  uint64_t v;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

// The first number in a file (memory.current, cpuacct.usage); nullopt if unreadable.
std::optional<uint64_t> ReadNumber(const std::string& path) {
  std::ifstream in(path);
  uint64_t v;
  if (!(in >> v)) return std::nullopt;
  return v;
}

std::optional<uint64_t> ReadKeyedIfPresent(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string k;
  uint64_t v;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return std::nullopt;
}

bool Writable(const std::string& dir) { return access(dir.c_str(), W_OK) == 0; }

Status MakeDir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::Internal("cannot create cgroup " + dir + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

CgroupV1Limiter::CgroupV1Limiter(std::string memory_base, std::string cpu_base)
    : memory_base_(std::move(memory_base)), cpu_base_(std::move(cpu_base)) {}

CgroupV1Limiter::~CgroupV1Limiter() {
  rmdir(memory_base_.c_str());
  rmdir(cpu_base_.c_str());
}

Status CgroupV1Limiter::Prepare(const std::string& instance, const manifest::Resources& r,
                                LaunchSpec* spec) {
  const std::string mem = memory_base_ + "/" + instance;
  const std::string cpu = cpu_base_ + "/" + instance;
  HAFAB_RETURN_IF_ERROR(MakeDir(mem));
  HAFAB_RETURN_IF_ERROR(MakeDir(cpu));
  HAFAB_RETURN_IF_ERROR(WriteValue(mem + "/memory.limit_in_bytes",
                                   r.memory_bytes > 0 ? std::to_string(r.memory_bytes) : "-1"));
  if (r.cpu > 0) {
    HAFAB_RETURN_IF_ERROR(WriteValue(cpu + "/cpu.cfs_period_us", "100000"));
    HAFAB_RETURN_IF_ERROR(
        WriteValue(cpu + "/cpu.cfs_quota_us",
                   std::to_string(std::max<int64_t>(1000, std::llround(r.cpu * 100000)))));
  } else {
    HAFAB_RETURN_IF_ERROR(WriteValue(cpu + "/cpu.cfs_quota_us", "-1"));
  }
  oom_baseline_[instance] = ReadKeyed(mem + "/memory.oom_control", "oom_kill");
  spec->cgroup_procs = {mem + "/cgroup.procs", cpu + "/cgroup.procs"};
  return Status::Ok();
}

bool CgroupV1Limiter::OomKilled(const std::string& instance) {
  uint64_t now = ReadKeyed(memory_base_ + "/" + instance + "/memory.oom_control", "oom_kill");
  uint64_t& base = oom_baseline_[instance];
  bool killed = now > base;
  base = now;
  return killed;
}

void CgroupV1Limiter::Release(const std::string& instance) {
  rmdir((memory_base_ + "/" + instance).c_str());
  rmdir((cpu_base_ + "/" + instance).c_str());
  oom_baseline_.erase(instance);
}

std::optional<CgroupUsage> CgroupV1Limiter::Usage(const std::string& instance) const {
  CgroupUsage u;
  u.memory_bytes = ReadNumber(memory_base_ + "/" + instance + "/memory.usage_in_bytes");
  if (auto ns = ReadNumber(cpu_base_ + "/" + instance + "/cpuacct.usage")) {
    u.cpu_seconds = static_cast<double>(*ns) / 1e9;
  }
  if (!u.memory_bytes && !u.cpu_seconds) return std::nullopt;
  return u;
}

CgroupV2Limiter::CgroupV2Limiter(std::string base) : base_(std::move(base)) {}

CgroupV2Limiter::~CgroupV2Limiter() { rmdir(base_.c_str()); }

Status CgroupV2Limiter::Prepare(const std::string& instance, const manifest::Resources& r,
                                LaunchSpec* spec) {
  const std::string dir = base_ + "/" + instance;
  HAFAB_RETURN_IF_ERROR(MakeDir(dir));
  HAFAB_RETURN_IF_ERROR(
      WriteValue(dir + "/memory.max", r.memory_bytes > 0 ? std::to_string(r.memory_bytes) : "max"));
  HAFAB_RETURN_IF_ERROR(WriteValue(
      dir + "/cpu.max",
      r.cpu > 0 ? std::to_string(std::max<int64_t>(1000, std::llround(r.cpu * 100000))) + " 100000"
                : "max 100000"));
  oom_baseline_[instance] = ReadKeyed(dir + "/memory.events", "oom_kill");
  spec->cgroup_procs = {dir + "/cgroup.procs"};
  return Status::Ok();
}

bool CgroupV2Limiter::OomKilled(const std::string& instance) {
  uint64_t now = ReadKeyed(base_ + "/" + instance + "/memory.events", "oom_kill");
  uint64_t& base = oom_baseline_[instance];
  bool killed = now > base;
  base = now;
  return killed;
}

void CgroupV2Limiter::Release(const std::string& instance) {
  rmdir((base_ + "/" + instance).c_str());
  oom_baseline_.erase(instance);
}

std::optional<CgroupUsage> CgroupV2Limiter::Usage(const std::string& instance) const {
  const std::string dir = base_ + "/" + instance;
  CgroupUsage u;
  u.memory_bytes = ReadNumber(dir + "/memory.current");
  if (auto us = ReadKeyedIfPresent(dir + "/cpu.stat", "usage_usec")) {
    u.cpu_seconds = static_cast<double>(*us) / 1e6;
  }
  if (!u.memory_bytes && !u.cpu_seconds) return std::nullopt;
  return u;
}

Status RlimitLimiter::Prepare(const std::string& instance, const manifest::Resources& r,
                              LaunchSpec* spec) {
  spec->rlimit_as_bytes = r.memory_bytes;
  spec->nice = (r.cpu > 0 && r.cpu < 1) ? 10 : 0;
  return Status::Ok();
}

std::unique_ptr<ResourceLimiter> MakeResourceLimiter(const std::string& group) {
  // cgroup v2 with the memory and cpu controllers delegated to our subtree.
  const std::string v2_root = "/sys/fs/cgroup";
  std::ifstream controllers_file(v2_root + "/cgroup.controllers");
  if (controllers_file) {
    const std::string own = v2_root + OwnCgroupPath("");
    std::string base = own + "/" + group;
    std::ifstream own_controllers(own + "/cgroup.controllers");
    std::string list((std::istreambuf_iterator<char>(own_controllers)), {});
    if (list.find("memory") != std::string::npos && list.find("cpu") != std::string::npos &&
        MakeDir(base).ok() && WriteValue(base + "/cgroup.subtree_control", "+memory +cpu").ok()) {
      spdlog::info("resource limits: cgroup v2 under {}", base);
      return std::make_unique<CgroupV2Limiter>(base);
    }
  }
  // cgroup v1 cpu and memory hierarchies.
  const std::string mem_mount = "/sys/fs/cgroup/memory";
  const std::string cpu_mount = "/sys/fs/cgroup/cpu";
  if (fs::exists(mem_mount + "/cgroup.procs") && fs::exists(cpu_mount + "/cgroup.procs")) {
    std::string mem_base = mem_mount + OwnCgroupPath("memory") + "/" + group;
    std::string cpu_base = cpu_mount + OwnCgroupPath("cpu") + "/" + group;
    if (MakeDir(mem_base).ok() && MakeDir(cpu_base).ok() && Writable(mem_base) &&
        Writable(cpu_base)) {
      spdlog::info("resource limits: cgroup v1 (memory {}, cpu {})", mem_base, cpu_base);
      return std::make_unique<CgroupV1Limiter>(mem_base, cpu_base);
    }
  }
  spdlog::info("resource limits: setrlimit(RLIMIT_AS) and nice (no writable cgroup)");
  return std::make_unique<RlimitLimiter>();
}

}  // namespace hafab::agent
