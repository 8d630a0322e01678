// The sizes hafab accepts, in one place, so that `hafab validate`, `hafab scale`, `hafab apply`
// and the controller's API refuse the same things. They keep every request the controller
// handles on its one event-loop thread (the thread that renews leases) short: a manifest at
// these limits parses and applies in well under a tenth of the shortest lease.
#pragma once

#include <chrono>
#include <cstddef>

namespace hafab::manifest {

// instances: of a role, min:/max: of an autoscaled role, and `hafab scale`.
inline constexpr int kMaxInstancesPerRole = 1000;
// Roles in one manifest.
inline constexpr int kMaxRoles = 500;
// Instances of all roles together (each autoscaled role counted at its max:); also the most
// instances one agent's heartbeat may list.
inline constexpr int kMaxTotalInstances = 5000;
// Nodes in a manifest (a count or a list).
inline constexpr int kMaxNodes = 1000;
// Bytes of manifest text (a file for `hafab validate`, a body for POST /v1/apply).
inline constexpr size_t kMaxManifestBytes = size_t{1} << 20;
// settings.lease_ttl and `hafab controller --lease-ttl`, and so the longest lease a
// controller's heartbeat answer may grant: a longer one would leave a dead node's instances
// unreplaced for hours, and an unbounded one overflows the deadlines computed from it.
inline constexpr std::chrono::hours kMaxLeaseTtl{1};

}  // namespace hafab::manifest
