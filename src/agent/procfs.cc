#include "agent/procfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string_view>
#include <vector>

namespace hafab::agent {
namespace {

// A /proc file, read with as few read(2) calls as its size allows: each call on
// /proc/PID/environ or cmdline reads the image the file was opened on, and once an exec has
// replaced that image the next call reads nothing. Read in small pieces (stdio reads /proc in
// 1 KiB ones), an environment could end after its first kilobyte, without the variable sought.
bool ReadSmallFile(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  thread_local std::vector<char> buf(64 << 10);
  out->clear();
  ssize_t n;
  while ((n = read(fd, buf.data(), buf.size())) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) out->append(buf.data(), static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

// Calls fn(pid) for every numeric entry of /proc.
template <typename Fn>
void ForEachPid(Fn fn) {
  DIR* d = opendir("/proc");
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    fn(static_cast<pid_t>(pid));
  }
  closedir(d);
}

bool Under(std::string_view path, std::string_view dir) {
  if (path.substr(0, dir.size()) != dir) return false;
  return path.size() == dir.size() || path[dir.size()] == '/';
}

std::string ReadLink(const std::string& path) {
  char buf[4096];
  ssize_t n = readlink(path.c_str(), buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  std::string text;
  if (!ReadSmallFile("/proc/" + std::to_string(pid) + "/stat", &text)) return std::nullopt;
  // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return std::nullopt;
  ProcStat st;
  st.pid = pid;
  st.state = text[close + 2];
  // Fields from 3 on, space separated; field 3 is the state.
  const char* p = text.c_str() + close + 2;
  int field = 3;
  uint64_t utime = 0, stime = 0;
  while (*p != '\0') {
    while (*p == ' ') ++p;
    if (*p == '\0') break;
    char* end = nullptr;
    if (field == 5) st.pgid = static_cast<pid_t>(std::strtol(p, &end, 10));
    if (field == 9) st.flags = static_cast<uint32_t>(std::strtoul(p, &end, 10));
    if (field == 14) utime = std::strtoull(p, &end, 10);
    if (field == 15) stime = std::strtoull(p, &end, 10);
    if (field == 22) st.start_time = std::strtoull(p, &end, 10);
    if (field == 28) {
      st.start_stack = std::strtoull(p, &end, 10);
      break;
    }
    while (*p != ' ' && *p != '\0') ++p;
    ++field;
  }
  st.cpu_ticks = utime + stime;
  return st;
}

uint64_t ReadRssBytes(pid_t pid) {
  std::string text;
  if (!ReadSmallFile("/proc/" + std::to_string(pid) + "/statm", &text)) return 0;
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(text.c_str(), "%llu %llu", &size, &resident) != 2) return 0;
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return resident * page;
}

std::vector<ProcStat> ProcessGroupMembers(pid_t pgid) {
  std::vector<ProcStat> out;
  ForEachPid([&](pid_t pid) {
    auto st = ReadProcStat(pid);
    if (st && st->pgid == pgid && st->state != 'Z') out.push_back(*st);
  });
  return out;
}

std::vector<pid_t> ProcessesHolding(const std::string& dir_in) {
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  // Compare against the resolved path too: /proc links show resolved paths.
  char resolved[PATH_MAX];
  std::string real = realpath(dir.c_str(), resolved) != nullptr ? std::string(resolved) : dir;
  std::vector<pid_t> out;
  const pid_t self = getpid();
  ForEachPid([&](pid_t pid) {
    if (pid == self) return;
    std::string base = "/proc/" + std::to_string(pid);
    std::string cwd = ReadLink(base + "/cwd");
    if (!cwd.empty() && (Under(cwd, real) || Under(cwd, dir))) {
      out.push_back(pid);
      return;
    }
    std::string fd_dir = base + "/fd";
    DIR* d = opendir(fd_dir.c_str());
    if (d == nullptr) return;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::string target = ReadLink(fd_dir + "/" + e->d_name);
      if (!target.empty() && (Under(target, real) || Under(target, dir))) {
        out.push_back(pid);
        break;
      }
    }
    closedir(d);
  });
  return out;
}

std::map<pid_t, GroupUsage> UsageOfGroups(const std::vector<pid_t>& pgids) {
  std::map<pid_t, GroupUsage> out;
  if (pgids.empty()) return out;
  for (pid_t g : pgids) out[g];
  ForEachPid([&](pid_t pid) {
    auto st = ReadProcStat(pid);
    if (!st || st->state == 'Z') return;
    auto it = out.find(st->pgid);
    if (it == out.end()) return;
    it->second.cpu_ticks += st->cpu_ticks;
    it->second.rss_bytes += ReadRssBytes(pid);
  });
  return out;
}

namespace {

constexpr uint32_t kPfKthread = 0x00200000;

bool EmptyFile(const std::string& path) {
  std::string text;
  return ReadSmallFile(path, &text) && text.empty();
}

// /proc/<pid>/environ. It reads empty for a zombie, a kernel thread and a process that cleared
// its environment, but also across an exec: the file, opened on the old image, reads empty once
// that image is gone; a new image reads empty until its strings are laid out, and while the
// kernel lays them out its command line is already there (a process preempted there, on a
// loaded machine, for longer than 10 ms, was missed). So an empty environment is believed only
// when read three times, ~5 ms apart, within one image (the stack's start, random per exec, the
// same before and after the read), with the command line laid out and the process not running
// or waiting to run (in the middle of an exec it is); or after ~200 ms.
bool ReadEnviron(pid_t pid, std::string* text) {
  const std::string base = "/proc/" + std::to_string(pid);
  if (!ReadSmallFile(base + "/environ", text)) return false;
  int believed = 0;
  for (int attempt = 0; text->empty() && attempt < 200; ++attempt) {
    auto before = ReadProcStat(pid);
    if (!before || before->state == 'Z' || (before->flags & kPfKthread) != 0) return true;
    if (!ReadSmallFile(base + "/environ", text)) return false;
    if (!text->empty()) return true;
    auto after = ReadProcStat(pid);
    const bool one_image = after && after->start_stack == before->start_stack;
    believed = one_image && after->state != 'R' && !EmptyFile(base + "/cmdline") ? believed + 1 : 0;
    if (believed == 3) return true;
    usleep(believed > 0 ? 5000 : 1000);
  }
  return true;
}

}  // namespace

std::map<pid_t, std::string> ProcessesWithEnv(const std::string& name) {
  std::map<pid_t, std::string> out;
  const std::string prefix = name + "=";
  const pid_t self = getpid();
  std::string text;
  ForEachPid([&](pid_t pid) {
    if (pid == self || !ReadEnviron(pid, &text)) return;
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\0', start);
      if (end == std::string::npos) end = text.size();
      std::string_view entry(text.data() + start, end - start);
      if (entry.substr(0, prefix.size()) == prefix) {
        out[pid] = std::string(entry.substr(prefix.size()));
        return;
      }
      start = end + 1;
    }
  });
  return out;
}

std::string OwnCgroupPath(const std::string& controller) {
  std::string text;
  if (!ReadSmallFile("/proc/self/cgroup", &text)) return "";
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(start, nl - start);
    start = nl + 1;
    // id:controllers:path
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (controller.empty()
            ? controllers.empty()
            : (("," + controllers + ",").find("," + controller + ",") != std::string::npos)) {
      return path == "/" ? "" : path;
    }
  }
  return "";
}

uint64_t ClockTicksPerSecond() {
  static const uint64_t ticks = static_cast<uint64_t>(sysconf(_SC_CLK_TCK));
  return ticks;
}

std::string ReadBootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

}  // namespace hafab::agent
