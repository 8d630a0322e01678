// `hafab kill NODE|INSTANCE|controller`: chaos for demos and tests on an embedded cluster.
// A node is its agent and everything the agent started (a node crash); an instance is
// the process group of one instance (a crashed or, with STOP, hung service); `controller`
// is the controller, or under `hafab up --ha` the replica that leads now.
#include <signal.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/procs.h"
#include "http/http.h"

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

// The controller of `up` (its pid in up.json), or under --ha the replica whose
// /v1/leader says it leads.
int KillController(const nlohmann::json& up, int sig, const KillOptions& o) {
  if (!up.contains("controllers")) {
    pid_t pid = up.value("controller", 0);
    if (pid <= 0 || !Alive(pid)) {
      std::cerr << "error: the controller is not running\n";
      return kExitError;
    }
    kill(pid, sig);
    std::cout << "sent SIG" << o.signal << " to the controller (pid " << pid << ")\n";
    return kExitOk;
  }
  std::ifstream in(o.state_dir + "/admin.token");
  std::string token;
  std::getline(in, token);
  for (const auto& c : up["controllers"]) {
    const std::string url = c.value("url", "");
    auto r = http::Fetch("GET", url + "/v1/leader", "", {{"Authorization", "Bearer " + token}},
                         std::chrono::seconds(1));
    if (!r.ok() || r->status != 200) continue;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (!j.is_object() || j.value("role", "") != "leader") continue;
    pid_t pid = c.value("pid", 0);
    if (pid <= 0) continue;
    kill(pid, sig);
    std::cout << "sent SIG" << o.signal << " to " << c.value("name", "controller") << " (pid "
              << pid << "), the leader at " << url << "\n";
    return kExitOk;
  }
  std::cerr << "error: no controller replica says it leads now (an election under way?); "
               "see `hafab status`\n";
  return kExitError;
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
  if (o.target == "controller") return KillController(up, sig, o);
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
            << "), a running instance, nor `controller`\n";
  return kExitError;
}

HAFAB_COMMAND(80, [](CLI::App& app) {
  auto o = std::make_shared<KillOptions>();
  auto* cmd = app.add_subcommand("kill", "Kill or hang a node or an instance (embedded cluster)");
  cmd->footer(
      "Examples:\n  hafab kill n1                 # node crash: agent and its instances\n"
      "  hafab kill kvd-0              # the instance's processes\n"
      "  hafab kill kvd-0 --signal STOP  # a hung service (liveness catches it)\n"
      "  hafab kill controller         # the controller; under `up --ha` the leader");
  cmd->add_option("target", o->target, "Node name, instance id, or `controller`")->required();
  cmd->add_option("--signal", o->signal, "KILL, STOP, CONT or TERM")
      ->check(CLI::IsMember({"KILL", "STOP", "CONT", "TERM"}))
      ->capture_default_str();
  cmd->add_option("--state-dir", o->state_dir, "State directory")->capture_default_str();
  cmd->callback([o] { SetExitCode(Kill(*o)); });
});

}  // namespace
}  // namespace hafab::cli
