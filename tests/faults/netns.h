// A small multi-host lab on one machine for the partition scenario: one network namespace
// per node, each joined by a veth pair to a bridge in this (the root) namespace. The
// controller and the gateway stay in the root namespace and reach node i at its own address;
// cutting a node's link (its veth's host side down) isolates the node from both while every
// process in it keeps running. Needs root and a kernel that allows namespaces.
#pragma once

#include <string>
#include <vector>

#include "core/result.h"

namespace hafab::faults {

class NetnsLab {
 public:
  NetnsLab() = default;
  NetnsLab(const NetnsLab&) = delete;
  NetnsLab& operator=(const NetnsLab&) = delete;
  ~NetnsLab();  // Destroy()

  // Creates the bridge and `nodes` namespaces n1..nN (first removing what harness processes
  // that no longer run left behind). Errors: Unavailable naming the refused `ip` command (no
  // root, or a kernel/container that refuses namespaces); everything created is removed again.
  Status Create(int nodes);
  // Deletes every namespace and link this lab created (idempotent). Processes still inside
  // a namespace keep it alive without its name: stop the cluster first.
  Status Destroy();

  // The bridge's address in the root namespace: where the controller listens.
  const std::string& host_address() const { return host_address_; }
  // Node `node` ("n1".."nN"): its address and the path of its namespace (for nsenter, setns).
  std::string NodeAddress(const std::string& node) const;
  std::string NetnsPath(const std::string& node) const;
  std::vector<std::string> NodeAddresses() const;
  // `hafab up --agent-wrapper`: runs each agent (and so its instances) in its node's namespace.
  std::string AgentWrapper() const;

  // Cuts `node` off the bridge (the host side of its veth down) / joins it again.
  Status Cut(const std::string& node);
  Status Heal(const std::string& node);

 private:
  std::string NetnsName(int i) const;
  std::string HostVeth(int i) const;
  static int Index(const std::string& node);

  int nodes_ = 0;
  std::string tag_;     // the owning process's pid: names are hafab-<pid>-nI, hfb<pid>, hfv<pid>nI
  std::string prefix_;  // "10.A.B."
  std::string host_address_;
  bool created_ = false;
};

// Runs `cmd` through /bin/sh; output (stdout+stderr) in *out. Returns the exit status.
int RunShell(const std::string& cmd, std::string* out = nullptr);

}  // namespace hafab::faults
