#include "agent/assignment.h"

#include <nlohmann/json.hpp>

#include "core/json.h"

namespace hafab::agent {
namespace {

using nlohmann::json;

Duration Ms(const json& j, const char* key, Duration fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  return std::chrono::milliseconds(j[key].get<int64_t>());
}

std::optional<manifest::Probe> ParseProbe(const json& j) {
  if (j.is_null()) return std::nullopt;
  manifest::Probe p;
  std::string kind = j.value("kind", "tcp");
  if (kind == "tcp") {
    p.kind = manifest::ProbeKind::kTcp;
  } else if (kind == "http") {
    p.kind = manifest::ProbeKind::kHttp;
  } else if (kind == "exec") {
    p.kind = manifest::ProbeKind::kExec;
  } else {
    throw std::runtime_error("probe kind '" + kind + "' is not tcp, http or exec");
  }
  p.path = j.value("path", "/");
  if (j.contains("command") && j["command"].is_array()) {
    p.command = j["command"].get<std::vector<std::string>>();
  }
  p.interval = Ms(j, "interval_ms", p.interval);
  p.timeout = Ms(j, "timeout_ms", p.timeout);
  p.failure_threshold = std::max(1, j.value("failure_threshold", p.failure_threshold));
  p.success_threshold = std::max(1, j.value("success_threshold", p.success_threshold));
  p.failover_after = Ms(j, "failover_after_ms", p.DefaultFailoverAfter());
  return p;
}

Assignment ParseOne(const json& j) {
  Assignment a;
  a.raw_json = Dump(j);
  a.instance = j.at("instance").get<std::string>();
  // The name becomes file names (logs, pid files, cgroups): no path tricks.
  if (a.instance.empty() || a.instance == "." || a.instance == ".." ||
      a.instance.find('/') != std::string::npos || a.instance.find('\0') != std::string::npos) {
    throw std::runtime_error("'instance' must be a plain name, not '" + a.instance + "'");
  }
  a.role = j.value("role", "");
  std::string mode = j.value("mode", "load-balanced");
  if (mode == "active-passive") {
    a.mode = manifest::RoleMode::kActivePassive;
  } else if (mode == "replicated") {
    a.mode = manifest::RoleMode::kReplicated;
  } else {
    a.mode = manifest::RoleMode::kLoadBalanced;
  }
  a.run = j.value("run", true);
  a.epoch = j.value("epoch", uint64_t{0});
  a.command = j.value("command", "");
  if (j.contains("args") && j["args"].is_array())
    a.args = j["args"].get<std::vector<std::string>>();
  if (j.contains("env") && j["env"].is_object()) {
    for (auto& [k, v] : j["env"].items()) a.env[k] = v.is_string() ? v.get<std::string>() : Dump(v);
  }
  a.port = j.value("port", 0);
  if (j.contains("volume") && j["volume"].is_string()) a.volume = j["volume"].get<std::string>();
  a.spec_hash = j.value("spec_hash", "");
  a.prior_restarts = std::max(0, j.value("prior_restarts", 0));
  a.user = j.value("user", "");
  a.group = j.value("group", "");
  a.stop_grace = Ms(j, "stop_grace_ms", a.stop_grace);
  if (j.contains("drain") && j["drain"].is_object()) {
    manifest::DrainHook d;
    if (j["drain"].contains("command")) {
      d.command = j["drain"]["command"].get<std::vector<std::string>>();
    }
    if (d.command.empty()) throw std::runtime_error("'drain.command' must not be empty");
    d.timeout = Ms(j["drain"], "timeout_ms", d.timeout);
    a.drain = d;
  }
  if (j.contains("probes") && j["probes"].is_object()) {
    const json& p = j["probes"];
    if (p.contains("liveness")) a.probes.liveness = ParseProbe(p["liveness"]);
    if (p.contains("readiness")) a.probes.readiness = ParseProbe(p["readiness"]);
  }
  if (j.contains("restart") && j["restart"].is_object()) {
    const json& r = j["restart"];
    std::string policy = r.value("policy", "always");
    if (policy == "always") {
      a.restart.policy = manifest::RestartPolicy::kAlways;
    } else if (policy == "on-failure") {
      a.restart.policy = manifest::RestartPolicy::kOnFailure;
    } else if (policy == "never") {
      a.restart.policy = manifest::RestartPolicy::kNever;
    } else {
      throw std::runtime_error("restart policy '" + policy +
                               "' is not always, on-failure or never");
    }
    a.restart.max_restarts = r.value("max_restarts", a.restart.max_restarts);
    a.restart.window = Ms(r, "window_ms", a.restart.window);
    a.restart.backoff_initial = Ms(r, "backoff_initial_ms", a.restart.backoff_initial);
    a.restart.backoff_max = Ms(r, "backoff_max_ms", a.restart.backoff_max);
  }
  if (j.contains("resources") && j["resources"].is_object()) {
    const json& r = j["resources"];
    a.resources.cpu = r.value("cpu", 0.0);
    a.resources.memory_bytes = r.value("memory_bytes", uint64_t{0});
  }
  return a;
}

}  // namespace

Result<AssignmentList> ParseAssignments(const std::string& text) {
  AssignmentList list;
  std::string where = "assignments";
  try {
    json j = json::parse(text);
    list.generation = j.value("generation", uint64_t{0});
    if (j.contains("assignments") && j["assignments"].is_array()) {
      for (const json& a : j["assignments"]) {
        where = "assignment " + a.value("instance", std::string("?"));
        list.assignments.push_back(ParseOne(a));
        if (list.assignments.back().command.empty()) {
          throw std::runtime_error("'command' is empty");
        }
      }
    }
  } catch (const std::exception& e) {
    return Status::InvalidArgument(where + ": " + e.what());
  }
  return list;
}

Result<Assignment> ParseAssignment(const std::string& text) {
  try {
    return ParseOne(json::parse(text));
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("assignment: ") + e.what());
  }
}

}  // namespace hafab::agent
