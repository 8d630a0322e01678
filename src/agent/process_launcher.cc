#include "agent/process_launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "agent/procfs.h"

namespace hafab::agent {
namespace {

// Only async-signal-safe calls between fork and exec.
[[noreturn]] void ChildFail(int pipe_fd, int err) {
  ssize_t ignored = write(pipe_fd, &err, sizeof(err));
  (void)ignored;
  _exit(127);
}

void CloseFrom(int lowest, int keep) {
  // close_range(2) exists on Linux >= 5.9; fall back to a loop.
  if (keep > lowest) {
    if (syscall(SYS_close_range, lowest, keep - 1, 0) != 0) {
      for (int fd = lowest; fd < keep; ++fd) close(fd);
    }
  }
  if (syscall(SYS_close_range, keep + 1, ~0U, 0) != 0) {
    for (int fd = keep + 1; fd < 4096; ++fd) close(fd);
  }
}

}  // namespace

std::string ProcessExit::Describe() const {
  if (unknown) return "exited (status unknown)";
  if (signaled) return "signal " + std::to_string(code) + " (" + strsignal(code) + ")";
  return "exit " + std::to_string(code);
}

std::string FindOnPath(const std::string& file, const std::string& path_var) {
  if (file.find('/') != std::string::npos) return file;
  size_t start = 0;
  while (start <= path_var.size()) {
    size_t end = path_var.find(':', start);
    if (end == std::string::npos) end = path_var.size();
    std::string dir = path_var.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + file;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

Result<pid_t> SpawnProcess(const LaunchSpec& spec) {
  if (spec.argv.empty()) return Status::InvalidArgument("launch: empty argv");
  auto path_it = spec.env.find("PATH");
  std::string path_var = path_it != spec.env.end() ? path_it->second : "/usr/bin:/bin";
  std::string exe = FindOnPath(spec.argv[0], path_var);
  if (exe.empty() || access(exe.c_str(), X_OK) != 0) {
    return Status::NotFound("launch: '" + spec.argv[0] + "' not found or not executable on PATH " +
                            path_var);
  }
  // Everything the child needs is prepared before fork.
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  int log_fd = open(spec.log_path.empty() ? "/dev/null" : spec.log_path.c_str(),
                    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return Status::Internal("launch: cannot open log " + spec.log_path + ": " + strerror(errno));
  }
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(log_fd);
    close(null_fd);
    return Status::Internal(std::string("launch: pipe: ") + strerror(errno));
  }

  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(log_fd);
    close(null_fd);
    close(err_pipe[0]);
    close(err_pipe[1]);
    return Status::Internal(std::string("launch: fork: ") + strerror(e));
  }
  if (pid == 0) {
    setpgid(0, 0);
    // Join the cgroups first, so every byte the program allocates is accounted.
    pid_t self = getpid();
    char pid_text[24];
    int len = 0;
    {
      char rev[24];
      int n = 0;
      long v = self;
      do {
        rev[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
      } while (v > 0);
      while (n > 0) pid_text[len++] = rev[--n];
      pid_text[len++] = '\n';
    }
    for (const auto& procs : spec.cgroup_procs) {
      int fd = open(procs.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) ChildFail(err_pipe[1], errno);
      if (write(fd, pid_text, static_cast<size_t>(len)) != len) ChildFail(err_pipe[1], errno);
      close(fd);
    }
    if (spec.rlimit_as_bytes > 0) {
      rlimit rl{spec.rlimit_as_bytes, spec.rlimit_as_bytes};
      setrlimit(RLIMIT_AS, &rl);
    }
    if (spec.nice != 0) {
      errno = 0;
      (void)nice(spec.nice);
    }
    // Default signal dispositions and an empty mask: the agent's are not the program's.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
    if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0) {
      ChildFail(err_pipe[1], errno);
    }
    CloseFrom(3, err_pipe[1]);
    if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) ChildFail(err_pipe[1], errno);
    execve(exe.c_str(), argv.data(), envp.data());
    ChildFail(err_pipe[1], errno);
  }
  // Both sides set the group, so a signal sent right after Start reaches it.
  setpgid(pid, pid);
  close(log_fd);
  close(null_fd);
  close(err_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(err_pipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  close(err_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof(child_errno))) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return Status::Internal("launch: " + spec.argv[0] + ": " + strerror(child_errno));
  }
  return pid;
}

Result<pid_t> ProcessLauncher::Start(const LaunchSpec& spec) {
  auto pid = SpawnProcess(spec);
  if (pid.ok()) children_[*pid] = true;
  return pid;
}

Status ProcessLauncher::SignalGroup(pid_t pgid, int signal) {
  if (pgid <= 1)
    return Status::InvalidArgument("signal: bad process group " + std::to_string(pgid));
  if (kill(-pgid, signal) != 0 && errno != ESRCH) {
    return Status::Internal("kill(-" + std::to_string(pgid) + ", " + std::to_string(signal) +
                            "): " + strerror(errno));
  }
  return Status::Ok();
}

void ProcessLauncher::Adopt(pid_t pid, uint64_t start_time) { adopted_[pid] = start_time; }

std::vector<ProcessExit> ProcessLauncher::Reap() {
  std::vector<ProcessExit> out;
  for (auto it = children_.begin(); it != children_.end();) {
    int status = 0;
    pid_t r = waitpid(it->first, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR)) {
      ++it;
      continue;
    }
    ProcessExit e;
    e.pid = it->first;
    if (r < 0) {
      e.unknown = true;  // ECHILD: someone else reaped it
    } else if (WIFSIGNALED(status)) {
      e.signaled = true;
      e.code = WTERMSIG(status);
    } else {
      e.code = WEXITSTATUS(status);
    }
    out.push_back(e);
    it = children_.erase(it);
  }
  for (auto it = adopted_.begin(); it != adopted_.end();) {
    auto st = ReadProcStat(it->first);
    if (st && st->start_time == it->second && st->state != 'Z') {
      ++it;
      continue;
    }
    ProcessExit e;
    e.pid = it->first;
    e.unknown = true;
    out.push_back(e);
    it = adopted_.erase(it);
  }
  return out;
}

}  // namespace hafab::agent
