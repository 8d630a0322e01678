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

// ", step collect: quorum lost: ..." — where operation `id` stands and what it waits for, when
// the status lists it; "" otherwise.
std::string OpWait(const json& status, const std::string& id) {
  for (const auto& op : status.value("operations", json::array())) {
    if (Str(op, "id") != id) continue;
    const json steps = op.value("steps", json::array());
    const std::string note = steps.empty() ? "" : Str(steps.back(), "note", "");
    return ", step " + Str(op, "step") + (note.empty() ? "" : ": " + note);
  }
  return "";
}

// Time since the last heartbeat: "850ms" under a second, then "2s", "3m"; "-" when none was heard.
std::string Heartbeat(const json& n) {
  if (!n.contains("last_heartbeat_ms_ago") || !n["last_heartbeat_ms_ago"].is_number()) return "-";
  int64_t ms = n["last_heartbeat_ms_ago"].get<int64_t>();
  if (ms < 1000) return std::to_string(ms) + "ms";
  return Age(n, "last_heartbeat_ms_ago");
}

std::string FdUd(const json& j) { return Str(j, "fault_domain") + "/" + Str(j, "update_domain"); }

// The items of a GET /v1/KIND answer ({"KIND": [...]}).
const json& Items(const json& doc, const char* key) {
  static const json kNone = json::array();
  return doc.is_object() && doc.contains(key) && doc[key].is_array() ? doc[key] : kNone;
}

Rows RoleRows(const json& doc, bool wide) {
  Rows rows{{"NAME", "MODE", "READY", "PRIMARY", "ENDPOINT", "VERSION"}};
  if (wide) rows[0].insert(rows[0].end(), {"PLACED", "EPOCH", "PORT", "VOLUME", "OPERATION"});
  for (const auto& r : Items(doc, "roles")) {
    std::string primary = Str(r, "primary");
    if (r.contains("quorum") && r["quorum"].is_object()) {
      // A replicated role: how many replicas follow at its epoch, of those that vote.
      const json& q = r["quorum"];
      primary = (primary.empty() || primary == "-" ? "(none)" : primary) + " [" +
                std::to_string(q.value("following", 0)) + "/" +
                std::to_string(q.value("voters", 0)) + " following, quorum " +
                std::to_string(q.value("quorum", 0)) +
                (q.value("writable", false) ? "]" : ": NOT WRITABLE]");
    }
    rows.push_back({Str(r, "name"), Str(r, "mode"),
                    Str(r, "ready", "0") + "/" + Str(r, "instances"), primary, Str(r, "endpoint"),
                    Str(r, "version")});
    if (wide) {
      rows.back().insert(rows.back().end(), {Str(r, "placed", "0"), Str(r, "epoch"), Str(r, "port"),
                                             Str(r, "volume"), Str(r, "operation")});
    }
  }
  return rows;
}

Rows NodeRows(const json& doc, bool wide) {
  Rows rows{{"NAME", "STATUS", "ADDRESS", "FD/UD", "INSTANCES"}};
  if (wide) rows[0].insert(rows[0].end(), {"CAPACITY", "AGENT", "HEARTBEAT"});
  for (const auto& n : Items(doc, "nodes")) {
    std::string status = Str(n, "state") + (n.value("drained", false) ? ",drained" : "");
    rows.push_back({Str(n, "name"), status, Str(n, "address"), FdUd(n), Str(n, "instances", "0")});
    if (wide) {
      std::string capacity = n.value("capacity", 0) > 0 ? Str(n, "capacity") : "unlimited";
      rows.back().insert(rows.back().end(), {capacity, Str(n, "agent_version"), Heartbeat(n)});
    }
  }
  return rows;
}

Rows VolumeRows(const json& doc, bool wide) {
  Rows rows{{"NAME", "ROLE", "INSTANCE", "NODE", "ATTACHED"}};
  if (wide) rows[0].push_back("REPORTED");
  for (const auto& v : Items(doc, "volumes")) {
    rows.push_back({Str(v, "name"), Str(v, "role"), Str(v, "instance"), Str(v, "node"),
                    Str(v, "attached_to")});
    if (wide) {
      std::string reported;
      for (const auto& r : v.value("reported", json::array())) {
        reported += (reported.empty() ? "" : ",") + Str(r, "node") + ":" + Str(r, "state");
      }
      rows.back().push_back(reported.empty() ? "-" : reported);
    }
  }
  return rows;
}

Rows InstanceRows(const json& doc, bool wide) {
  Rows rows{{"NAME", "ROLE", "KIND", "NODE", "STATE", "READY", "RESTARTS", "AGE"}};
  if (wide) {
    rows[0].insert(rows[0].end(), {"MODE", "FD/UD", "EPOCH", "PORT", "PID", "VERSION", "VOLUME"});
  }
  for (const auto& i : Items(doc, "instances")) {
    rows.push_back({Str(i, "instance"), Str(i, "role"), Str(i, "kind"), Str(i, "node"),
                    Str(i, "state"), Str(i, "readiness"), Str(i, "restarts", "0"),
                    Age(i, "age_ms")});
    if (wide) {
      std::string pid = i.value("pid", 0) > 0 ? Str(i, "pid") : "-";
      rows.back().insert(rows.back().end(),
                         {Str(i, "mode"), FdUd(i), Str(i, "epoch"), Str(i, "port"), pid,
                          Str(i, "version"), Str(i, "volume")});
    }
  }
  return rows;
}

// The replicas of replicated roles (hafab get replicas): each one's place in the
// configuration, what it last said and how far behind the primary it is.
Rows ReplicaRows(const json& doc, bool wide) {
  Rows rows{{"NAME", "ROLE", "NODE", "REPLICA", "EPOCH", "POSITION", "LAG", "STATE"}};
  if (wide) rows[0].insert(rows[0].end(), {"SAYS", "FD/UD", "PORT", "AGE"});
  for (const auto& i : Items(doc, "instances")) {
    if (!i.contains("replica")) continue;
    const json& r = i["replica"];
    const json& says = r.contains("says") ? r["says"] : json();
    std::string position = "-", state = Str(i, "state"), told = "-";
    if (says.is_object()) {
      position = std::to_string(says["position"].value("epoch", 0)) + ":" +
                 std::to_string(says["position"].value("index", 0));
      state = says.value("state", "");
      told = says.value("role", "") + "@" + std::to_string(says.value("epoch", 0));
    }
    rows.push_back({Str(i, "instance"), Str(i, "role"), Str(i, "node"), r.value("role", ""),
                    std::to_string(r.value("epoch", 0)), position,
                    r.contains("lag") ? std::to_string(r["lag"].get<int64_t>()) : "-", state});
    if (wide) {
      rows.back().insert(rows.back().end(), {told, FdUd(i), Str(i, "port"), Age(i, "age_ms")});
    }
  }
  return rows;
}

Rows GatewayRows(const json& doc) {
  Rows rows{{"NAME", "LIVE", "ROUTES-VERSION"}};
  for (const auto& g : Items(doc, "gateways")) {
    rows.push_back({Str(g, "id"), Str(g, "live"), Str(g, "routes_version", "0")});
  }
  return rows;
}

}  // namespace

std::string FormatRow(const std::vector<std::string>& row, const std::vector<size_t>& width) {
  std::string line;
  for (size_t i = 0; i < row.size(); ++i) {
    line += row[i];
    size_t w = i < width.size() ? width[i] : 0;
    if (i + 1 < row.size()) line += std::string(w > row[i].size() ? w - row[i].size() + 2 : 2, ' ');
  }
  return line + "\n";
}

std::string FormatTable(const Rows& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) out += FormatRow(r, width);
  return out;
}

std::string RenderStatusTable(const json& status) {
  std::vector<std::vector<std::string>> rows{{"ROLE", "MODE", "INSTANCE", "KIND", "NODE", "FD/UD",
                                              "STATE", "READY", "EPOCH", "RESTARTS", "AGE"}};
  for (const auto& i : status.value("instances", json::array())) {
    std::string ready = Str(i, "readiness");
    rows.push_back({Str(i, "role"), Str(i, "mode"), Str(i, "instance"), Str(i, "kind"),
                    Str(i, "node"), FdUd(i), Str(i, "state"), ready, Str(i, "epoch"),
                    Str(i, "restarts", "0"), Age(i, "age_ms")});
  }
  std::string out = FormatTable(rows);
  std::vector<std::vector<std::string>> nodes{{"NODE", "ADDRESS", "FD/UD", "STATE", "INSTANCES"}};
  for (const auto& n : status.value("nodes", json::array())) {
    nodes.push_back(
        {Str(n, "node"), Str(n, "address"), FdUd(n), Str(n, "state"), Str(n, "instances", "0")});
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
  // Replicated roles: who is primary and whether a quorum follows it (a write needs one).
  std::string replicated;
  for (const auto& r : status.value("roles", json::array())) {
    if (!r.contains("quorum") || !r["quorum"].is_object()) continue;
    const json& q = r["quorum"];
    const std::string op = Str(r, "operation", "");
    replicated += "replicated " + Str(r, "name") + ": primary " +
                  (Str(r, "primary", "").empty() ? std::string("(none)") : Str(r, "primary")) +
                  " at epoch " + Str(r, "epoch") + ", " + std::to_string(q.value("following", 0)) +
                  " of " + std::to_string(q.value("voters", 0)) + " replicas following, quorum " +
                  std::to_string(q.value("quorum", 0)) +
                  (q.value("writable", false) ? "" : ": NOT WRITABLE") +
                  (op.empty() ? "" : " (operation " + op + OpWait(status, op) + ")") + "\n";
  }
  if (!replicated.empty()) out += "\n" + replicated;
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

Rows ListingRows(const std::string& kind, const json& doc, bool wide) {
  if (kind == "roles") return RoleRows(doc, wide);
  if (kind == "nodes") return NodeRows(doc, wide);
  if (kind == "volumes") return VolumeRows(doc, wide);
  if (kind == "instances") return InstanceRows(doc, wide);
  if (kind == "replicas") return ReplicaRows(doc, wide);
  return GatewayRows(doc);
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
