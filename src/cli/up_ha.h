// The layout of `hafab up --ha`: three etcd members and three controller replicas on this
// machine. Their ports are picked once, at the first run, and kept in STATE/ha.json, so that
// running `hafab up --ha` again on the same state directory resumes the same cluster (etcd's
// data under STATE/etcd, each replica's state under STATE/controllers).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace hafab::cli {

struct HaLayout {
  struct EtcdMember {
    uint16_t client_port = 0;
    uint16_t peer_port = 0;
  };
  static constexpr int kReplicas = 3;

  std::vector<EtcdMember> etcd;       // kReplicas members, e1..e3
  std::vector<uint16_t> controllers;  // kReplicas API ports, c1..c3

  // "etcd://127.0.0.1:C1,127.0.0.1:C2,127.0.0.1:C3" with member `first` first (a client
  // prefers its first endpoint: replica i talks to member i while it answers).
  std::string StoreUrl(int first) const;
  // "http://127.0.0.1:P" of replica i.
  std::string ControllerUrl(int i) const;
  // Every replica's URL, comma-separated: what agents, gateways and the CLI are given.
  std::string ControllerList() const;
  // The etcd command line of member i (e1..e3), its data in `data_dir`. Raft timing suits a
  // loaded machine while letting a 1 s leader key lease exist (etcd's minimum lease is 1.5
  // election timeouts).
  std::vector<std::string> EtcdArgv(const std::string& binary, int i, const std::string& data_dir,
                                    const std::string& cluster_token) const;
};

// Reads STATE/ha.json, or picks free loopback ports (below the ephemeral range) and writes
// it. Errors: InvalidArgument naming ha.json when it does not parse, Unavailable when it
// cannot be written or no port is free.
Result<HaLayout> LoadOrCreateHaLayout(const std::string& state_dir);

// The etcd binary: $HAFAB_ETCD_BINARY, else `etcd` on PATH. NotFound with advice if none.
Result<std::string> FindEtcd();

}  // namespace hafab::cli
