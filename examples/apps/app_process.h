// AppProcess: one example app (kvd, echo-app) run as a child process on 127.0.0.1, for
// the tests that drive the real binaries.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "http/http.h"
#include "testing/ports.h"
#include "testing/wait.h"

namespace hafab::apps {

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One app process on 127.0.0.1:<free port>, its stderr kept in a file.
class AppProcess {
 public:
  AppProcess(std::string binary, std::map<std::string, std::string> env, std::string log_path)
      : binary_(std::move(binary)), env_(std::move(env)), log_path_(std::move(log_path)) {}
  ~AppProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  // Listens on `port` from the next Start on (default: a free port chosen at each Start).
  void SetPort(uint16_t port) { fixed_port_ = port; }
  // Replaces the environment for the next Start.
  void SetEnv(const std::string& name, const std::string& value) { env_[name] = value; }

  // Starts the app and waits until GET /health answers. Retries on another port if the
  // chosen one was taken in the meantime. Returns false (with the log) if it never did.
  ::testing::AssertionResult Start() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = fixed_port_ != 0 ? fixed_port_ : hafab::testing::FreePort();
      Spawn();
      bool up = hafab::testing::WaitFor([&] {
        if (Exited()) return true;
        auto r = http::Fetch("GET", Url("/health"), "", {}, std::chrono::milliseconds(500));
        return r.ok() && r->status == 200;
      });
      if (up && !Exited()) return ::testing::AssertionSuccess();
      if (!Exited() || fixed_port_ != 0) break;  // never answered: not a port race
      if (ReadFile(log_path_).find("already in use") == std::string::npos) break;
    }
    return ::testing::AssertionFailure() << binary_ << " did not come up; its log:\n"
                                         << ReadFile(log_path_);
  }

  // Runs the app to completion (for apps expected to refuse to start).
  int RunToExit() {
    port_ = hafab::testing::FreePort();
    Spawn();
    EXPECT_TRUE(hafab::testing::WaitFor([&] { return Exited(); }));
    return exit_status_;
  }

  void Kill(int signal) {
    if (pid_ > 0) ::kill(pid_, signal);
  }

  // Waits for the process to end; returns its wait status.
  std::optional<int> Wait(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (!hafab::testing::WaitFor([&] { return Exited(); }, timeout)) return std::nullopt;
    return exit_status_;
  }

  std::string Url(const std::string& target) const {
    return "http://127.0.0.1:" + std::to_string(port_) + target;
  }
  std::string Log() const { return ReadFile(log_path_); }
  uint16_t port() const { return port_; }

 private:
  void Spawn() {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string entry = *e;
      if (!entry.starts_with("HAFAB_")) env_strings.push_back(entry);
    }
    auto env = env_;
    env["HAFAB_PORT"] = std::to_string(port_);
    env.try_emplace("HAFAB_HOST", "127.0.0.1");
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<char*> argv = {binary_.data(), nullptr};

    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) ::dup2(fd, 2);
      ::execve(binary_.c_str(), argv.data(), envp.data());
      ::_exit(127);
    }
    exited_ = false;
  }

  bool Exited() {
    if (exited_) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      exit_status_ = status;
      pid_ = -1;
    }
    return exited_;
  }

  std::string binary_;
  std::map<std::string, std::string> env_;
  std::string log_path_;
  uint16_t fixed_port_ = 0;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  bool exited_ = false;
  int exit_status_ = 0;
};

}  // namespace hafab::apps
