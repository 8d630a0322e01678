// hafab upgrade: a rolling upgrade of a load-balanced role, one update domain at a time,
// with its progress per domain (src/controller/rollout.h).
#include <iostream>

#include "cli/api_client.h"
#include "cli/command.h"

namespace hafab::cli {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// "command=x", "version=2", "args=--a b" (split on spaces, or a JSON array), "env.K=V".
Status ParseSet(const std::vector<std::string>& sets, json* out) {
  *out = json::object();
  for (const auto& s : sets) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::InvalidArgument("--set " + s +
                                     ": want KEY=VALUE (command, args, env.NAME, version)");
    }
    std::string key = s.substr(0, eq), value = s.substr(eq + 1);
    if (key == "command" || key == "version") {
      (*out)[key] = value;
    } else if (key == "args") {
      json args = json::array();
      if (!value.empty() && value[0] == '[') {
        args = json::parse(value, nullptr, false);
        if (!args.is_array())
          return Status::InvalidArgument("--set args=" + value + ": not a JSON array");
      } else {
        size_t i = 0;
        while (i < value.size()) {
          size_t j = value.find(' ', i);
          if (j == std::string::npos) j = value.size();
          if (j > i) args.push_back(value.substr(i, j - i));
          i = j + 1;
        }
      }
      (*out)["args"] = args;
    } else if (key.rfind("env.", 0) == 0 && key.size() > 4) {
      (*out)["env"][key.substr(4)] = value;
    } else {
      return Status::InvalidArgument("--set " + key +
                                     ": unknown; allowed: command, args, env.NAME, version");
    }
  }
  return Status::Ok();
}

// Follows rollout `id`, printing each domain's state as it changes, until it ends.
Status Follow(const ApiClient& c, const std::string& id, bool want_rollback, Duration limit) {
  std::map<std::string, std::string> shown;
  bool rollback_shown = false;
  return PollOperation(c, id, limit, 200ms, [&](const json& op) -> std::optional<Status> {
    if (op.value("rollback", false) && !want_rollback && !rollback_shown) {
      rollback_shown = true;
      shown.clear();
      std::cout << "rolling back: " << op.value("error", "") << "\n";
    }
    for (const auto& d : op.value("domains", json::array())) {
      std::string name = d.value("domain", ""), state = d.value("state", "");
      if (shown[name] != state) {
        shown[name] = state;
        std::cout << "  " << name << "  " << state << "\n" << std::flush;
      }
    }
    std::string state = op.value("state", "");
    if (state == "done") {
      bool rolled_back = op.value("rollback", false);
      std::cout << (rolled_back ? "rollback" : "rollout") << " " << id
                << " done: " << op.value("role", "") << " runs "
                << (op.value("to_version", "").empty() ? "(no version)"
                                                       : op.value("to_version", ""))
                << "\n";
      if (rolled_back && !want_rollback) {
        return Status::Internal("upgrade rolled back: " + op.value("reason", ""));
      }
      return Status::Ok();
    }
    if (state == "failed") {
      return Status::Internal("operation " + id + " failed: " + op.value("error", ""));
    }
    return std::nullopt;
  });
}

HAFAB_COMMAND(45, [](CLI::App& app) {
  auto o = std::make_shared<ApiOptions>();
  auto role = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  auto rollback = std::make_shared<bool>(false);
  auto wait = std::make_shared<bool>(true);
  auto* cmd = app.add_subcommand(
      "upgrade", "Rolling upgrade of a load-balanced role, one update domain at a time");
  cmd->footer(
      "Examples:\n  hafab upgrade echo --set version=2 --set env.COLOUR=blue\n"
      "  hafab upgrade echo --set command=echo-app --set 'args=--flag value'\n"
      "  hafab upgrade echo --rollback\n\n"
      "Each domain's instances leave the gateway's rotation, drain, stop, start with the new\n"
      "spec and come back once ready. A domain not ready within update.ready_timeout rolls\n"
      "the whole role back (exit 1).");
  cmd->add_option("role", *role, "Load-balanced role")->required();
  cmd->add_option("--set", *sets, "KEY=VALUE: command, args, env.NAME, version (repeatable)");
  cmd->add_flag("--rollback", *rollback, "Turn a running rollout back, or undo the last one");
  cmd->add_flag("--wait,!--no-wait", *wait, "Wait and show each domain's progress (default)");
  AddApiFlags(cmd, o.get());
  cmd->callback([=] {
    json set;
    Status parsed = ParseSet(*sets, &set);
    if (parsed.ok() && *rollback == !sets->empty()) {
      parsed = Status::InvalidArgument("give --set KEY=VALUE, or --rollback (one of them)");
    }
    if (!parsed.ok()) {
      std::cerr << "hafab upgrade: " << parsed.message() << "\n";
      SetExitCode(kExitUsage);
      return;
    }
    WithClient(*o, [&](const ApiClient& c) -> Status {
      json body = *rollback ? json{{"rollback", true}} : json{{"set", set}};
      HAFAB_ASSIGN_OR_RETURN(json j,
                             c.Call("POST", "/v1/roles/" + *role + "/upgrade", body.dump()));
      std::string id = j.value("operation", "");
      std::cout << (*rollback ? "rollback " : "rollout ") << id << " of " << *role << " started\n";
      if (!*wait || id.empty()) return Status::Ok();
      return Follow(c, id, *rollback, 600s);
    });
  });
});

}  // namespace
}  // namespace hafab::cli
