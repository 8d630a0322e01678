// `hafab logs ROLE[/INSTANCE]`: an embedded cluster's instance logs, from every node that ran
// them (an instance that failed over has logs on both nodes), with --follow.
#include <sys/stat.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "agent/log_writer.h"
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

ino_t Inode(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// The last `n` lines of a log, reading back through its rotated files (<path>.1, .2, ...).
std::vector<std::string> LastLines(const std::string& path, size_t n) {
  std::deque<std::string> out;
  auto files = agent::LogFilesOldestFirst(path);
  for (auto it = files.rbegin(); it != files.rend() && out.size() < n; ++it) {
    std::ifstream in(*it);
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
    for (auto l = lines.rbegin(); l != lines.rend() && out.size() < n; ++l) out.push_front(*l);
  }
  return {out.begin(), out.end()};
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
  // Followed files: the stream keeps reading a log renamed by rotation to its end, then the
  // new file is opened from its start, so no line is skipped or printed twice.
  struct Followed {
    std::ifstream in;
    ino_t inode = 0;
    std::string partial;  // a line whose end is not written yet
  };
  std::map<std::string, Followed> followed;
  for (const auto& [name, path] : files) {
    for (const std::string& line : LastLines(path.string(), static_cast<size_t>(o.tail))) {
      std::cout << "[" << name << "] " << line << "\n";
    }
    Followed& f = followed[name];
    f.in.open(path);
    f.in.seekg(0, std::ios::end);
    f.inode = Inode(path.string());
  }
  std::cout.flush();
  while (o.follow) {
    std::this_thread::sleep_for(200ms);  // polling files for growth
    for (auto& [name, f] : followed) {
      const std::string path = files[name].string();
      while (true) {
        // Looked at before reading: once rotated, nothing more is written to the old file.
        const ino_t current = Inode(path);
        f.in.clear();
        std::string line;
        while (std::getline(f.in, line)) {
          if (f.in.eof()) {  // no newline yet
            f.partial += line;
            break;
          }
          std::cout << "[" << name << "] " << f.partial << line << "\n";
          f.partial.clear();
        }
        if (current == 0 || current == f.inode) break;
        // Rotated: the old file was read to its end above; go on with the new one.
        f.in.close();
        f.in.clear();
        f.in.open(path);
        f.inode = current;
      }
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
