// Read-only verbs: status, get, events, ops.
#include <iostream>

#include "cli/api_client.h"
#include "cli/command.h"
#include "cli/status_view.h"
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

Status PrintGet(const ApiClient& c, const std::string& kind, const std::string& output) {
  HAFAB_ASSIGN_OR_RETURN(json j, c.Call("GET", "/v1/" + kind));
  if (output == "json") {
    std::cout << j.dump(2) << "\n";
  } else if (output == "yaml") {
    std::cout << ToYaml(j);
  } else if (kind == "ops") {
    std::cout << RenderOps(j);
  } else {
    const json& items = j.is_object() && j.contains(kind) ? j[kind] : j;
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> cols;
    for (const auto& item : items) {
      if (!item.is_object()) continue;
      if (cols.empty()) {
        for (const auto& [k, v] : item.items()) {
          if (!v.is_structured()) cols.push_back(k);
        }
        rows.push_back({});
        for (const auto& col : cols) {
          std::string upper;
          for (char ch : col)
            upper += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
          rows.back().push_back(upper);
        }
      }
      rows.push_back({});
      for (const auto& col : cols) {
        const json& v = item.contains(col) ? item[col] : json();
        rows.back().push_back(v.is_string() ? v.get<std::string>() : v.is_null() ? "-" : v.dump());
      }
    }
    std::cout << FormatTable(rows);
  }
  return Status::Ok();
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
  auto kind = std::make_shared<std::string>();
  auto output = std::make_shared<std::string>("table");
  auto* cmd = app.add_subcommand("get", "List roles, nodes, volumes or operations");
  cmd->footer("Examples:\n  hafab get nodes\n  hafab get roles -o json");
  cmd->add_option("kind", *kind, "roles, nodes, volumes or ops")
      ->required()
      ->check(CLI::IsMember({"roles", "nodes", "volumes", "ops"}));
  cmd->add_option("-o,--output", *output, "table, json or yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
  AddApiFlags(cmd, o.get());
  cmd->callback(
      [=] { WithClient(*o, [&](const ApiClient& c) { return PrintGet(c, *kind, *output); }); });
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
  cmd->callback(
      [o] { WithClient(*o, [](const ApiClient& c) { return PrintGet(c, "ops", "table"); }); });
});

}  // namespace
}  // namespace hafab::cli
