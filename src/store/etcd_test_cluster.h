// EtcdTestCluster: real etcd members on loopback for tests and benchmarks — free ports,
// a temporary data directory, short heartbeat/election timeouts, SIGKILL and restart of
// single members. Everything is killed and removed when the object is destroyed (and the
// members die with the process that started them: PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "store/etcd_client.h"

namespace hafab::store::testing {

struct EtcdTestClusterOptions {
  int members = 1;
  // Raft timing. The defaults suit a loaded 2-core machine: short enough that an election
  // after a kill takes about a second, long enough not to flap under a parallel build.
  int heartbeat_ms = 50;
  int election_ms = 500;
  // How long Start and WaitHealthy wait for /health.
  Duration start_timeout = std::chrono::seconds(20);
};

class EtcdTestCluster {
 public:
  using Options = EtcdTestClusterOptions;

  // The etcd binary: $HAFAB_ETCD_BINARY, else "etcd" on PATH (Debian's etcd-server puts it
  // in /usr/bin). "" when there is none.
  static std::string FindBinary();

  // Starts `options.members` members as one new cluster and waits until every member
  // reports healthy (a leader is elected). Errors: Unavailable with the tail of a member's
  // log when one does not come up in time; NotFound if there is no etcd binary.
  static Result<std::unique_ptr<EtcdTestCluster>> Start(Options options);

  ~EtcdTestCluster();
  EtcdTestCluster(const EtcdTestCluster&) = delete;
  EtcdTestCluster& operator=(const EtcdTestCluster&) = delete;

  int size() const { return static_cast<int>(members_.size()); }
  // "etcd://127.0.0.1:P0,127.0.0.1:P1,...".
  std::string Url() const;
  std::vector<EtcdEndpoint> Endpoints() const;
  EtcdEndpoint Endpoint(int member) const;
  // The member whose client endpoint is `endpoint_name` ("127.0.0.1:P"); -1 if none.
  int MemberOf(const std::string& endpoint_name) const;

  // The same endpoints with `member` first: a client prefers the first endpoint.
  std::string UrlStartingWith(int member) const;
  // The member that is leader now, as the running members report it; -1 if none knows.
  int Leader() const;

  // SIGKILLs the member and waits for it to exit. Idempotent.
  void Kill(int member);
  // Starts a killed member again on its data directory and ports; does not wait.
  Status Restart(int member);
  bool Running(int member) const;
  // Waits until the member's /health says true (it has a leader and answers).
  Status WaitHealthy(int member, Duration timeout);
  // The last lines of the member's log, for failure messages.
  std::string LogTail(int member) const;

 private:
  struct Member {
    std::string name;
    uint16_t client_port = 0;
    uint16_t peer_port = 0;
    std::string data_dir;
    std::string log_path;
    pid_t pid = -1;
  };
  explicit EtcdTestCluster(Options options) : options_(options) {}
  Status StartOnce();
  Status Launch(int member, bool new_cluster);

  Options options_;
  std::string binary_;
  std::string root_;  // temporary directory holding every member's data and log
  std::string initial_cluster_;
  std::vector<Member> members_;
};

}  // namespace hafab::store::testing
