// The heartbeat body (docs/architecture.md, POST /v1/agents/{node}/heartbeat) and its answer.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/supervisor.h"
#include "agent/volume_manager.h"
#include "core/result.h"

namespace hafab::agent {

// A self-fence the controller has not yet been told about.
struct FenceRecord {
  std::string reason;
  WallTime at;
  std::vector<std::string> killed;  // instances killed by it
};

struct HeartbeatInput {
  std::string node;
  std::string address;
  std::string agent_version;
  std::string boot_id;
  std::map<std::string, std::string> labels;
  uint64_t assignments_generation = 0;
  std::vector<InstanceReport> instances;
  std::vector<VolumeReport> volumes;
  std::optional<FenceRecord> fence;
  std::string resource_limits;  // "cgroup v1", ...
};

std::string BuildHeartbeat(const HeartbeatInput& in);

struct HeartbeatAnswer {
  Duration lease_ttl = std::chrono::milliseconds(1500);
  uint64_t assignments_generation = 0;
};

// Errors: InvalidArgument when the body is not the expected JSON.
Result<HeartbeatAnswer> ParseHeartbeatAnswer(const std::string& body);

// /proc/sys/kernel/random/boot_id, "" if unreadable.
std::string ReadBootId();

}  // namespace hafab::agent
