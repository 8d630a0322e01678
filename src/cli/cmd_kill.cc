// `hafab kill NODE|INSTANCE`: chaos for demos and tests on an embedded cluster.
// A node is its agent and everything the agent started (a node crash); an instance is
// the process group of one instance (a crashed or, with STOP, hung service).
#include <signal.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/procs.h"

namespace hafab::cli {
namespace {

struct KillOptions {
  std::string target;
  std::string signal = "KILL";
  std::string state_dir = ".hafab";
};

int SignalNumber(const std::string& name) {
  if (name == "KILL") return SIGKILL;
  if (name == "STOP") return SIGSTOP;
  if (name == "CONT") return SIGCONT;
  if (name == "TERM") return SIGTERM;
  return 0;
}

int Kill(const KillOptions& o) {
  std::ifstream in(o.state_dir + "/up.json");
  auto up = nlohmann::json::parse(in, nullptr, false);
  if (!up.is_object()) {
    std::cerr << "error: no running embedded cluster in " << o.state_dir
              << " (hafab kill works on clusters started with `hafab up`)\n";
    return kExitError;
  }
  int sig = SignalNumber(o.signal);
  auto agents = up.value("agents", nlohmann::json::object());
  if (agents.contains(o.target)) {
    pid_t agent = agents[o.target].get<pid_t>();
    if (agent <= 0 || !Alive(agent)) {
      std::cerr << "error: node " << o.target << " is not running\n";
      return kExitError;
    }
    // Collect first: once the agent dies its children are reparented.
    std::vector<pid_t> victims = Descendants(agent);
    victims.insert(victims.begin(), agent);
    for (pid_t p : victims) kill(p, sig);
    std::cout << "sent SIG" << o.signal << " to node " << o.target << " (agent " << agent << " and "
              << victims.size() - 1 << " processes it started)\n";
    return kExitOk;
  }
  for (const auto& [node, pid] : agents.items()) {
    for (pid_t p : Descendants(pid.get<pid_t>())) {
      if (EnvironOf(p, "HAFAB_INSTANCE") == o.target && getpgid(p) == p) {
        kill(-p, sig);
        std::cout << "sent SIG" << o.signal << " to instance " << o.target << " (pid " << p
                  << " on node " << node << ")\n";
        return kExitOk;
      }
    }
  }
  std::string nodes;
  for (const auto& [node, pid] : agents.items()) nodes += (nodes.empty() ? "" : ", ") + node;
  std::cerr << "error: " << o.target << " is neither a node (" << nodes
            << ") nor a running instance\n";
  return kExitError;
}

HAFAB_COMMAND(80, [](CLI::App& app) {
  auto o = std::make_shared<KillOptions>();
  auto* cmd = app.add_subcommand("kill", "Kill or hang a node or an instance (embedded cluster)");
  cmd->footer(
      "Examples:\n  hafab kill n1                 # node crash: agent and its instances\n"
      "  hafab kill kvd-0              # the instance's processes\n"
      "  hafab kill kvd-0 --signal STOP  # a hung service (liveness catches it)");
  cmd->add_option("target", o->target, "Node name or instance id")->required();
  cmd->add_option("--signal", o->signal, "KILL, STOP, CONT or TERM")
      ->check(CLI::IsMember({"KILL", "STOP", "CONT", "TERM"}))
      ->capture_default_str();
  cmd->add_option("--state-dir", o->state_dir, "State directory")->capture_default_str();
  cmd->callback([o] { SetExitCode(Kill(*o)); });
});

}  // namespace
}  // namespace hafab::cli
