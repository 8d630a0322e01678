#include "agent/process_launcher.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "agent/procfs.h"

namespace hafab::agent {
namespace {

// What failed in the child, added to its errno (which stays below 10000).
constexpr int kStageAccount = 10000;
constexpr int kStageCwd = 20000;
constexpr int kStageReach = 100000;  // x (index of the directory in reach_dirs + 1)

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

// Prepared before fork: argv and envp as execve wants them.
struct ExecArgs {
  explicit ExecArgs(const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& env) {
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
  std::vector<char*> argv;
  std::vector<std::string> env_strings;
  std::vector<char*> envp;
};

void ResetSignals() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
}

// Reads the errno a child reports through its close-on-exec pipe; 0 = it exec'd.
int ReadChildErrno(int fd) {
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(fd, &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  close(fd);
  return n == static_cast<ssize_t>(sizeof(child_errno)) ? child_errno : 0;
}

// Starts `argv` with stdin `in_fd` (stdout, stderr: /dev/null) through an intermediate child
// that exits at once: the program runs in a session of its own, reparented to init (or the
// nearest subreaper), never the agent's zombie.
Status SpawnDetached(const std::vector<std::string>& args,
                     const std::map<std::string, std::string>& env, int in_fd) {
  auto path_it = env.find("PATH");
  std::string exe =
      FindOnPath(args.at(0), path_it != env.end() ? path_it->second : "/usr/bin:/bin");
  if (exe.empty()) return Status::NotFound("launch: '" + args[0] + "' not found");
  ExecArgs exec(args, env);
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  int err_pipe[2];
  if (null_fd < 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    if (null_fd >= 0) close(null_fd);
    return Status::Internal(std::string("launch: pipe: ") + strerror(errno));
  }
  pid_t mid = fork();
  if (mid == 0) {
    setsid();
    pid_t pid = fork();
    if (pid < 0) ChildFail(err_pipe[1], errno);
    if (pid > 0) _exit(0);
    ResetSignals();
    if (dup2(in_fd, 0) < 0 || dup2(null_fd, 1) < 0 || dup2(null_fd, 2) < 0) {
      ChildFail(err_pipe[1], errno);
    }
    CloseFrom(3, err_pipe[1]);
    execve(exe.c_str(), exec.argv.data(), exec.envp.data());
    ChildFail(err_pipe[1], errno);
  }
  int e = errno;
  close(null_fd);
  close(err_pipe[1]);
  if (mid < 0) {
    close(err_pipe[0]);
    return Status::Internal(std::string("launch: fork: ") + strerror(e));
  }
  int status;
  while (waitpid(mid, &status, 0) < 0 && errno == EINTR) {
  }
  int child_errno = ReadChildErrno(err_pipe[0]);
  if (child_errno != 0) {
    return Status::Internal("launch: " + args[0] + ": " + strerror(child_errno));
  }
  return Status::Ok();
}

// The descriptor the instance writes its stdout and stderr to.
Result<int> OpenLog(const LaunchSpec& spec) {
  if (spec.log_writer_argv.empty()) {
    int fd = open(spec.log_path.empty() ? "/dev/null" : spec.log_path.c_str(),
                  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return Status::Internal("launch: cannot open log " + spec.log_path + ": " + strerror(errno));
    }
    if (spec.switch_account && !spec.log_path.empty() && fchown(fd, spec.uid, spec.gid) != 0) {
      close(fd);
      return Status::Internal("launch: cannot give log " + spec.log_path + " to uid " +
                              std::to_string(spec.uid) + ": " + strerror(errno));
    }
    return fd;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0)
    return Status::Internal(std::string("launch: pipe: ") + strerror(errno));
  std::map<std::string, std::string> env;
  if (auto it = spec.env.find("PATH"); it != spec.env.end()) env["PATH"] = it->second;
  Status st = SpawnDetached(spec.log_writer_argv, env, p[0]);
  close(p[0]);
  if (!st.ok()) {
    close(p[1]);
    return Status(st.code(), "log writer: " + st.message());
  }
  return p[1];
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
  // Found from here: the child runs it after changing into spec.cwd.
  if (exe[0] != '/') {
    std::error_code ec;
    exe = (std::filesystem::current_path(ec) / exe).string();
  }
  // Everything the child needs is prepared before fork.
  ExecArgs exec(spec.argv, spec.env);
  auto log = OpenLog(spec);
  if (!log.ok()) return log.status();
  int log_fd = *log;
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
    ResetSignals();
    if (dup2(null_fd, 0) < 0 || dup2(spec.stdout_fd >= 0 ? spec.stdout_fd : log_fd, 1) < 0 ||
        dup2(log_fd, 2) < 0) {
      ChildFail(err_pipe[1], errno);
    }
    CloseFrom(3, err_pipe[1]);
    if (spec.switch_account) {
      if (setgroups(spec.groups.size(), spec.groups.data()) != 0 || setgid(spec.gid) != 0 ||
          setuid(spec.uid) != 0) {
        ChildFail(err_pipe[1], errno + kStageAccount);
      }
    }
    if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) {
      ChildFail(err_pipe[1], errno + kStageCwd);
    }
    for (size_t i = 0; i < spec.reach_dirs.size(); ++i) {
      if (access(spec.reach_dirs[i].c_str(), R_OK | W_OK | X_OK) != 0) {
        ChildFail(err_pipe[1], errno + kStageReach * static_cast<int>(i + 1));
      }
    }
    execve(exe.c_str(), exec.argv.data(), exec.envp.data());
    ChildFail(err_pipe[1], errno);
  }
  // Both sides set the group, so a signal sent right after Start reaches it.
  setpgid(pid, pid);
  close(log_fd);
  close(null_fd);
  close(err_pipe[1]);
  int child_errno = ReadChildErrno(err_pipe[0]);
  if (child_errno != 0) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const int stage = child_errno / kStageAccount * kStageAccount;
    const std::string why = strerror(child_errno % kStageAccount);
    const std::string as =
        spec.switch_account ? " as uid " + std::to_string(spec.uid) : std::string();
    if (stage == kStageAccount) {
      return Status::Internal("launch: cannot switch to uid " + std::to_string(spec.uid) +
                              ", gid " + std::to_string(spec.gid) + ": " + why);
    }
    if (stage == kStageCwd) {
      return Status::Internal("launch: cannot enter working directory " + spec.cwd + as + ": " +
                              why + " (every parent directory must be searchable by it)");
    }
    if (stage >= kStageReach) {
      size_t i = static_cast<size_t>(stage / kStageReach - 1);
      return Status::Internal("launch: cannot use " +
                              (i < spec.reach_dirs.size() ? spec.reach_dirs[i] : "?") + as + ": " +
                              why);
    }
    return Status::Internal("launch: " + spec.argv[0] + ": " + why);
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
