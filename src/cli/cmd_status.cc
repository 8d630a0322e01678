// Read-only verbs: status, get, events, ops.
#include <algorithm>
#include <iostream>
#include <thread>

#include "cli/api_client.h"
#include "cli/command.h"
#include "cli/status_view.h"
#include "cli/table_watch.h"
#include "cli/yaml_output.h"

namespace hafab::cli {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

Status PrintStatus(const ApiClient& c) {
  if (c.urls().size() == 1) {
    HAFAB_ASSIGN_OR_RETURN(json st, c.Call("GET", "/v1/status"));
    std::cout << RenderStatusTable(st);
    return Status::Ok();
  }
  // Replicas: the table is the leader's (a follower's nodes are all `waiting`: heartbeats
  // reach the leader only), then which replica leads.
  json replicas = json::array();
  std::string leader;
  for (const auto& url : c.urls()) {
    auto l = c.GetFrom(url, "/v1/leader", 2s);
    if (l.ok() && l->value("role", "") == "leader") leader = url;
    replicas.push_back(l.ok() ? json{{"url", url},
                                     {"role", l->value("role", "")},
                                     {"leader_for_ms", l->value("leader_for_ms", json())}}
                              : json{{"url", url}, {"role", "unreachable"}});
  }
  HAFAB_ASSIGN_OR_RETURN(
      json st, leader.empty() ? c.Call("GET", "/v1/status") : c.GetFrom(leader, "/v1/status", 10s));
  std::cout << RenderStatusTable(st) << "\n" << RenderControllers(replicas);
  return Status::Ok();
}

struct GetArgs {
  std::string kind;
  std::string role;  // instances of this role only; "" = all
  std::string output = "table";
  bool watch = false;
};

// The answer `get` shows: GET /v1/KIND, or the instances of GET /v1/status.
Result<json> Fetch(const ApiClient& c, const GetArgs& a) {
  if (a.kind != "instances" && a.kind != "replicas") return c.Call("GET", "/v1/" + a.kind);
  HAFAB_ASSIGN_OR_RETURN(json st, c.Call("GET", "/v1/status"));
  json out = {{"instances", json::array()}};
  for (const auto& i : st.value("instances", json::array())) {
    if (a.kind == "replicas" && !i.contains("replica")) continue;
    if (a.role.empty() || i.value("role", "") == a.role) out["instances"].push_back(i);
  }
  if (!a.role.empty() && out["instances"].empty()) {
    bool known = false;
    for (const auto& r : st.value("roles", json::array())) known |= r.value("name", "") == a.role;
    if (!known) return Status::NotFound("role " + a.role + ": no such role");
  }
  return out;
}

Status PrintGet(const ApiClient& c, const GetArgs& a) {
  HAFAB_ASSIGN_OR_RETURN(json j, Fetch(c, a));
  if (a.output == "json") {
    std::cout << j.dump(2) << "\n";
  } else if (a.output == "yaml") {
    std::cout << ToYaml(j);
  } else if (a.kind == "ops") {
    std::cout << RenderOps(j);
  } else {
    std::cout << FormatTable(ListingRows(a.kind, j, a.output == "wide"));
  }
  return Status::Ok();
}

// `get --watch`: the table, then its changes as they happen, until Ctrl-C. Woken by the
// next event, or after a second for changes that raise none (readiness, heartbeats). While the
// controller cannot be reached it says so once and keeps trying.
Status WatchGet(const ApiClient& c, const GetArgs& a) {
  TableWatch watch({"AGE", "HEARTBEAT"});
  HAFAB_ASSIGN_OR_RETURN(json events, c.Call("GET", "/v1/events?after=0&wait_ms=0"));
  int64_t seq = events.value("last", int64_t{0});
  std::string failing;
  for (bool first = true;; first = false) {
    auto fetched_at = std::chrono::steady_clock::now();
    Result<json> j = Fetch(c, a);
    if (!j.ok() && first) return j.status();
    if (j.ok()) {
      if (!failing.empty()) std::cerr << "watch: the controller answers again\n";
      failing.clear();
      std::cout << watch.Update(ListingRows(a.kind, *j, a.output == "wide")) << std::flush;
      auto e = c.Call("GET", "/v1/events?after=" + std::to_string(seq) + "&wait_ms=1000", "", 5s);
      if (e.ok()) {
        seq = std::max(seq, e->value("last", seq));
        // At most four tables a second, however busy the event stream.
        std::this_thread::sleep_until(fetched_at + 250ms);
        continue;
      }
      j = e.status();
    }
    if (failing != j.status().message()) {
      failing = j.status().message();
      std::cerr << "watch: " << failing << "; trying again every second\n";
    }
    std::this_thread::sleep_for(1s);
  }
}

Status PrintEvents(const ApiClient& c, bool follow) {
  int64_t seq = 0;
  do {
    HAFAB_ASSIGN_OR_RETURN(json j, c.Call("GET",
                                          "/v1/events?after=" + std::to_string(seq) +
                                              "&wait_ms=" + (follow && seq > 0 ? "10000" : "0"),
                                          "", 15s));
    std::cout << RenderEvents(j, &seq) << std::flush;
    if (seq == 0 && follow) seq = j.value("last", int64_t{0});
  } while (follow);
  return Status::Ok();
}

HAFAB_COMMAND(30, [](CLI::App& app) {
  auto o = std::make_shared<ApiOptions>();
  auto* cmd = app.add_subcommand("status", "Show roles, instances and nodes as a table");
  cmd->footer("Example:\n  hafab status");
  AddApiFlags(cmd, o.get());
  cmd->callback([o] { WithClient(*o, PrintStatus); });
});

HAFAB_COMMAND(31, [](CLI::App& app) {
  auto o = std::make_shared<ApiOptions>();
  auto a = std::make_shared<GetArgs>();
  auto* cmd = app.add_subcommand(
      "get", "List roles, instances, replicas, nodes, volumes, gateways or operations");
  cmd->footer(
      "Examples:\n  hafab get nodes\n  hafab get instances kvd -o wide\n"
      "  hafab get instances --watch     # the table, then each change, until Ctrl-C\n"
      "  hafab get replicas kv           # a replicated role's replicas: epoch, position, lag\n"
      "  hafab get roles -o json");
  cmd->add_option("kind", a->kind, "roles, instances, replicas, nodes, volumes, gateways or ops")
      ->required()
      ->check(
          CLI::IsMember({"roles", "instances", "replicas", "nodes", "volumes", "gateways", "ops"}));
  cmd->add_option("role", a->role, "With instances or replicas: only this role's");
  cmd->add_option("-o,--output", a->output,
                  "table, wide (more columns), json or yaml (the controller's answer as is)")
      ->check(CLI::IsMember({"table", "wide", "json", "yaml"}))
      ->capture_default_str();
  cmd->add_flag("-w,--watch", a->watch,
                "After the table, print each row that changes, appears or goes, until Ctrl-C");
  AddApiFlags(cmd, o.get());
  cmd->callback([=] {
    std::string usage;
    if (!a->role.empty() && a->kind != "instances" && a->kind != "replicas") {
      usage = "a role name goes with `get instances` or `get replicas` only (got `get " + a->kind +
              " " + a->role + "`)";
    } else if (a->watch && (a->kind == "ops" || a->output == "json" || a->output == "yaml")) {
      usage =
          "--watch prints table rows: not with ops (follow those with `hafab events -f`) "
          "or -o json|yaml";
    }
    if (!usage.empty()) {
      std::cerr << "hafab get: " << usage << "\n";
      SetExitCode(kExitUsage);
      return;
    }
    WithClient(*o,
               [&](const ApiClient& c) { return a->watch ? WatchGet(c, *a) : PrintGet(c, *a); });
  });
});

HAFAB_COMMAND(32, [](CLI::App& app) {
  auto o = std::make_shared<ApiOptions>();
  auto follow = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("events", "Show the cluster's events");
  cmd->footer("Examples:\n  hafab events\n  hafab events --follow");
  cmd->add_flag("-f,--follow", *follow, "Keep printing new events");
  AddApiFlags(cmd, o.get());
  cmd->callback(
      [=] { WithClient(*o, [&](const ApiClient& c) { return PrintEvents(c, *follow); }); });
});

HAFAB_COMMAND(33, [](CLI::App& app) {
  auto o = std::make_shared<ApiOptions>();
  auto* cmd =
      app.add_subcommand("ops", "Show operations (failovers, drains, ...) with their steps");
  cmd->footer("Example:\n  hafab ops");
  AddApiFlags(cmd, o.get());
  cmd->callback([o] {
    GetArgs ops;
    ops.kind = "ops";
    WithClient(*o, [&](const ApiClient& c) { return PrintGet(c, ops); });
  });
});

}  // namespace
}  // namespace hafab::cli
