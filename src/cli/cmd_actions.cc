// Verbs that change the cluster: apply, failover, scale, drain. Long operations show their
// steps as they fill in; --wait blocks until the operation ends.
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/api_client.h"
#include "cli/command.h"
#include "cli/status_view.h"
#include "http/http.h"
#include "manifest/limits.h"

namespace hafab::cli {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Follows operation `id` until it ends, printing each step once it starts and ends.
Status WaitForOperation(const ApiClient& c, const std::string& id, Duration limit) {
  size_t printed = 0;
  return PollOperation(c, id, limit, 100ms, [&](const json& op) -> std::optional<Status> {
    const json steps = op.value("steps", json::array());
    for (; printed < steps.size(); ++printed) {
      const json& s = steps[printed];
      if (s.value("state", "") == "running") break;  // print it when it ends
      std::cout << "  " << s.value("step", "?") << "  " << s.value("state", "") << "  "
                << s.value("duration_ms", 0.0) << "ms"
                << (s.contains("detail") ? "  " + s["detail"].get<std::string>() : "") << "\n"
                << std::flush;
    }
    std::string state = op.value("state", "");
    if (state == "succeeded" || state == "done") {
      std::cout << "operation " << id << " succeeded\n";
      return Status::Ok();
    }
    if (state == "failed" || state == "rolled-back") {
      return Status::Internal("operation " + id + " " + state + ": " + op.value("error", ""));
    }
    return std::nullopt;
  });
}

Status Started(const ApiClient& c, const json& answer, bool wait) {
  std::string id = answer.value("operation", "");
  if (id.empty()) {
    std::cout << answer.dump() << "\n";
    return Status::Ok();
  }
  std::cout << "operation " << id << " started\n";
  if (!wait) return Status::Ok();
  return WaitForOperation(c, id, 120s);
}

HAFAB_COMMAND(40, [](CLI::App& app) {
  auto o = std::make_shared<ApiOptions>();
  auto file = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("apply", "Apply a manifest to a running cluster");
  cmd->footer("Example:\n  hafab apply -f examples/quickstart.yaml");
  auto remove_all = std::make_shared<bool>(false);
  cmd->add_option("-f,--file", *file, "Manifest (YAML)")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--remove-all", *remove_all,
                "Allow a manifest without roles, which removes every running role");
  AddApiFlags(cmd, o.get());
  cmd->callback([=] {
    WithClient(*o, [&](const ApiClient& c) -> Status {
      std::ifstream in(*file);
      std::stringstream yaml;
      yaml << in.rdbuf();
      std::string path = "/v1/apply?file=" + http::PercentEncode(*file);
      if (*remove_all) path += "&remove_all=true";
      HAFAB_ASSIGN_OR_RETURN(json j, c.Call("POST", path, yaml.str()));
      std::cout << "applied " << *file << "\n";
      return Status::Ok();
    });
  });
});

HAFAB_COMMAND(42, [](CLI::App& app) {
  auto o = std::make_shared<ApiOptions>();
  auto role = std::make_shared<std::string>();
  auto to = std::make_shared<std::string>();
  auto wait = std::make_shared<bool>(true);
  auto accept_data_loss = std::make_shared<bool>(false);
  auto* cmd =
      app.add_subcommand("failover", "Planned switchover of an active-passive or replicated role");
  cmd->footer(
      "Examples:\n  hafab failover kvd\n  hafab failover kvd --to n3\n"
      "  hafab failover kv --to kv-2\n  hafab failover kv --accept-data-loss\n\n"
      "The old primary is drained first: clients see a pause, not an error. A replicated\n"
      "role promotes its most advanced replica (--to: that one, if it is as far).\n"
      "--accept-data-loss: a reconfiguration waiting for a quorum of replicas promotes the\n"
      "most advanced one that answered; writes acknowledged by the others alone are lost.");
  cmd->add_option("role", *role, "Active-passive or replicated role")->required();
  cmd->add_option("--to", *to,
                  "Node to promote (active-passive; default: the best standby), or replica "
                  "(replicated)");
  cmd->add_flag("--accept-data-loss", *accept_data_loss,
                "Replicated roles: promote without a quorum of replicas");
  cmd->add_flag("--wait,!--no-wait", *wait, "Wait and show the steps (default)");
  AddApiFlags(cmd, o.get());
  cmd->callback([=] {
    WithClient(*o, [&](const ApiClient& c) -> Status {
      json body = json::object();
      if (!to->empty()) body["to"] = *to;
      if (*accept_data_loss) body["accept_data_loss"] = true;
      HAFAB_ASSIGN_OR_RETURN(json j,
                             c.Call("POST", "/v1/roles/" + *role + "/failover", body.dump()));
      return Started(c, j, *wait);
    });
  });
});

HAFAB_COMMAND(43, [](CLI::App& app) {
  auto o = std::make_shared<ApiOptions>();
  auto role = std::make_shared<std::string>();
  auto n = std::make_shared<int>(0);
  auto* cmd = app.add_subcommand("scale", "Set the number of instances of a role");
  cmd->footer("Example:\n  hafab scale echo 5");
  cmd->add_option("role", *role, "Role")->required();
  cmd->add_option("instances", *n, "Number of instances")
      ->required()
      ->check(CLI::Range(1, manifest::kMaxInstancesPerRole));
  AddApiFlags(cmd, o.get());
  cmd->callback([=] {
    WithClient(*o, [&](const ApiClient& c) -> Status {
      HAFAB_ASSIGN_OR_RETURN(
          json j, c.Call("POST", "/v1/roles/" + *role + "/scale", json{{"instances", *n}}.dump()));
      std::cout << "scaled " << *role << " to " << *n << " instances\n";
      return Status::Ok();
    });
  });
});

HAFAB_COMMAND(44, [](CLI::App& app) {
  auto o = std::make_shared<ApiOptions>();
  auto node = std::make_shared<std::string>();
  auto wait = std::make_shared<bool>(true);
  auto* cmd = app.add_subcommand("drain", "Move every instance off a node");
  cmd->footer("Example:\n  hafab drain n2");
  cmd->add_option("node", *node, "Node")->required();
  cmd->add_flag("--wait,!--no-wait", *wait, "Wait and show the steps (default)");
  AddApiFlags(cmd, o.get());
  cmd->callback([=] {
    WithClient(*o, [&](const ApiClient& c) -> Status {
      HAFAB_ASSIGN_OR_RETURN(json j, c.Call("POST", "/v1/nodes/" + *node + "/drain", "{}"));
      return Started(c, j, *wait);
    });
  });
});

}  // namespace
}  // namespace hafab::cli
