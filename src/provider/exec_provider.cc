#include "provider/exec_provider.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/duration.h"

extern char** environ;

namespace hafab::provider {
namespace {

constexpr size_t kMaxOutput = 64 * 1024;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string DescribeRun(const std::string& what, const ScriptRun& run) {
  std::string s =
      what + (run.timed_out ? " timed out" : " exited " + std::to_string(run.exit_code));
  std::string out = Trim(run.output);
  if (!out.empty()) s += ": " + out;
  return s;
}

}  // namespace

Result<ExecProviderConfig> LoadExecProviderConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("provider config " + path + " cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  ExecProviderConfig c;
  try {
    auto j = nlohmann::json::parse(ss.str());
    if (!j.is_object()) return Status::InvalidArgument(path + ": expected a JSON object");
    for (const auto& item : j.items()) {
      // Not a structured binding: clang 14 (the sanitizer builds) cannot capture one.
      const std::string& key = item.key();
      const nlohmann::json& value = item.value();
      auto str = [&]() -> std::string {
        if (!value.is_string()) throw std::runtime_error("'" + key + "' must be a string");
        return value.get<std::string>();
      };
      if (key == "attach")
        c.attach = str();
      else if (key == "detach")
        c.detach = str();
      else if (key == "force_detach")
        c.force_detach = str();
      else if (key == "describe")
        c.describe = str();
      else if (key == "add_endpoint")
        c.add_endpoint = str();
      else if (key == "remove_endpoint")
        c.remove_endpoint = str();
      else if (key == "mount_root")
        c.mount_root = str();
      else if (key == "timeout" || key == "retry_delay") {
        auto d = ParseDuration(str());
        if (!d.ok())
          return Status::InvalidArgument(path + ": '" + key + "': " + d.status().message());
        (key == "timeout" ? c.timeout : c.retry_delay) = *d;
      } else if (key == "retries") {
        if (!value.is_number_integer() || value.get<int>() < 0) {
          return Status::InvalidArgument(path + ": 'retries' must be a non-negative integer");
        }
        c.retries = value.get<int>();
      } else {
        return Status::InvalidArgument(path + ": unknown key '" + key + "'");
      }
    }
  } catch (const std::exception& e) {
    return Status::InvalidArgument(path + ": " + e.what());
  }
  for (auto [name, value] :
       {std::pair{"attach", c.attach}, {"detach", c.detach}, {"describe", c.describe}}) {
    if (value.empty()) return Status::InvalidArgument(path + ": '" + name + "' is required");
  }
  return c;
}

Result<ScriptRun> RunScript(Clock& clock, const std::vector<std::string>& argv,
                            const std::vector<std::pair<std::string, std::string>>& extra_env,
                            Duration timeout) {
  if (argv.empty() || argv[0].empty()) return Status::InvalidArgument("script: empty command");
  if (access(argv[0].c_str(), X_OK) != 0) {
    return Status::NotFound("script " + argv[0] + " is not executable: " + strerror(errno));
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    bool overridden = std::any_of(extra_env.begin(), extra_env.end(),
                                  [&](const auto& p) { return p.first == key; });
    if (!overridden) env_strings.push_back(kv);
  }
  for (const auto& [k, v] : extra_env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  int out_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0)
    return Status::Internal(std::string("pipe: ") + strerror(errno));
  pid_t pid = fork();
  if (pid < 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return Status::Internal(std::string("fork: ") + strerror(errno));
  }
  if (pid == 0) {
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(out_pipe[1], 1);
    dup2(out_pipe[1], 2);
    execve(argv[0].c_str(), args.data(), envp.data());
    _exit(127);
  }
  setpgid(pid, pid);
  close(out_pipe[1]);
  ScriptRun run;
  const TimePoint deadline = clock.Now() + timeout;
  bool open_pipe = true;
  while (open_pipe) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock.Now());
    if (left.count() <= 0) {
      run.timed_out = true;
      break;
    }
    pollfd p{out_pipe[0], POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    char buf[4096];
    ssize_t n = read(out_pipe[0], buf, sizeof(buf));
    if (n > 0) {
      if (run.output.size() < kMaxOutput) run.output.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      open_pipe = false;  // every writer has closed: the script (and its children) are done
    }
  }
  close(out_pipe[0]);
  int status = 0;
  if (run.timed_out) {
    kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return run;
  }
  // The pipe closed; the script exits now unless it closed its output early.
  while (true) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) break;
    if (clock.Now() >= deadline) {
      run.timed_out = true;
      kill(-pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return run;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

ExecProvider::ExecProvider(ExecProviderConfig config, Clock& clock)
    : config_(std::move(config)), clock_(clock) {}

Result<ScriptRun> ExecProvider::Run(const std::string& what, std::vector<std::string> argv,
                                    std::vector<std::pair<std::string, std::string>> env,
                                    const std::vector<int>& final_codes) {
  std::lock_guard<std::mutex> lock(mu_);
  ScriptRun last;
  for (int attempt = 0; attempt <= config_.retries; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(config_.retry_delay);
    HAFAB_ASSIGN_OR_RETURN(last, RunScript(clock_, argv, env, config_.timeout));
    if (!last.timed_out &&
        (last.exit_code == 0 ||
         std::find(final_codes.begin(), final_codes.end(), last.exit_code) != final_codes.end())) {
      return last;
    }
  }
  std::string msg =
      DescribeRun(what, last) + " (after " + std::to_string(config_.retries + 1) + " attempts)";
  if (last.timed_out) return Status::DeadlineExceeded(msg);
  return Status::Unavailable(msg);
}

Status ExecProvider::Attach(const std::string& volume, const std::string& node,
                            const std::string& instance) {
  HAFAB_ASSIGN_OR_RETURN(
      ScriptRun run,
      Run("attach script " + config_.attach, {config_.attach, volume, node, instance},
          {{"HAFAB_VOLUME", volume}, {"HAFAB_NODE", node}, {"HAFAB_INSTANCE", instance}}, {3}));
  if (run.exit_code == 3) {
    return Status::Conflict("volume " + volume +
                            " is attached elsewhere: " + DescribeRun("attach script", run));
  }
  return Status::Ok();
}

Status ExecProvider::Detach(const std::string& volume, const std::string& node) {
  auto run = Run("detach script " + config_.detach, {config_.detach, volume, node},
                 {{"HAFAB_VOLUME", volume}, {"HAFAB_NODE", node}}, {});
  return run.ok() ? Status::Ok() : run.status();
}

Status ExecProvider::ForceDetach(const std::string& volume, const std::string& node) {
  const std::string& script = config_.force_detach.empty() ? config_.detach : config_.force_detach;
  auto run = Run("force_detach script " + script, {script, volume, node},
                 {{"HAFAB_VOLUME", volume}, {"HAFAB_NODE", node}, {"HAFAB_FORCE", "1"}}, {});
  return run.ok() ? Status::Ok() : run.status();
}

Result<VolumeAttachment> ExecProvider::Describe(const std::string& volume) {
  HAFAB_ASSIGN_OR_RETURN(ScriptRun run,
                         Run("describe script " + config_.describe, {config_.describe, volume},
                             {{"HAFAB_VOLUME", volume}}, {2}));
  if (run.exit_code == 2) return Status::NotFound("volume " + volume + " does not exist");
  std::string first = run.output.substr(0, run.output.find('\n'));
  std::istringstream in(first);
  VolumeAttachment a;
  in >> a.node >> a.instance;
  return a;
}

std::string ExecProvider::MountPath(const std::string& volume, const std::string& node) {
  return config_.mount_root + "/" + volume;
}

Status ExecProvider::AddEndpoint(const std::string& role, const std::string& node) {
  if (config_.add_endpoint.empty()) return Status::Ok();
  auto run = Run("add_endpoint script " + config_.add_endpoint, {config_.add_endpoint, role, node},
                 {{"HAFAB_ROLE", role}, {"HAFAB_NODE", node}}, {});
  return run.ok() ? Status::Ok() : run.status();
}

Status ExecProvider::RemoveEndpoint(const std::string& role, const std::string& node) {
  if (config_.remove_endpoint.empty()) return Status::Ok();
  auto run =
      Run("remove_endpoint script " + config_.remove_endpoint,
          {config_.remove_endpoint, role, node}, {{"HAFAB_ROLE", role}, {"HAFAB_NODE", node}}, {});
  return run.ok() ? Status::Ok() : run.status();
}

}  // namespace hafab::provider
