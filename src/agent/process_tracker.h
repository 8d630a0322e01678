// ProcessTracker: every process an instance started, including those that left its process
// group (a daemon that double-forks and calls setsid), so that none outlives the instance's
// stop, restart or fence, nor a crash of the agent.
//
// CgroupTracker puts each instance in a cgroup of its own in the cgroup v2 hierarchy (the
// unified one, mounted at /sys/fs/cgroup or, on hybrid systems, /sys/fs/cgroup/unified); no
// controller is needed, membership is enough: a process cannot leave its cgroup by forking or
// setsid. It kills through cgroup.kill (Linux >= 5.14), else by signalling cgroup.procs until
// it is empty.
//
// EnvironTracker, where no cgroup v2 is writable, finds an instance's processes by the
// HAFAB_INSTANCE_DIR variable the agent gives every instance (its working directory, unique
// per agent and instance), which forked and daemonized children inherit. A process that
// clears its environment or overwrites it (as PostgreSQL's process titles do) is not found:
// run such a program where cgroup v2 is available.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "agent/launcher.h"

namespace hafab::agent {

class ProcessTracker {
 public:
  virtual ~ProcessTracker() = default;

  // "cgroup v2 <dir>" or "environment".
  virtual std::string Mechanism() const = 0;

  // Before `instance` starts: creates its cgroup and adds its cgroup.procs to
  // spec->cgroup_procs. REQUIRES: spec->env holds HAFAB_INSTANCE_DIR (InstanceDirOf).
  // Errors: Internal naming the directory.
  virtual Status Prepare(const std::string& instance, LaunchSpec* spec) = 0;

  // The live processes of `instance` (zombies excluded).
  virtual std::vector<pid_t> Members(const std::string& instance) const = 0;

  // Sends `signal` to every process of `instance`. SIGKILL through cgroup.kill also reaches
  // processes forked meanwhile. Returns how many processes there were.
  virtual int Signal(const std::string& instance, int signal) = 0;

  // Instances with live processes, those of a previous agent run included.
  virtual std::vector<std::string> Instances() const = 0;

  // `instance` is gone for good: removes its cgroup if it is empty.
  virtual void Release(const std::string& instance) = 0;

  // A string from which KillTracked() finds the processes of `instance` without this object
  // (the fence watchdog keeps it in the pid file).
  virtual std::string Handle(const std::string& instance) const = 0;
};

// The instance's working directory, which the agent passes as HAFAB_INSTANCE_DIR.
std::string InstanceDirOf(const std::string& data_dir, const std::string& instance);

// The name of this agent's cgroup under its own: "hafab-<node>-<8 hex digits of a hash of
// data_dir>", so that two agents on one machine (hafab up, tests) never share one.
std::string AgentCgroupName(const std::string& node, const std::string& data_dir);

// The best tracker this machine allows: CgroupTracker under <own cgroup>/<group>, else
// EnvironTracker for the instances under <data_dir>/work. Logs which.
std::unique_ptr<ProcessTracker> MakeProcessTracker(const std::string& group,
                                                   const std::string& data_dir);

class CgroupTracker final : public ProcessTracker {
 public:
  // `base`: the agent's group directory in the cgroup v2 hierarchy (created if missing).
  explicit CgroupTracker(std::string base);
  ~CgroupTracker() override;  // removes `base` if empty
  std::string Mechanism() const override { return "cgroup v2 " + base_; }
  Status Prepare(const std::string& instance, LaunchSpec* spec) override;
  std::vector<pid_t> Members(const std::string& instance) const override;
  int Signal(const std::string& instance, int signal) override;
  std::vector<std::string> Instances() const override;
  void Release(const std::string& instance) override;
  std::string Handle(const std::string& instance) const override;

 private:
  std::string base_;
};

class EnvironTracker final : public ProcessTracker {
 public:
  explicit EnvironTracker(std::string data_dir);
  std::string Mechanism() const override { return "environment"; }
  Status Prepare(const std::string& instance, LaunchSpec* spec) override;
  std::vector<pid_t> Members(const std::string& instance) const override;
  int Signal(const std::string& instance, int signal) override;
  std::vector<std::string> Instances() const override;
  void Release(const std::string& instance) override {}
  std::string Handle(const std::string& instance) const override;

 private:
  std::string data_dir_;
};

// SIGKILLs every process that `handle` (ProcessTracker::Handle) designates. Returns how many.
int KillTracked(const std::string& handle);

}  // namespace hafab::agent
