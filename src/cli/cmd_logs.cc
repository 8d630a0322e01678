// `hafab logs ROLE[/INSTANCE]`: an embedded cluster's instance logs, from every node that ran
// them (an instance that failed over has logs on both nodes), with --follow.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "cli/command.h"

namespace hafab::cli {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct LogsOptions {
  std::string target;
  std::string state_dir = ".hafab";
  bool follow = false;
  int tail = 100;
};

// "kvd" -> every kvd-N; "kvd/kvd-0", "kvd/0" and "kvd-0" -> that instance.
bool Matches(const std::string& target, const std::string& instance) {
  auto slash = target.find('/');
  if (slash == std::string::npos) {
    if (instance == target) return true;
    auto dash = instance.rfind('-');
    return dash != std::string::npos && instance.substr(0, dash) == target &&
           instance.find_first_not_of("0123456789", dash + 1) == std::string::npos;
  }
  std::string role = target.substr(0, slash);
  std::string rest = target.substr(slash + 1);
  return instance == rest || instance == role + "-" + rest;
}

int Logs(const LogsOptions& o) {
  std::map<std::string, fs::path> files;  // "node/instance" -> log file
  std::error_code ec;
  for (const auto& node : fs::directory_iterator(o.state_dir + "/nodes", ec)) {
    for (const auto& f : fs::directory_iterator(node.path() / "logs", ec)) {
      if (f.path().extension() != ".log") continue;
      std::string instance = f.path().stem().string();
      if (Matches(o.target, instance)) {
        files[node.path().filename().string() + "/" + instance] = f.path();
      }
    }
  }
  if (files.empty()) {
    std::cerr << "error: no logs for " << o.target << " under " << o.state_dir
              << "/nodes (is it a role or instance of the cluster started there with `hafab "
                 "up`?)\n";
    return kExitError;
  }
  std::map<std::string, std::streamoff> offsets;
  for (const auto& [name, path] : files) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
    size_t from = lines.size() > static_cast<size_t>(o.tail) ? lines.size() - o.tail : 0;
    for (size_t i = from; i < lines.size(); ++i)
      std::cout << "[" << name << "] " << lines[i] << "\n";
    offsets[name] = static_cast<std::streamoff>(fs::file_size(path, ec));
  }
  std::cout.flush();
  while (o.follow) {
    std::this_thread::sleep_for(200ms);  // polling files for growth
    for (const auto& [name, path] : files) {
      auto size = static_cast<std::streamoff>(fs::file_size(path, ec));
      if (ec) continue;
      if (size < offsets[name]) offsets[name] = 0;  // rotated
      if (size == offsets[name]) continue;
      std::ifstream in(path);
      in.seekg(offsets[name]);
      std::string line;
      while (std::getline(in, line)) std::cout << "[" << name << "] " << line << "\n";
      offsets[name] = size;
    }
    std::cout.flush();
  }
  return kExitOk;
}

HAFAB_COMMAND(60, [](CLI::App& app) {
  auto o = std::make_shared<LogsOptions>();
  auto* cmd = app.add_subcommand("logs", "Show instance logs of an embedded cluster");
  cmd->footer(
      "Examples:\n  hafab logs kvd            # every kvd instance, on every node\n"
      "  hafab logs kvd/kvd-1 -f   # one instance, following");
  cmd->add_option("target", o->target, "ROLE or ROLE/INSTANCE or INSTANCE")->required();
  cmd->add_flag("-f,--follow", o->follow, "Keep printing new lines");
  cmd->add_option("--tail", o->tail, "Lines to show from the end of each log")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--state-dir", o->state_dir, "State directory")->capture_default_str();
  cmd->callback([o] { SetExitCode(Logs(*o)); });
});

}  // namespace
}  // namespace hafab::cli
