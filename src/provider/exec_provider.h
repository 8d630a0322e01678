// ExecProvider: the operator's own scripts do the infrastructure work (e.g. a cloud CLI that
// attaches a disk). Scripts run one at a time, each with a deadline and retries; the exit
// status and the script's output are part of every error.
//
// Script contract (arguments, then exit codes):
//   attach VOLUME NODE INSTANCE      0 ok; 3 conflict (attached elsewhere; say where on stdout)
//   detach VOLUME NODE               0 ok (also when not attached there)
//   force_detach VOLUME NODE         as detach; defaults to the detach script with HAFAB_FORCE=1
//   describe VOLUME                  0 and "NODE INSTANCE" (or nothing: attached nowhere) on
//                                    the first line of stdout; 2 = no such volume
//   add_endpoint ROLE NODE, remove_endpoint ROLE NODE    0 ok
// Any other exit status is a failure that is retried (retries times, retry_delay apart);
// a script that outlives `timeout` is killed (SIGKILL to its process group).
// The environment also carries HAFAB_VOLUME, HAFAB_NODE, HAFAB_INSTANCE, HAFAB_ROLE.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"
#include "provider/provider.h"

namespace hafab::provider {

struct ExecProviderConfig {
  std::string attach;
  std::string detach;
  std::string force_detach;  // "" = detach with HAFAB_FORCE=1
  std::string describe;
  std::string add_endpoint;     // "" = no-op
  std::string remove_endpoint;  // "" = no-op
  // MountPath(volume, node) = mount_root + "/" + volume (where the script mounts it).
  std::string mount_root = "/mnt/hafab";
  Duration timeout = std::chrono::seconds(60);
  int retries = 2;
  Duration retry_delay = std::chrono::seconds(1);
};

// Reads the JSON config file: {"attach": "/path", "detach": ..., "describe": ...,
// "force_detach": ..., "add_endpoint": ..., "remove_endpoint": ..., "mount_root": ...,
// "timeout": "60s", "retries": 2, "retry_delay": "1s"}.
// Errors: NotFound (no file), InvalidArgument naming the bad key.
Result<ExecProviderConfig> LoadExecProviderConfig(const std::string& path);

// What one script run did.
struct ScriptRun {
  int exit_code = -1;  // -1 when killed or not started
  bool timed_out = false;
  std::string output;  // stdout and stderr, truncated to 64 KiB
};

// Runs argv with `extra_env` added to this process's environment, in its own process group,
// capturing stdout+stderr, killing the group at `timeout`. Errors: NotFound (no such
// script), Internal (fork/pipe). A non-zero exit is not an error here.
Result<ScriptRun> RunScript(Clock& clock, const std::vector<std::string>& argv,
                            const std::vector<std::pair<std::string, std::string>>& extra_env,
                            Duration timeout);

class ExecProvider final : public Provider {
 public:
  explicit ExecProvider(ExecProviderConfig config, Clock& clock = RealClock());

  Status Attach(const std::string& volume, const std::string& node,
                const std::string& instance) override;
  Status Detach(const std::string& volume, const std::string& node) override;
  Status ForceDetach(const std::string& volume, const std::string& node) override;
  Result<VolumeAttachment> Describe(const std::string& volume) override;
  std::string MountPath(const std::string& volume, const std::string& node) override;
  Status AddEndpoint(const std::string& role, const std::string& node) override;
  Status RemoveEndpoint(const std::string& role, const std::string& node) override;

 private:
  // Runs the script with retries. `ok_codes` are returned as success (with the output);
  // other codes are retried and finally returned as Unavailable.
  Result<ScriptRun> Run(const std::string& what, std::vector<std::string> argv,
                        std::vector<std::pair<std::string, std::string>> env,
                        const std::vector<int>& final_codes);

  ExecProviderConfig config_;
  Clock& clock_;
  std::mutex mu_;  // one script at a time
};

}  // namespace hafab::provider
