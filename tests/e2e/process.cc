#include "tests/e2e/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace hafab::e2e {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log,
            const std::map<std::string, std::string>& env) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  setpgid(0, 0);
  int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
  }
  for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

void StopGroup(pid_t& pid, int sig, Duration grace) {
  if (pid <= 0) return;
  kill(-pid, sig);
  const TimePoint deadline = RealClock().Now() + grace;
  int status;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (RealClock().Now() > deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid = 0;
}

std::pair<std::string, std::string> SolePrimary(const nlohmann::json& status,
                                                const std::string& role,
                                                const std::string& volume) {
  std::pair<std::string, std::string> primary;
  int running = 0;
  for (const auto& i : status.value("instances", nlohmann::json::array())) {
    if (i.value("role", "") != role) continue;
    if (i.value("state", "") == "running") ++running;
    if (i.value("primary", false) && i.value("state", "") == "running" && i.value("ready", false) &&
        i.value("volume", "") == volume) {
      primary = {i.value("instance", ""), i.value("node", "")};
    }
  }
  return running == 1 ? primary : std::pair<std::string, std::string>{};
}

}  // namespace hafab::e2e
