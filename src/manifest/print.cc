// PrintManifest (declared in parser.h): the canonical YAML form of a Manifest.
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <charconv>
#include <regex>

#include "core/duration.h"
#include "manifest/parser.h"
#include "manifest/units.h"

namespace hafab::manifest {
namespace {

// The shortest text that reads back to exactly `v`.
std::string Number(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, ptr);
}

// Free text (commands, versions, env values). ParseManifest reads every scalar as text, but
// other YAML tools would read 1.10 as a number and yes as true: quote what looks like one.
struct Text {
  const std::string& s;
};

bool LooksLikeNumberOrBool(const std::string& s) {
  static const std::regex kNumber(
      "[-+]?(\\.?[0-9][0-9_]*\\.?[0-9_]*([eE][-+]?[0-9]+)?|0x[0-9a-fA-F]+|\\.inf|\\.nan)");
  std::string lower;
  for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* b : {"y", "n", "yes", "no", "true", "false", "on", "off"}) {
    if (lower == b) return true;
  }
  return std::regex_match(s, kNumber);
}

YAML::Emitter& operator<<(YAML::Emitter& out, Text t) {
  if (LooksLikeNumberOrBool(t.s)) out << YAML::DoubleQuoted;
  return out << t.s;
}

void Flow(YAML::Emitter& out, const std::vector<std::string>& items) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const std::string& s : items) out << Text{s};
  out << YAML::EndSeq;
}

void PrintProbe(YAML::Emitter& out, const char* which, const Probe& p) {
  out << YAML::Key << which << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "kind" << YAML::Value << std::string(ProbeKindName(p.kind));
  if (p.kind == ProbeKind::kHttp) out << YAML::Key << "path" << YAML::Value << Text{p.path};
  if (p.kind == ProbeKind::kExec) {
    out << YAML::Key << "command" << YAML::Value;
    Flow(out, p.command);
  }
  out << YAML::Key << "interval" << YAML::Value << FormatDuration(p.interval);
  out << YAML::Key << "timeout" << YAML::Value << FormatDuration(p.timeout);
  out << YAML::Key << "failure_threshold" << YAML::Value << p.failure_threshold;
  out << YAML::Key << "success_threshold" << YAML::Value << p.success_threshold;
  if (std::string_view(which) == "readiness") {
    out << YAML::Key << "failover_after" << YAML::Value << FormatDuration(p.failover_after);
  }
  out << YAML::EndMap;
}

void PrintRole(YAML::Emitter& out, const Role& r) {
  const Role defaults;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << r.name;
  out << YAML::Key << "mode" << YAML::Value << std::string(RoleModeName(r.mode));
  out << YAML::Key << "command" << YAML::Value << Text{r.command};
  if (!r.args.empty()) {
    out << YAML::Key << "args" << YAML::Value;
    Flow(out, r.args);
  }
  if (!r.env.empty()) {
    out << YAML::Key << "env" << YAML::Value << YAML::BeginMap;
    for (const auto& [k, v] : r.env) out << YAML::Key << k << YAML::Value << Text{v};
    out << YAML::EndMap;
  }
  if (r.autoscale) {
    const Autoscale& a = *r.autoscale;
    out << YAML::Key << "min" << YAML::Value << a.min;
    out << YAML::Key << "max" << YAML::Value << a.max;
    out << YAML::Key << "autoscale" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "metric" << YAML::Value << a.metric;
    out << YAML::Key << "target" << YAML::Value << Number(a.target);
    out << YAML::Key << "stabilization" << YAML::Value << FormatDuration(a.stabilization);
    out << YAML::Key << "cooldown" << YAML::Value << FormatDuration(a.cooldown);
    out << YAML::EndMap;
  } else {
    out << YAML::Key << "instances" << YAML::Value << r.instances;
  }
  if (r.port != 0) out << YAML::Key << "port" << YAML::Value << r.port;
  if (r.endpoint) {
    out << YAML::Key << "endpoint" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "listen" << YAML::Value << Text{r.endpoint->listen};
    if (!r.endpoint->allow.empty()) {
      out << YAML::Key << "allow" << YAML::Value;
      Flow(out, r.endpoint->allow);
    }
    out << YAML::EndMap;
  }
  if (!r.volume.empty()) out << YAML::Key << "volume" << YAML::Value << r.volume;
  if (r.probes.liveness || r.probes.readiness) {
    out << YAML::Key << "probes" << YAML::Value << YAML::BeginMap;
    if (r.probes.liveness) PrintProbe(out, "liveness", *r.probes.liveness);
    if (r.probes.readiness) PrintProbe(out, "readiness", *r.probes.readiness);
    out << YAML::EndMap;
  }
  if (r.restart != defaults.restart) {
    out << YAML::Key << "restart" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "policy" << YAML::Value << std::string(RestartPolicyName(r.restart.policy));
    out << YAML::Key << "max_restarts" << YAML::Value << r.restart.max_restarts;
    out << YAML::Key << "window" << YAML::Value << FormatDuration(r.restart.window);
    out << YAML::Key << "backoff_initial" << YAML::Value
        << FormatDuration(r.restart.backoff_initial);
    out << YAML::Key << "backoff_max" << YAML::Value << FormatDuration(r.restart.backoff_max);
    out << YAML::EndMap;
  }
  if (r.resources != defaults.resources) {
    out << YAML::Key << "resources" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "cpu" << YAML::Value << Number(r.resources.cpu);
    out << YAML::Key << "memory" << YAML::Value << FormatByteSize(r.resources.memory_bytes);
    out << YAML::EndMap;
  }
  if (r.update != defaults.update) {
    out << YAML::Key << "update" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "max_unavailable_domains" << YAML::Value
        << r.update.max_unavailable_domains;
    out << YAML::Key << "ready_timeout" << YAML::Value << FormatDuration(r.update.ready_timeout);
    out << YAML::EndMap;
  }
  if (r.replication != defaults.replication) {
    out << YAML::Key << "replication" << YAML::Value << YAML::BeginMap;
    if (r.replication.quorum > 0)
      out << YAML::Key << "quorum" << YAML::Value << r.replication.quorum;
    out << YAML::Key << "rebuild_after" << YAML::Value
        << FormatDuration(r.replication.rebuild_after);
    if (!r.replication.hook.empty()) {
      out << YAML::Key << "hook" << YAML::Value << Text{r.replication.hook};
    }
    out << YAML::EndMap;
  }
  if (r.stop_grace != defaults.stop_grace) {
    out << YAML::Key << "stop_grace" << YAML::Value << FormatDuration(r.stop_grace);
  }
  if (r.drain) {
    out << YAML::Key << "drain" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "command" << YAML::Value;
    Flow(out, r.drain->command);
    out << YAML::Key << "timeout" << YAML::Value << FormatDuration(r.drain->timeout);
    out << YAML::EndMap;
  }
  if (!r.version.empty()) out << YAML::Key << "version" << YAML::Value << Text{r.version};
  if (!r.user.empty()) out << YAML::Key << "user" << YAML::Value << Text{r.user};
  if (!r.group.empty()) out << YAML::Key << "group" << YAML::Value << Text{r.group};
  out << YAML::EndMap;
}

}  // namespace

std::string PrintManifest(const Manifest& m) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "cluster" << YAML::Value << m.cluster;
  out << YAML::Key << "settings" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "heartbeat_interval" << YAML::Value
      << FormatDuration(m.settings.heartbeat_interval);
  out << YAML::Key << "lease_ttl" << YAML::Value << FormatDuration(m.settings.lease_ttl);
  out << YAML::Key << "api_listen" << YAML::Value << Text{m.settings.api_listen};
  out << YAML::Key << "failure_detector" << YAML::Value
      << std::string(FailureDetectorName(m.settings.failure_detector));
  out << YAML::EndMap;
  if (!m.nodes.empty()) {
    out << YAML::Key << "nodes" << YAML::Value << YAML::BeginSeq;
    for (const Node& n : m.nodes) {
      out << YAML::BeginMap;
      out << YAML::Key << "name" << YAML::Value << n.name;
      out << YAML::Key << "fault_domain" << YAML::Value << n.fault_domain;
      out << YAML::Key << "update_domain" << YAML::Value << n.update_domain;
      out << YAML::Key << "address" << YAML::Value << Text{n.address};
      if (n.capacity != 0) out << YAML::Key << "capacity" << YAML::Value << n.capacity;
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::Key << "roles" << YAML::Value << YAML::BeginSeq;
  for (const Role& r : m.roles) PrintRole(out, r);
  out << YAML::EndSeq;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace hafab::manifest
