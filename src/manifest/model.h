// The manifest model: what an operator declares. Parsed and validated by parser.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"

namespace hafab::manifest {

enum class RoleMode { kActivePassive, kLoadBalanced, kReplicated };
enum class ProbeKind { kTcp, kHttp, kExec };
enum class RestartPolicy { kAlways, kOnFailure, kNever };
// How node failures are detected (docs/architecture.md): every agent heartbeats the controller
// (the star), or agents probe their ring neighbours and the controller arbitrates (the ring).
enum class FailureDetector { kStar, kRing };

// Inline: the wire module (which does not link the manifest library) writes them too.
inline std::string_view RoleModeName(RoleMode m) {
  switch (m) {
    case RoleMode::kActivePassive:
      return "active-passive";
    case RoleMode::kLoadBalanced:
      return "load-balanced";
    case RoleMode::kReplicated:
      return "replicated";
  }
  return "?";
}

inline std::string_view FailureDetectorName(FailureDetector d) {
  return d == FailureDetector::kRing ? "ring" : "star";
}

inline std::string_view ProbeKindName(ProbeKind k) {
  switch (k) {
    case ProbeKind::kTcp:
      return "tcp";
    case ProbeKind::kHttp:
      return "http";
    case ProbeKind::kExec:
      return "exec";
  }
  return "?";
}

inline std::string_view RestartPolicyName(RestartPolicy p) {
  switch (p) {
    case RestartPolicy::kAlways:
      return "always";
    case RestartPolicy::kOnFailure:
      return "on-failure";
    case RestartPolicy::kNever:
      return "never";
  }
  return "?";
}

// Where a value came from, for error messages: file:line:col (1-based).
struct SourcePos {
  std::string file;
  int line = 0;
  int column = 0;
  std::string ToString() const;  // "f.yaml:3:5"; just "f.yaml" when line is 0 (no position)
  // Positions say where a value was written, not what it is: they always compare equal, so two
  // manifests that differ only in layout or comments are equal.
  bool operator==(const SourcePos&) const { return true; }
};

struct Probe {
  ProbeKind kind = ProbeKind::kTcp;
  std::string path = "/";            // http only
  std::vector<std::string> command;  // exec only: argv
  Duration interval = std::chrono::milliseconds(200);
  Duration timeout = std::chrono::milliseconds(100);
  int failure_threshold = 3;
  int success_threshold = 1;
  // Readiness only: a process that answered ready (or busy) once and then fails readiness
  // (errors or timeouts) for this long since its last ready/busy answer is hung: it is killed
  // and replaced (an active-passive primary fails over). 0 = never. When not written:
  // DefaultFailoverAfter().
  Duration failover_after = std::chrono::seconds(1);

  // Two probe intervals after readiness has failed: (failure_threshold + 2) x interval.
  Duration DefaultFailoverAfter() const { return (failure_threshold + 2) * interval; }

  bool operator==(const Probe&) const = default;
};

struct Probes {
  std::optional<Probe> liveness;
  // Readiness may answer busy: HTTP 503 or exec exit code 75 (out of rotation, not restarted).
  std::optional<Probe> readiness;

  bool operator==(const Probes&) const = default;
};

struct Restart {
  RestartPolicy policy = RestartPolicy::kAlways;
  int max_restarts = 3;  // in place, within `window`
  Duration window = std::chrono::seconds(60);
  Duration backoff_initial = std::chrono::milliseconds(100);
  Duration backoff_max = std::chrono::seconds(10);

  bool operator==(const Restart&) const = default;
};

struct Resources {
  double cpu = 0;             // cores; 0 = unlimited
  uint64_t memory_bytes = 0;  // 0 = unlimited; manifest writes "256Mi", "1Gi", "500M"

  bool operator==(const Resources&) const = default;
};

struct Endpoint {
  std::string listen;              // "host:port" on the gateway
  std::vector<std::string> allow;  // CIDRs and role names; empty = allow all

  bool operator==(const Endpoint&) const = default;
};

struct UpdatePolicy {
  int max_unavailable_domains = 1;
  Duration ready_timeout = std::chrono::seconds(30);

  bool operator==(const UpdatePolicy&) const = default;
};

// A replicated role's replication (docs/replication.md).
struct Replication {
  // Replicas, the primary included, that hold a write durably before it is acknowledged;
  // 0 = a majority of the instances.
  int quorum = 0;
  // A replica whose node stays down this long is rebuilt on another node.
  Duration rebuild_after = std::chrono::seconds(30);
  // The exec form of the contract (`hook configure`, `hook status`); "" = over HTTP.
  std::string hook;

  int QuorumOf(int instances) const { return quorum > 0 ? quorum : instances / 2 + 1; }
  bool operator==(const Replication&) const = default;
};

struct Autoscale {
  int min = 1;
  int max = 1;
  std::string metric = "cpu";  // "cpu" (utilisation %) or "connections" (per instance)
  double target = 70;
  Duration stabilization = std::chrono::seconds(30);
  Duration cooldown = std::chrono::seconds(30);

  bool operator==(const Autoscale&) const = default;
};

// A role's drain hook: the agent runs it when it stops an instance gracefully, instead of
// sending SIGTERM first; SIGTERM follows once it exits (or at its timeout). For apps whose
// SIGTERM does not drain (the drain contract, examples/apps/README.md).
struct DrainHook {
  std::vector<std::string> command;             // argv, run with the instance's environment
  Duration timeout = std::chrono::seconds(10);  // then the hook is killed; SIGTERM follows

  bool operator==(const DrainHook&) const = default;
};

struct Role {
  std::string name;
  RoleMode mode = RoleMode::kLoadBalanced;
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  int instances = 1;  // active-passive: primary + standbys
  // Set when the manifest gives min/max (load-balanced roles only); then instances == min,
  // the count to start with.
  std::optional<Autoscale> autoscale;
  int port = 0;  // the port the app listens on (HAFAB_PORT)
  std::optional<Endpoint> endpoint;
  std::string volume;       // active-passive: the data disk that follows the primary
  Replication replication;  // replicated roles only
  Probes probes;
  Restart restart;
  Resources resources;
  UpdatePolicy update;
  Duration stop_grace = std::chrono::seconds(5);
  std::optional<DrainHook> drain;
  std::string version;  // free-form; changes trigger a rolling upgrade
  // The account the instances run as, like systemd's User= and Group=; "" = the agent's own.
  // group "" with a user = that user's primary group. Resolved on each node by its agent.
  std::string user;
  std::string group;
  SourcePos pos;  // where the role starts in the file

  bool operator==(const Role&) const = default;
};

struct Node {
  std::string name;
  std::string fault_domain;           // the manifest may omit it: defaults to the node's name
  std::string update_domain;          // likewise
  std::string address = "127.0.0.1";  // embedded mode: every local node is on loopback
  int capacity = 0;                   // max instances; 0 = unlimited
  SourcePos pos;

  bool operator==(const Node&) const = default;
};

struct Settings {
  Duration heartbeat_interval = std::chrono::milliseconds(200);
  // 5 heartbeats; with the 500 ms fence margin a silent node fails over in ~1.7 s.
  Duration lease_ttl = std::chrono::milliseconds(1000);
  std::string api_listen = "127.0.0.1:0";  // controller API; port 0 = pick a free one
  FailureDetector failure_detector = FailureDetector::kStar;
  // Where failure_detector was written (line 0: not written, the controller's choice stands).
  SourcePos failure_detector_pos;

  bool operator==(const Settings&) const = default;
};

struct Manifest {
  std::string cluster = "hafab";
  Settings settings;
  std::vector<Node> nodes;  // for `hafab up` (embedded): the local nodes to start
  std::vector<Role> roles;

  bool operator==(const Manifest&) const = default;
};

}  // namespace hafab::manifest
