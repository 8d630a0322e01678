#include "cli/status_view.h"

#include <algorithm>
#include <sstream>

namespace hafab::cli {
namespace {

using nlohmann::json;

std::string Str(const json& j, const char* key, const std::string& fallback = "-") {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  const json& v = j[key];
  if (v.is_string()) return v.get<std::string>().empty() ? fallback : v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) {
    std::ostringstream o;
    o.precision(3);
    o << v.get<double>();
    return o.str();
  }
  return v.dump();
}

std::string Age(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return "-";
  int64_t ms = j[key].get<int64_t>();
  int64_t s = ms / 1000;
  if (s < 120) return std::to_string(s) + "s";
  if (s < 7200) return std::to_string(s / 60) + "m";
  return std::to_string(s / 3600) + "h";
}

// "ud1 done, ud2 starting, ud3 pending" for a rollout; "" for other operations.
std::string DomainProgress(const json& op) {
  std::string out;
  for (const auto& d : op.value("domains", json::array())) {
    out += (out.empty() ? "" : ", ") + Str(d, "domain") + " " + Str(d, "state");
  }
  return out;
}

}  // namespace

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string RenderStatusTable(const json& status) {
  std::vector<std::vector<std::string>> rows{{"ROLE", "MODE", "INSTANCE", "KIND", "NODE", "FD/UD",
                                              "STATE", "READY", "EPOCH", "RESTARTS", "AGE"}};
  for (const auto& i : status.value("instances", json::array())) {
    std::string ready = Str(i, "readiness");
    std::string fd_ud = Str(i, "fault_domain") + "/" + Str(i, "update_domain");
    rows.push_back({Str(i, "role"), Str(i, "mode"), Str(i, "instance"), Str(i, "kind"),
                    Str(i, "node"), fd_ud, Str(i, "state"), ready, Str(i, "epoch"),
                    Str(i, "restarts", "0"), Age(i, "age_ms")});
  }
  std::string out = FormatTable(rows);
  std::vector<std::vector<std::string>> nodes{{"NODE", "ADDRESS", "FD/UD", "STATE", "INSTANCES"}};
  for (const auto& n : status.value("nodes", json::array())) {
    nodes.push_back({Str(n, "node"), Str(n, "address"),
                     Str(n, "fault_domain") + "/" + Str(n, "update_domain"), Str(n, "state"),
                     Str(n, "instances", "0")});
  }
  if (nodes.size() > 1) out += "\n" + FormatTable(nodes);
  std::string rollouts;
  for (const auto& op : status.value("operations", json::array())) {
    if (Str(op, "kind") != "rollout" || Str(op, "state") != "running") continue;
    rollouts += (op.value("rollback", false) ? "rollback " : "rollout ") + Str(op, "id") + " of " +
                Str(op, "role") + " (" + Str(op, "from_version") + " -> " + Str(op, "to_version") +
                "): " + DomainProgress(op) + "\n";
  }
  if (!rollouts.empty()) out += "\n" + rollouts;
  const json store = status.value("store", json::object());
  if (store.value("failed_commits", 0) > 0) {
    out += "\nstore: " + Str(store, "failed_commits") +
           " failed commits since the controller started (last: " + Str(store, "last_error") + ")" +
           (store.value("reloading", false) ? "; reading the state back" : "") + "\n";
  }
  return out;
}

std::string RenderControllers(const json& replicas) {
  std::vector<std::vector<std::string>> rows{{"CONTROLLER", "ROLE", "LEADING FOR"}};
  for (const auto& r : replicas) {
    const bool leads = Str(r, "role") == "leader";
    rows.push_back({Str(r, "url"), Str(r, "role"), leads ? Age(r, "leader_for_ms") : "-"});
  }
  return FormatTable(rows);
}

std::string RenderEvents(const json& events, int64_t* last_seq) {
  std::string out;
  for (const auto& e : events.value("events", json::array())) {
    int64_t seq = e.value("seq", int64_t{0});
    if (seq <= *last_seq) continue;
    *last_seq = seq;
    out += Str(e, "time", "") + "  " + Str(e, "type", "") + "  " + Str(e, "message", "") + "\n";
  }
  return out;
}

std::string RenderOps(const json& ops) {
  std::string out;
  for (const auto& op : ops.value("operations", json::array())) {
    out += Str(op, "id") + "  " + Str(op, "kind") + " " + Str(op, "role") + "  " +
           Str(op, "state") + "  " + Str(op, "reason", "") + "\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : op.value("steps", json::array())) {
      bool running = s.value("duration_ms", 0.0) < 0;
      rows.push_back({"   ", Str(s, "step"), Str(s, "state"),
                      running ? "..." : Str(s, "duration_ms") + "ms", Str(s, "detail", "")});
    }
    out += FormatTable(rows);
    std::string domains = DomainProgress(op);
    if (!domains.empty()) out += "    domains: " + domains + "\n";
  }
  return out;
}

}  // namespace hafab::cli
