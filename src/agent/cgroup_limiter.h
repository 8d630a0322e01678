// Resource limiters (resource_limiter.h): cgroup v2, cgroup v1 (cpu + memory controllers),
// and rlimit/nice where no cgroup can be written.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "agent/resource_limiter.h"

namespace hafab::agent {

// Picks the best mechanism this machine allows and logs which. Instance cgroups are
// created under the agent's own cgroup, in a group named `group` (e.g. "hafab-n1").
std::unique_ptr<ResourceLimiter> MakeResourceLimiter(const std::string& group);

// cgroup v1: <memory mount>/<own path>/<group>/<instance> and the same under the cpu mount.
// memory.limit_in_bytes, cpu.cfs_quota_us/cfs_period_us; OOM kills from memory.oom_control.
class CgroupV1Limiter final : public ResourceLimiter {
 public:
  // `memory_base` and `cpu_base` are the group directories (created if missing).
  CgroupV1Limiter(std::string memory_base, std::string cpu_base);
  ~CgroupV1Limiter() override;  // removes the group directories if empty
  std::string Mechanism() const override { return "cgroup v1"; }
  Status Prepare(const std::string& instance, const manifest::Resources& resources,
                 LaunchSpec* spec) override;
  bool OomKilled(const std::string& instance) override;
  void Release(const std::string& instance) override;
  // memory.usage_in_bytes; cpuacct.usage where cpuacct is mounted with cpu (else no CPU).
  std::optional<CgroupUsage> Usage(const std::string& instance) const override;

 private:
  std::string memory_base_;
  std::string cpu_base_;
  std::map<std::string, uint64_t> oom_baseline_;
};

// cgroup v2: <mount>/<own path>/<group>/<instance>; memory.max, cpu.max, memory.events.
class CgroupV2Limiter final : public ResourceLimiter {
 public:
  explicit CgroupV2Limiter(std::string base);
  ~CgroupV2Limiter() override;
  std::string Mechanism() const override { return "cgroup v2"; }
  Status Prepare(const std::string& instance, const manifest::Resources& resources,
                 LaunchSpec* spec) override;
  bool OomKilled(const std::string& instance) override;
  void Release(const std::string& instance) override;
  // cpu.stat usage_usec and memory.current.
  std::optional<CgroupUsage> Usage(const std::string& instance) const override;

 private:
  std::string base_;
  std::map<std::string, uint64_t> oom_baseline_;
};

// No cgroup: RLIMIT_AS for memory (address space, coarser than RSS) and nice 10 for a CPU
// limit below one core. An instance over RLIMIT_AS fails its allocations; it is not killed,
// so OomKilled is always false.
class RlimitLimiter final : public ResourceLimiter {
 public:
  std::string Mechanism() const override { return "rlimit"; }
  Status Prepare(const std::string& instance, const manifest::Resources& resources,
                 LaunchSpec* spec) override;
  bool OomKilled(const std::string& instance) override { return false; }
  void Release(const std::string& instance) override {}
};

}  // namespace hafab::agent
