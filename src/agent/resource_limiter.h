// ResourceLimiter: per-instance CPU and memory limits. CgroupLimiter (cgroup_limiter.h)
// uses cgroup v2 where it is mounted with the controllers enabled, else the cgroup v1 cpu and
// memory hierarchies, else setrlimit(RLIMIT_AS) and nice.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "agent/launcher.h"
#include "manifest/model.h"

namespace hafab::agent {

// What an instance's cgroup accounts: CPU time since it was created and memory in use now
// (page cache included, as the kernel charges it); nullopt where the mechanism keeps none.
struct CgroupUsage {
  std::optional<double> cpu_seconds;
  std::optional<uint64_t> memory_bytes;
};

class ResourceLimiter {
 public:
  virtual ~ResourceLimiter() = default;
  // "cgroup v2", "cgroup v1", "rlimit" — which mechanism applies the limits.
  virtual std::string Mechanism() const = 0;
  // Prepares the limits of `instance` before it starts: creates or updates its cgroups and
  // fills spec->cgroup_procs (or the rlimit/nice fields). Errors: Internal naming the file.
  virtual Status Prepare(const std::string& instance, const manifest::Resources& resources,
                         LaunchSpec* spec) = 0;
  // After the instance's process ended: true if the kernel killed it for exceeding its memory
  // limit since the last Prepare.
  virtual bool OomKilled(const std::string& instance) = 0;
  // The instance is gone for good: remove its cgroups.
  virtual void Release(const std::string& instance) = 0;
  // The usage its cgroups account (read from their files now), nullopt when it has none
  // (rlimit, or not prepared). Thread-safe: a metrics scrape calls it off the agent's thread.
  virtual std::optional<CgroupUsage> Usage(const std::string& instance) const {
    return std::nullopt;
  }
};

}  // namespace hafab::agent
