#include "manifest/validate.h"

#include <cctype>
#include <map>
#include <set>

#include "core/duration.h"
#include "manifest/limits.h"
#include "manifest/units.h"

namespace hafab::manifest {
namespace {

bool IsEnvName(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

class Validator {
 public:
  Validator(const Manifest& m, YamlReader& r) : m_(m), r_(r) {}

  void Run() {
    CheckSettings();
    CheckNodes();
    for (const Role& role : m_.roles) {
      if (Clean("roles[" + std::to_string(&role - m_.roles.data()) + "].name") &&
          !role.name.empty()) {
        role_names_.insert(role.name);
      }
    }
    for (size_t i = 0; i < m_.roles.size(); ++i) CheckRole(i, m_.roles[i]);
    CheckSize();
  }

 private:
  // Where `path` was written, else where its nearest written parent was.
  SourcePos At(std::string path) const {
    while (true) {
      auto it = r_.positions().find(path);
      if (it != r_.positions().end()) return it->second;
      size_t cut = path.find_last_of(".[");
      if (cut == std::string::npos || cut == 0) return {r_.file_name(), 1, 1};
      path.resize(cut);
    }
  }
  bool Written(const std::string& path) const { return r_.positions().count(path) > 0; }
  // Written and read without error.
  bool Clean(const std::string& path) const {
    return Written(path) && r_.error_paths().count(path) == 0;
  }
  // True when nothing at or under `prefix` had an error.
  bool CleanUnder(const std::string& prefix) const {
    auto it = r_.error_paths().lower_bound(prefix);
    for (; it != r_.error_paths().end() && it->compare(0, prefix.size(), prefix) == 0; ++it) {
      if (it->size() == prefix.size() || (*it)[prefix.size()] == '.' ||
          (*it)[prefix.size()] == '[') {
        return false;
      }
    }
    return true;
  }
  void Error(const std::string& path, std::string message) {
    r_.Error(path, At(path), std::move(message));
  }
  void Warning(const std::string& path, std::string message) {
    r_.Warning(At(path), std::move(message));
  }

  void CheckSettings() {
    const Settings& s = m_.settings;
    if (Clean("settings.api_listen")) {
      auto hp = ParseHostPort(s.api_listen, 0);
      if (!hp.ok()) Error("settings.api_listen", "settings.api_listen: " + hp.status().message());
    }
    if (CleanUnder("settings")) {
      if (s.lease_ttl <= s.heartbeat_interval) {
        Error("settings.lease_ttl", "settings.lease_ttl (" + FormatDuration(s.lease_ttl) +
                                        ") must be longer than settings.heartbeat_interval (" +
                                        FormatDuration(s.heartbeat_interval) + ")");
      } else if (s.lease_ttl > kMaxLeaseTtl) {
        Error("settings.lease_ttl", "settings.lease_ttl (" + FormatDuration(s.lease_ttl) +
                                        ") must be at most " + FormatDuration(kMaxLeaseTtl));
      } else if (s.lease_ttl < 3 * s.heartbeat_interval) {
        Warning("settings.lease_ttl",
                "settings.lease_ttl (" + FormatDuration(s.lease_ttl) +
                    ") is less than 3 heartbeats: one or two late heartbeats expire a lease");
      }
    }
  }

  // The limit of limits.h that spans roles (the others are checked as each value is read).
  void CheckSize() {
    int64_t total = 0;
    for (const Role& role : m_.roles)
      total += role.autoscale ? role.autoscale->max : role.instances;
    if (total > kMaxTotalInstances) {
      Error("roles", "roles: " + std::to_string(total) +
                         " instances in all (autoscaled roles at their max); at most " +
                         std::to_string(kMaxTotalInstances));
    }
  }

  void CheckNodes() {
    std::map<std::string, std::string> first;  // name -> path of its first node
    for (size_t i = 0; i < m_.nodes.size(); ++i) {
      std::string path = "nodes[" + std::to_string(i) + "].name";
      const std::string& name = m_.nodes[i].name;
      if (!Clean(path)) continue;
      auto [it, inserted] = first.emplace(name, path);
      if (!inserted) {
        Error(path, path + ": duplicate node " + Quote(name) + " (first defined at line " +
                        std::to_string(At(it->second).line) + ")");
      }
    }
  }

  void CheckRole(size_t i, const Role& role) {
    std::string p = "roles[" + std::to_string(i) + "]";
    CheckUnique(p + ".name", role.name, "role", &first_role_);
    if (!role.volume.empty() && Clean(p + ".volume")) {
      auto [it, inserted] = first_volume_.emplace(role.volume, std::pair(p, role.name));
      if (!inserted) {
        Error(p + ".volume", p + ".volume: volume " + Quote(role.volume) +
                                 " is already the volume of role " + Quote(it->second.second) +
                                 " (line " + std::to_string(At(it->second.first + ".volume").line) +
                                 "); a volume belongs to one role");
      }
    }
    if (role.endpoint) CheckEndpoint(p, role);
    if (role.port != 0 && Clean(p + ".port")) {
      auto [it, inserted] = first_port_.emplace(role.port, std::pair(p, role.name));
      if (!inserted) {
        Warning(p + ".port", p + ".port: " + std::to_string(role.port) +
                                 " is also the port of role " + Quote(it->second.second) +
                                 " (line " + std::to_string(At(it->second.first + ".port").line) +
                                 "); their instances cannot share a node");
      }
    }
    if (!CleanUnder(p)) return;  // relationships below assume every field read as written

    CheckMode(p, role);
    if (role.autoscale) CheckAutoscale(p, *role.autoscale);
    if (role.port == 0) {
      if (role.endpoint) {
        Error(p + ".endpoint", p + ".endpoint: needs the role's port (the port the app " +
                                   "listens on, passed in HAFAB_PORT); add port: 1..65535");
      }
      for (const auto& [which, probe] : {std::pair("liveness", &role.probes.liveness),
                                         std::pair("readiness", &role.probes.readiness)}) {
        if (*probe && (*probe)->kind != ProbeKind::kExec) {
          std::string pp = p + ".probes." + which;
          Error(pp, pp + ": a " + std::string(ProbeKindName((*probe)->kind)) +
                        " probe needs the role's port; add port: 1..65535");
        }
      }
    }
    CheckHangDetection(p, role.probes);
    if (role.restart.backoff_max < role.restart.backoff_initial) {
      Error(p + ".restart.backoff_max", p + ".restart.backoff_max (" +
                                            FormatDuration(role.restart.backoff_max) +
                                            ") must be at least backoff_initial (" +
                                            FormatDuration(role.restart.backoff_initial) + ")");
    }
    for (const auto& [name, value] : role.env) {
      std::string ep = p + ".env." + name;
      if (!IsEnvName(name)) {
        Error(ep, ep + ": " + Quote(name) +
                      " is not a valid environment variable name (letters, digits and '_', "
                      "not starting with a digit)");
      } else if (name.rfind("HAFAB_", 0) == 0) {
        Warning(ep, ep + ": names starting with HAFAB_ are set by the agent (HAFAB_PORT, "
                         "HAFAB_VOLUME_DIR, ...) and replace this value");
      }
    }
  }

  // A hung process (stopped, deadlocked) still completes TCP handshakes from its listen
  // backlog: only an http/exec probe sees it, as a failed liveness probe or as readiness
  // failing for failover_after.
  void CheckHangDetection(const std::string& p, const Probes& probes) {
    if (const auto& r = probes.readiness; r && r->failover_after > Duration::zero()) {
      Duration least = r->failure_threshold * r->interval;
      if (r->failover_after < least) {
        std::string fp = p + ".probes.readiness.failover_after";
        Error(fp, fp + " (" + FormatDuration(r->failover_after) +
                      ") must be at least failure_threshold x interval (" + FormatDuration(least) +
                      "), the time readiness takes to fail; 0 turns it off");
      }
    }
    const auto& l = probes.liveness;
    if (!l || l->kind != ProbeKind::kTcp) return;
    const auto& r = probes.readiness;
    if (r && r->kind != ProbeKind::kTcp && r->failover_after > Duration::zero()) return;
    std::string lp = p + ".probes.liveness";
    Warning(lp, lp + ": a tcp liveness probe alone cannot see a hung process (a stopped or "
                     "deadlocked process still accepts connections into its listen backlog); "
                     "use kind: http or exec, or an http/exec readiness probe with "
                     "failover_after");
  }

  void CheckUnique(const std::string& path, const std::string& name, std::string_view what,
                   std::map<std::string, std::string>* first) {
    if (name.empty() || !Clean(path)) return;
    auto [it, inserted] = first->emplace(name, path);
    if (!inserted) {
      Error(path, path + ": duplicate " + std::string(what) + " " + Quote(name) +
                      " (first defined at line " + std::to_string(At(it->second).line) + ")");
    }
  }

  void CheckMode(const std::string& p, const Role& role) {
    std::string mode(RoleModeName(role.mode));
    const std::string rp = p + ".replication";
    if (Written(rp) && role.mode != RoleMode::kReplicated) {
      Error(rp, rp + ": only replicated roles replicate; mode is " + mode);
    } else if (role.mode == RoleMode::kReplicated && role.replication.quorum > role.instances) {
      Error(rp + ".quorum", rp + ".quorum: " + std::to_string(role.replication.quorum) +
                                " is more than the role's " + std::to_string(role.instances) +
                                " instances: no write could ever be acknowledged");
    }
    if (role.autoscale && role.mode != RoleMode::kLoadBalanced) {
      Error(p + ".min", p + ": min/max (autoscaling) is only for load-balanced roles; mode is " +
                            mode + " (use instances)");
    }
    switch (role.mode) {
      case RoleMode::kActivePassive:
        if (role.instances == 1 && !role.autoscale) {
          Warning(p + ".instances",
                  p + ": active-passive with instances: 1 has no standby; a failure waits for "
                      "a restart or relocation (use instances: 2)");
        }
        if (role.volume.empty()) {
          Warning(p, p + ": active-passive without a volume: a standby that takes over starts "
                         "without the primary's data; fine only for apps that keep no local state");
        }
        break;
      case RoleMode::kReplicated:
        if (role.instances < 3 || role.instances % 2 == 0) {
          Error(p + ".instances",
                p +
                    ".instances: a replicated role needs an odd number of instances, 3 or more, "
                    "so that a majority survives a failure (got " +
                    std::to_string(role.instances) + ")");
        }
        [[fallthrough]];
      case RoleMode::kLoadBalanced:
        if (!role.volume.empty() && role.mode == RoleMode::kReplicated) {
          Error(p + ".volume",
                p + ".volume: a replicated role keeps each replica's data on its own node "
                    "(HAFAB_VOLUME_DIR is a directory of its own); a volume is one disk that "
                    "moves between nodes, it cannot be shared by replicas");
        } else if (!role.volume.empty()) {
          Error(p + ".volume", p +
                                   ".volume: only active-passive roles have a volume (it is "
                                   "attached to one instance at a time); mode is " +
                                   mode);
        }
        break;
    }
  }

  void CheckAutoscale(const std::string& p, const Autoscale& a) {
    if (a.min > a.max) {
      Error(p + ".min", p + ": min (" + std::to_string(a.min) + ") is greater than max (" +
                            std::to_string(a.max) + ")");
    }
    std::string tp = p + ".autoscale.target";
    if (a.target <= 0) {
      Error(tp, tp + ": must be greater than 0");
    } else if (a.metric == "cpu" && a.target > 100) {
      Error(tp, tp + ": a cpu target is a utilisation percentage, 1..100");
    }
  }

  void CheckEndpoint(const std::string& p, const Role& role) {
    const Endpoint& e = *role.endpoint;
    std::string lp = p + ".endpoint.listen";
    if (Clean(lp)) {
      auto hp = ParseHostPort(e.listen, 1);
      if (!hp.ok()) {
        Error(lp, lp + ": " + hp.status().message());
      } else {
        auto [it, inserted] = first_listen_.emplace(e.listen, std::pair(lp, role.name));
        if (!inserted) {
          Error(lp, lp + ": " + e.listen + " is already the endpoint of role " +
                        Quote(it->second.second) + " (line " +
                        std::to_string(At(it->second.first).line) + ")");
        }
      }
    }
    std::string ap = p + ".endpoint.allow";
    if (!Written(ap)) {
      if (Clean(lp) && CleanUnder(p + ".endpoint")) {
        Warning(p + ".endpoint",
                p + ".endpoint: no allow list: the endpoint accepts connections from every "
                    "source (add e.g. allow: [127.0.0.0/8] or role names)");
      }
      return;
    }
    if (!Clean(ap)) return;
    if (e.allow.empty()) {
      Warning(ap, ap + ": empty: the endpoint accepts connections from every source");
    }
    for (size_t j = 0; j < e.allow.size(); ++j) {
      const std::string& entry = e.allow[j];
      if (IsIpOrCidr(entry) || role_names_.count(entry)) continue;
      std::string ep = ap + "[" + std::to_string(j) + "]";
      bool looks_like_address =
          !entry.empty() && (std::isdigit(static_cast<unsigned char>(entry[0])) ||
                             entry.find_first_of(":/") != std::string::npos);
      if (looks_like_address) {
        Error(ep, ep + ": " + Quote(entry) + " is not a valid CIDR or IP address (e.g. " +
                      "10.0.0.0/8, 127.0.0.1, fd00::/8)");
      } else {
        Error(ep, ep + ": " + Quote(entry) +
                      " is neither a CIDR/IP address nor the name of a role in this manifest" +
                      RoleList());
      }
    }
  }

  // " (roles: a, b)", or "" when no role has a usable name.
  std::string RoleList() const {
    std::string list;
    for (const std::string& n : role_names_) list += (list.empty() ? "" : ", ") + n;
    return list.empty() ? "" : " (roles: " + list + ")";
  }

  const Manifest& m_;
  YamlReader& r_;
  std::set<std::string> role_names_;
  std::map<std::string, std::string> first_role_;                            // name -> path
  std::map<std::string, std::pair<std::string, std::string>> first_volume_;  // -> path, role
  std::map<std::string, std::pair<std::string, std::string>> first_listen_;
  std::map<int, std::pair<std::string, std::string>> first_port_;  // -> path, role
};

}  // namespace

void ValidateManifest(const Manifest& manifest, YamlReader& reader) {
  Validator(manifest, reader).Run();
}

}  // namespace hafab::manifest
