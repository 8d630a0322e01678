// An embedded cluster for end-to-end tests: `hafab up` as a real child process on free
// loopback ports, with helpers to wait on the controller's state and to stop it cleanly.
#pragma once

#include <sys/types.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/result.h"

namespace hafab::e2e {

struct ClusterOptions {
  int nodes = 3;
  int kvd_instances = 2;
  int echo_instances = 3;
  std::string revive_after = "5s";   // longer than a lease: a killed node is seen down
  std::string lease_ttl = "1500ms";  // "" = leave it out of the manifest (the default)
  std::vector<std::string> extra_up_args;
  // Appended to the echo role in the manifest (YAML lines indented by 4, e.g.
  // "    update: {ready_timeout: 10s}\n"); with "    min:" in it, instances is left out.
  std::string echo_extra;
  std::string api_listen = "127.0.0.1:0";   // the controller's API (settings.api_listen)
  std::string failure_detector;             // settings.failure_detector; "" = left out (star)
  std::vector<std::string> node_addresses;  // node i's `address` (n1 first); none = default
  // A manifest of examples/ to run as shipped (e.g. kQuickstart) instead of the one built from
  // the fields above (only revive_after and extra_up_args apply), after replacing each `first`
  // text in it by `second` (each must occur) and its fixed ports by free ones: the endpoints'
  // `listen: 127.0.0.1:N` in order (the first is kvd_url(), the second echo_url()) and the
  // roles' `port: N`. With a `mode: replicated` role, Start waits for its primary.
  std::string example;
  std::vector<std::pair<std::string, std::string>> example_edits;
};

inline constexpr const char* kQuickstart = "examples/quickstart.yaml";
inline constexpr const char* kReplicated = "examples/replicated.yaml";

// An example_edits entry: the quickstart's kvd liveness probe as tcp, which a hung
// process passes (then only readiness failover_after replaces it).
extern const std::pair<std::string, std::string> kQuickstartKvdTcpLiveness;

class Cluster {
 public:
  explicit Cluster(ClusterOptions opts = {});
  ~Cluster();  // stops `up` if still running

  // Writes the manifest and starts `hafab up`. Then waits until kvd has a ready primary
  // that answers through the gateway (of a replicated example: a replica that says it is the
  // primary). Errors explain what was still missing.
  Status Start(Duration timeout = std::chrono::seconds(30));
  // SIGTERM to `up`, waits for it to exit. OK if it exited 0 and left no process behind.
  Status Stop(Duration timeout = std::chrono::seconds(30));

  // GET/POST on the controller's API with the admin token.
  Result<nlohmann::json> Api(const std::string& method, const std::string& path,
                             const std::string& body = "");
  // Runs the hafab binary with `args` (and --state-dir); returns its exit code, output in *out.
  int Hafab(const std::vector<std::string>& args, std::string* out = nullptr);

  // Polls `pred` every 20ms until it holds or `timeout` passes.
  Status WaitFor(const std::string& what, const std::function<bool()>& pred, Duration timeout);

  // The running primary of `role` (active-passive or replicated): its instance id and node,
  // from /v1/status ("" if none is running).
  std::pair<std::string, std::string> Primary(const std::string& role);
  std::pair<std::string, std::string> KvdPrimary() { return Primary("kvd"); }

  std::string kvd_url() const { return "http://127.0.0.1:" + std::to_string(kvd_port_); }
  std::string echo_url() const { return "http://127.0.0.1:" + std::to_string(echo_port_); }
  const std::string& state_dir() const { return state_dir_; }
  pid_t up_pid() const { return up_pid_; }
  // Processes that still name this cluster's state directory (argv or environment).
  std::vector<pid_t> LeftoverProcesses() const;

 private:
  ClusterOptions opts_;
  std::string dir_;
  std::string state_dir_;
  int kvd_port_ = 0;
  int echo_port_ = 0;
  pid_t up_pid_ = 0;
};

}  // namespace hafab::e2e
