#include "tests/e2e/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
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

std::string TailLogs(const std::string& dir, size_t bytes) {
  std::vector<std::string> logs;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().extension() == ".log") logs.push_back(it->path().string());
  }
  std::sort(logs.begin(), logs.end());
  std::string out;
  for (const auto& path : logs) {
    std::string text = ReadFile(path);
    if (text.size() > bytes) text = text.substr(text.size() - bytes);
    out += "--- " + path + " (tail)\n" + text + (text.ends_with('\n') ? "" : "\n");
  }
  return out;
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log,
            const std::map<std::string, std::string>& env, const std::string& cwd) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  setpgid(0, 0);
  if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(127);
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

int RunCapture(const std::vector<std::string>& argv, const std::string& cwd, std::string* out) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(pipefd[1], 1);
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(127);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(pipefd[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<pid_t> ProcessesNaming(const std::string& text) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == getpid()) continue;
    std::string base = "/proc/" + std::string(e->d_name);
    std::string stat = ReadFile(base + "/stat");
    auto close_paren = stat.rfind(')');
    if (close_paren != std::string::npos && stat.size() > close_paren + 2 &&
        stat[close_paren + 2] == 'Z') {
      continue;
    }
    if (ReadFile(base + "/cmdline").find(text) != std::string::npos ||
        ReadFile(base + "/environ").find(text) != std::string::npos) {
      out.push_back(static_cast<pid_t>(pid));
    }
  }
  closedir(d);
  return out;
}

bool StatusShowsReadyPrimary(const std::string& status_table, const std::string& role) {
  std::istringstream lines(status_table);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string word; words >> word;) w.push_back(word);
    // ROLE MODE INSTANCE KIND NODE FD/UD STATE READY ...
    if (w.size() >= 8 && w[0] == role && w[3] == "primary" && w[6] == "running" &&
        w[7] == "ready") {
      return true;
    }
  }
  return false;
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
